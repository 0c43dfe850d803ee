DROP TRIGGER follows_record_event ON follows;
DROP FUNCTION follows_record_event();
DROP TRIGGER favorites_record_event ON favorites;
DROP FUNCTION favorites_record_event();

DROP FUNCTION record_event(text, uuid, uuid, uuid, uuid, uuid);
CREATE FUNCTION record_event(
    event_kind text, event_article uuid, event_comment uuid, event_user uuid, event_session uuid
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    event_id bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(7462638);
    INSERT INTO events (kind, article_id, comment_id, user_id, session_id)
        VALUES (event_kind, event_article, event_comment, event_user, event_session)
        RETURNING id INTO event_id;
    PERFORM pg_notify('conduit_events', event_id::text);
END;
$$;

CREATE OR REPLACE FUNCTION comments_record_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM record_event('comment_added', NEW.article_id, NEW.id, NEW.author_id, NULL);
    ELSIF OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL THEN
        PERFORM record_event('comment_deleted', NEW.article_id, NEW.id, NEW.author_id, NULL);
    END IF;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION articles_record_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM record_event('article_published', NEW.id, NULL, NEW.author_id, NULL);
    ELSIF OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL THEN
        PERFORM record_event('article_deleted', NEW.id, NULL, NEW.author_id, NULL);
    ELSIF NEW.deleted_at IS NULL THEN
        PERFORM record_event('article_updated', NEW.id, NULL, NEW.author_id, NULL);
    END IF;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION sessions_record_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL THEN
        PERFORM record_event('session_revoked', NULL, NULL, NEW.user_id, NEW.id);
    END IF;
    RETURN NULL;
END;
$$;

DELETE FROM events WHERE kind IN ('article_favorited', 'user_followed');
ALTER TABLE events DROP CONSTRAINT events_kind_known;
ALTER TABLE events ADD CONSTRAINT events_kind_known CHECK (kind IN (
    'comment_added', 'comment_deleted', 'article_published',
    'article_updated', 'article_deleted', 'session_revoked'));
ALTER TABLE events DROP COLUMN actor_id;

DROP TABLE webhook_deliveries;
DROP TABLE webhook_endpoints;
