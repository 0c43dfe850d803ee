DROP INDEX sessions_all_user_id_idx;
DROP INDEX articles_author_id_idx;
DROP INDEX comments_author_id_idx;
DROP INDEX comments_article_id_idx;
