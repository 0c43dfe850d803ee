DROP TABLE favorites;
DROP FUNCTION favorites_count_inserted();
DROP FUNCTION favorites_count_deleted();
