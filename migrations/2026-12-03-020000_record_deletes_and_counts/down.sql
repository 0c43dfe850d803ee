CREATE OR REPLACE FUNCTION users_record_event() RETURNS trigger LANGUAGE plpgsql AS $$
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

DROP TRIGGER favorites_record_removal ON favorites;
DROP FUNCTION favorites_record_removal();
DROP TRIGGER users_record_removal ON users;
DROP FUNCTION users_record_removal();
DROP TRIGGER comments_record_removal ON comments;
DROP FUNCTION comments_record_removal();
DROP TRIGGER articles_record_removal ON articles;
DROP FUNCTION articles_record_removal();

CREATE OR REPLACE FUNCTION articles_record_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    recorded text := 'conduit.article_event_' || replace(NEW.id::text, '-', '');
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM record_event('article_published', NEW.id, NULL, NEW.author_id, NULL, NEW.author_id);
        PERFORM set_config(recorded, 'on', true);
    ELSIF OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL THEN
        PERFORM record_event('article_deleted', NEW.id, NULL, NEW.author_id, NULL, NEW.author_id);
    ELSIF NEW.deleted_at IS NULL AND coalesce(current_setting(recorded, true), '') <> 'on' THEN
        PERFORM record_event('article_updated', NEW.id, NULL, NEW.author_id, NULL, NULL);
        PERFORM set_config(recorded, 'on', true);
    END IF;
    RETURN NULL;
END;
$$;

UPDATE events SET kind = 'article_updated' WHERE kind = 'article_favorites_changed';
DELETE FROM events WHERE kind = 'article_unfavorited';
ALTER TABLE events DROP CONSTRAINT events_kind_known;
ALTER TABLE events ADD CONSTRAINT events_kind_known CHECK (kind IN (
    'comment_added', 'comment_deleted', 'article_published', 'article_updated',
    'article_deleted', 'session_revoked', 'article_favorited', 'user_followed',
    'user_created', 'user_updated', 'user_unfollowed'));
