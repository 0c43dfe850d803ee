-- Indexes the hard deletes of retention need. A row removed for good
-- cascades to what references it; the existing indexes on these columns
-- cover only live rows (`WHERE deleted_at IS NULL` and the like), so each
-- cascade would otherwise scan the whole referencing table.
CREATE INDEX comments_article_id_idx ON comments (article_id);
CREATE INDEX comments_author_id_idx ON comments (author_id);
CREATE INDEX articles_author_id_idx ON articles (author_id);
CREATE INDEX sessions_all_user_id_idx ON sessions (user_id);
