DROP TABLE follows;
DROP FUNCTION follows_count_inserted();
DROP FUNCTION follows_count_deleted();
ALTER TABLE users DROP COLUMN followers_count;
