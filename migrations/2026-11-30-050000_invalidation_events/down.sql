DROP TRIGGER follows_record_unfollow ON follows;
DROP FUNCTION follows_record_unfollow();
DROP TRIGGER users_record_event ON users;
DROP FUNCTION users_record_event();
DELETE FROM events WHERE kind IN ('user_created', 'user_updated', 'user_unfollowed');
ALTER TABLE events DROP CONSTRAINT events_kind_known;
ALTER TABLE events ADD CONSTRAINT events_kind_known CHECK (kind IN (
    'comment_added', 'comment_deleted', 'article_published', 'article_updated',
    'article_deleted', 'session_revoked', 'article_favorited', 'user_followed'));
