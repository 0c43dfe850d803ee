CREATE TABLE tags (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    name       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tags_name_format CHECK (name = lower(btrim(name)) AND char_length(name) BETWEEN 1 AND 32)
);

CREATE UNIQUE INDEX tags_name_key ON tags (name);

CREATE TRIGGER tags_set_updated_at BEFORE UPDATE ON tags
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- `position` keeps each article's tags in the order the author gave.
CREATE TABLE article_tags (
    article_id uuid        NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
    tag_id     uuid        NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    position   smallint    NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (article_id, tag_id)
);

-- Articles with a tag.
CREATE INDEX article_tags_tag_idx ON article_tags (tag_id, article_id);

CREATE TRIGGER article_tags_set_updated_at BEFORE UPDATE ON article_tags
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
