-- What the events did not say, and a cached page needs to hear:
--
-- - Rows removed for good (retention purges and their cascades, or a
--   DELETE from psql) that were still visible: they vanish now, as if
--   soft-deleted. Rows soft-deleted before were announced then.
-- - A removed favorite (`article_unfavorited`): the user's favorites list
--   loses an article, which a page showing only its `pageInfo` would not
--   otherwise hear of.
-- - A new favorites count alone (`article_favorites_changed`) is no longer an
--   `article_updated`: title, slug and tags did not change, so lists by tag
--   and the tag list stay as they are.
-- - A deleted account stops following anyone: every followers count it was
--   part of changes.
ALTER TABLE events DROP CONSTRAINT events_kind_known;
ALTER TABLE events ADD CONSTRAINT events_kind_known CHECK (kind IN (
    'comment_added', 'comment_deleted', 'article_published', 'article_updated',
    'article_deleted', 'session_revoked', 'article_favorited', 'user_followed',
    'user_created', 'user_updated', 'user_unfollowed', 'article_unfavorited',
    'article_favorites_changed'));

-- One event of each kind per article per transaction: subscribers and the
-- response cache load the article as it is when they hear of it.
CREATE OR REPLACE FUNCTION articles_record_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    change text;
    recorded text;
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM record_event('article_published', NEW.id, NULL, NEW.author_id, NULL, NEW.author_id);
        PERFORM set_config('conduit.article_updated_' || replace(NEW.id::text, '-', ''), 'on', true);
        RETURN NULL;
    ELSIF OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL THEN
        PERFORM record_event('article_deleted', NEW.id, NULL, NEW.author_id, NULL, NEW.author_id);
        RETURN NULL;
    ELSIF NEW.deleted_at IS NOT NULL THEN
        RETURN NULL;
    END IF;
    IF OLD.favorites_count IS DISTINCT FROM NEW.favorites_count
        AND (to_jsonb(OLD) - 'favorites_count' - 'updated_at')
            = (to_jsonb(NEW) - 'favorites_count' - 'updated_at') THEN
        change := 'article_favorites_changed';
    ELSE
        -- An edit, its tags (their change touches the row), or a save
        -- that changed nothing but was made.
        change := 'article_updated';
    END IF;
    recorded := 'conduit.' || change || '_' || replace(NEW.id::text, '-', '');
    IF coalesce(current_setting(recorded, true), '') <> 'on' THEN
        PERFORM record_event(change, NEW.id, NULL, NEW.author_id, NULL, NULL);
        PERFORM set_config(recorded, 'on', true);
    END IF;
    RETURN NULL;
END;
$$;

CREATE FUNCTION articles_record_removal() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.deleted_at IS NULL THEN
        PERFORM record_event('article_deleted', OLD.id, NULL, OLD.author_id, NULL, OLD.author_id);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER articles_record_removal AFTER DELETE ON articles
    FOR EACH ROW EXECUTE FUNCTION articles_record_removal();

CREATE FUNCTION comments_record_removal() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.deleted_at IS NULL THEN
        PERFORM record_event('comment_deleted', OLD.article_id, OLD.id, OLD.author_id, NULL, OLD.author_id);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER comments_record_removal AFTER DELETE ON comments
    FOR EACH ROW EXECUTE FUNCTION comments_record_removal();

CREATE FUNCTION users_record_removal() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.deleted_at IS NULL THEN
        PERFORM record_event('user_updated', NULL, NULL, OLD.id, NULL, OLD.id);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER users_record_removal AFTER DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION users_record_removal();

CREATE FUNCTION favorites_record_removal() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM record_event('article_unfavorited', OLD.article_id, NULL, NULL, NULL, OLD.user_id);
    RETURN NULL;
END;
$$;

CREATE TRIGGER favorites_record_removal AFTER DELETE ON favorites
    FOR EACH ROW EXECUTE FUNCTION favorites_record_removal();

-- A deleted account no longer counts among anybody's followers.
CREATE OR REPLACE FUNCTION users_record_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    followee uuid;
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM record_event('user_created', NULL, NULL, NEW.id, NULL, NEW.id);
        RETURN NULL;
    END IF;
    IF (OLD.username, OLD.bio, OLD.image, OLD.deleted_at)
        IS DISTINCT FROM (NEW.username, NEW.bio, NEW.image, NEW.deleted_at) THEN
        PERFORM record_event('user_updated', NULL, NULL, NEW.id, NULL, NEW.id);
    END IF;
    IF (OLD.deleted_at IS NULL) <> (NEW.deleted_at IS NULL) THEN
        FOR followee IN SELECT followee_id FROM follows WHERE follower_id = NEW.id LOOP
            PERFORM record_event('user_unfollowed', NULL, NULL, followee, NULL, NEW.id);
        END LOOP;
    END IF;
    RETURN NULL;
END;
$$;
