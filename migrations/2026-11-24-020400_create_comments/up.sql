CREATE TABLE comments (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    article_id uuid        NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
    author_id  uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    body       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz,
    CONSTRAINT comments_body_present CHECK (btrim(body) <> '' AND char_length(body) <= 10000)
);

-- Comments of an article, newest first (keyset on created_at, id).
CREATE INDEX comments_article_recent_idx ON comments (article_id, created_at DESC, id DESC)
    WHERE deleted_at IS NULL;

CREATE TRIGGER comments_set_updated_at BEFORE UPDATE ON comments
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
