-- What a response cache must hear of besides the events subscriptions
-- use: profile changes, new accounts (a username that named nobody may now
-- name someone) and unfollows. Webhooks announce none of these.
ALTER TABLE events DROP CONSTRAINT events_kind_known;
ALTER TABLE events ADD CONSTRAINT events_kind_known CHECK (kind IN (
    'comment_added', 'comment_deleted', 'article_published', 'article_updated',
    'article_deleted', 'session_revoked', 'article_favorited', 'user_followed',
    'user_created', 'user_updated', 'user_unfollowed'));

CREATE FUNCTION users_record_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM record_event('user_created', NULL, NULL, NEW.id, NULL, NEW.id);
    ELSIF (OLD.username, OLD.bio, OLD.image, OLD.deleted_at)
        IS DISTINCT FROM (NEW.username, NEW.bio, NEW.image, NEW.deleted_at) THEN
        PERFORM record_event('user_updated', NULL, NULL, NEW.id, NULL, NEW.id);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER users_record_event AFTER INSERT OR UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION users_record_event();

CREATE FUNCTION follows_record_unfollow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM record_event('user_unfollowed', NULL, NULL, OLD.followee_id, NULL, OLD.follower_id);
    RETURN NULL;
END;
$$;

CREATE TRIGGER follows_record_unfollow AFTER DELETE ON follows
    FOR EACH ROW EXECUTE FUNCTION follows_record_unfollow();
