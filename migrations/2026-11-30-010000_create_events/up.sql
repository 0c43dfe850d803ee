-- What happened, in commit order: the source of subscriptions. Rows are
-- written by triggers in the writing transaction (a rolled-back write
-- leaves none) and announced with NOTIFY, whose payload is only the id.
--
-- Each writer takes one transaction-scoped advisory lock before drawing its
-- id, so ids are handed out in the order transactions commit: a reader that
-- has seen every id up to N never finds a smaller one later, and "the
-- events after N" is an exact resume point. It serialises the writes that
-- make events (comments, articles, favorites, sign-outs) for the moment
-- between their trigger and their commit.
CREATE TABLE events (
    id         bigserial   PRIMARY KEY,
    kind       text        NOT NULL,
    article_id uuid,
    comment_id uuid,
    -- The article's author (article events), the comment's author
    -- (comment events), the signed-out user (session events).
    user_id    uuid,
    session_id uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_kind_known CHECK (kind IN (
        'comment_added', 'comment_deleted', 'article_published',
        'article_updated', 'article_deleted', 'session_revoked'))
);

-- Replays of one article's events, and of the articles some authors published.
CREATE INDEX events_article_idx ON events (article_id, id) WHERE article_id IS NOT NULL;
CREATE INDEX events_published_idx ON events (user_id, id) WHERE kind = 'article_published';

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

CREATE FUNCTION comments_record_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM record_event('comment_added', NEW.article_id, NEW.id, NEW.author_id, NULL);
    ELSIF OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL THEN
        PERFORM record_event('comment_deleted', NEW.article_id, NEW.id, NEW.author_id, NULL);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER comments_record_event AFTER INSERT OR UPDATE OF deleted_at ON comments
    FOR EACH ROW EXECUTE FUNCTION comments_record_event();

CREATE FUNCTION articles_record_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM record_event('article_published', NEW.id, NULL, NEW.author_id, NULL);
    ELSIF OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL THEN
        PERFORM record_event('article_deleted', NEW.id, NULL, NEW.author_id, NULL);
    ELSIF NEW.deleted_at IS NULL THEN
        -- An edit (tags included: their change touches the row) or a new
        -- favorites count.
        PERFORM record_event('article_updated', NEW.id, NULL, NEW.author_id, NULL);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER articles_record_event AFTER INSERT OR UPDATE ON articles
    FOR EACH ROW EXECUTE FUNCTION articles_record_event();

CREATE FUNCTION sessions_record_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL THEN
        PERFORM record_event('session_revoked', NULL, NULL, NEW.user_id, NEW.id);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER sessions_record_event AFTER UPDATE OF revoked_at ON sessions
    FOR EACH ROW EXECUTE FUNCTION sessions_record_event();
