-- Webhooks: users' endpoints, and each event delivered to one of them.

CREATE TABLE webhook_endpoints (
    id                         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id                    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    url                        text        NOT NULL,
    event_types                text[]      NOT NULL,
    -- `whsec_` and the base64 of the signing key. The previous secret
    -- still signs until it expires, so receivers can switch without a gap.
    secret                     text        NOT NULL,
    previous_secret            text,
    previous_secret_expires_at timestamptz,
    -- Since when every attempt failed (null after a success).
    failing_since              timestamptz,
    disabled_at                timestamptz,
    disabled_reason            text,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT webhook_endpoints_disabled_reason CHECK ((disabled_at IS NULL) = (disabled_reason IS NULL))
);

-- A user's endpoints, newest first (keyset on created_at, id).
CREATE INDEX webhook_endpoints_user_idx ON webhook_endpoints (user_id, created_at DESC, id DESC);

CREATE TRIGGER webhook_endpoints_set_updated_at BEFORE UPDATE ON webhook_endpoints
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- The id is the `webhook-id` a receiver deduplicates on: it stays the same
-- across retries and redeliveries. One delivery per event and endpoint, so
-- a fan-out that runs twice delivers once.
CREATE TABLE webhook_deliveries (
    id              uuid        PRIMARY KEY,
    endpoint_id     uuid        NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id        bigint      NOT NULL,
    event_type      text        NOT NULL,
    payload         jsonb       NOT NULL,
    status          text        NOT NULL DEFAULT 'pending',
    attempts        integer     NOT NULL DEFAULT 0,
    response_status integer,
    last_error      text,
    next_attempt_at timestamptz,
    delivered_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT webhook_deliveries_status_known CHECK (status IN ('pending', 'succeeded', 'failed')),
    CONSTRAINT webhook_deliveries_once UNIQUE (endpoint_id, event_id)
);

-- An endpoint's deliveries, newest first; its backlog.
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, created_at DESC, id DESC);
CREATE INDEX webhook_deliveries_pending_idx ON webhook_deliveries (endpoint_id) WHERE status = 'pending';

CREATE TRIGGER webhook_deliveries_set_updated_at BEFORE UPDATE ON webhook_deliveries
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Favorites and follows become events too, with who did it (`actor_id`):
-- `user_id` stays the user an event concerns (an article's author, the
-- followed user).
ALTER TABLE events ADD COLUMN actor_id uuid;
ALTER TABLE events DROP CONSTRAINT events_kind_known;
ALTER TABLE events ADD CONSTRAINT events_kind_known CHECK (kind IN (
    'comment_added', 'comment_deleted', 'article_published', 'article_updated',
    'article_deleted', 'session_revoked', 'article_favorited', 'user_followed'));

DROP FUNCTION record_event(text, uuid, uuid, uuid, uuid);

-- As before, and: an event webhooks may announce enqueues their fan-out
-- job in the same transaction, when anybody has an endpoint at all (the
-- job decides who gets what).
CREATE FUNCTION record_event(
    event_kind text, event_article uuid, event_comment uuid, event_user uuid,
    event_session uuid, event_actor uuid
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    event_id bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(7462638);
    INSERT INTO events (kind, article_id, comment_id, user_id, session_id, actor_id)
        VALUES (event_kind, event_article, event_comment, event_user, event_session, event_actor)
        RETURNING id INTO event_id;
    PERFORM pg_notify('conduit_events', event_id::text);
    IF event_kind IN ('comment_added', 'article_published', 'article_favorited', 'user_followed')
        AND EXISTS (SELECT 1 FROM webhook_endpoints WHERE disabled_at IS NULL) THEN
        INSERT INTO jobs (kind, payload)
            VALUES ('webhooks.fan_out', jsonb_build_object('event_id', event_id));
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION comments_record_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM record_event('comment_added', NEW.article_id, NEW.id, NEW.author_id, NULL, NEW.author_id);
    ELSIF OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL THEN
        PERFORM record_event('comment_deleted', NEW.article_id, NEW.id, NEW.author_id, NULL, NEW.author_id);
    END IF;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION articles_record_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM record_event('article_published', NEW.id, NULL, NEW.author_id, NULL, NEW.author_id);
    ELSIF OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL THEN
        PERFORM record_event('article_deleted', NEW.id, NULL, NEW.author_id, NULL, NEW.author_id);
    ELSIF NEW.deleted_at IS NULL THEN
        -- An edit (tags included: their change touches the row) or a new
        -- favorites count.
        PERFORM record_event('article_updated', NEW.id, NULL, NEW.author_id, NULL, NULL);
    END IF;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION sessions_record_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL THEN
        PERFORM record_event('session_revoked', NULL, NULL, NEW.user_id, NEW.id, NEW.user_id);
    END IF;
    RETURN NULL;
END;
$$;

CREATE FUNCTION favorites_record_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM record_event('article_favorited', NEW.article_id, NULL,
        (SELECT author_id FROM articles WHERE id = NEW.article_id), NULL, NEW.user_id);
    RETURN NULL;
END;
$$;

CREATE TRIGGER favorites_record_event AFTER INSERT ON favorites
    FOR EACH ROW EXECUTE FUNCTION favorites_record_event();

CREATE FUNCTION follows_record_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM record_event('user_followed', NULL, NULL, NEW.followee_id, NULL, NEW.follower_id);
    RETURN NULL;
END;
$$;

CREATE TRIGGER follows_record_event AFTER INSERT ON follows
    FOR EACH ROW EXECUTE FUNCTION follows_record_event();
