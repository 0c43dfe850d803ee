CREATE TABLE favorites (
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    article_id uuid        NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, article_id)
);

-- The primary key serves "favorited by a user"; this serves "who favorited".
CREATE INDEX favorites_article_idx ON favorites (article_id);

CREATE TRIGGER favorites_set_updated_at BEFORE UPDATE ON favorites
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE FUNCTION favorites_count_inserted() RETURNS trigger AS $$
BEGIN
    UPDATE articles SET favorites_count = articles.favorites_count + n.count
    FROM (SELECT article_id, count(*) AS count FROM inserted GROUP BY article_id) n
    WHERE articles.id = n.article_id;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE FUNCTION favorites_count_deleted() RETURNS trigger AS $$
BEGIN
    UPDATE articles SET favorites_count = articles.favorites_count - n.count
    FROM (SELECT article_id, count(*) AS count FROM deleted GROUP BY article_id) n
    WHERE articles.id = n.article_id;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER favorites_after_insert AFTER INSERT ON favorites
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION favorites_count_inserted();
CREATE TRIGGER favorites_after_delete AFTER DELETE ON favorites
    REFERENCING OLD TABLE AS deleted
    FOR EACH STATEMENT EXECUTE FUNCTION favorites_count_deleted();
