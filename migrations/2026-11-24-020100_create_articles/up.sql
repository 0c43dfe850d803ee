CREATE TABLE articles (
    id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    author_id       uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    slug            text        NOT NULL,
    title           text        NOT NULL,
    description     text        NOT NULL,
    body            text        NOT NULL,
    favorites_count integer     NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz,
    CONSTRAINT articles_title_present CHECK (btrim(title) <> '' AND char_length(title) <= 200),
    CONSTRAINT articles_description_length CHECK (char_length(description) <= 1000),
    CONSTRAINT articles_body_present CHECK (btrim(body) <> '' AND char_length(body) <= 100000),
    CONSTRAINT articles_slug_format CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$'),
    CONSTRAINT articles_favorites_count_non_negative CHECK (favorites_count >= 0)
);

-- Slugs are unique among live articles.
CREATE UNIQUE INDEX articles_slug_key ON articles (slug) WHERE deleted_at IS NULL;
-- Global list and author lists, newest first (keyset on created_at, id).
CREATE INDEX articles_recent_idx ON articles (created_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX articles_author_recent_idx ON articles (author_id, created_at DESC, id DESC)
    WHERE deleted_at IS NULL;

CREATE TRIGGER articles_set_updated_at BEFORE UPDATE ON articles
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
