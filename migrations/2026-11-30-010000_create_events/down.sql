DROP TRIGGER sessions_record_event ON sessions;
DROP FUNCTION sessions_record_event();
DROP TRIGGER articles_record_event ON articles;
DROP FUNCTION articles_record_event();
DROP TRIGGER comments_record_event ON comments;
DROP FUNCTION comments_record_event();
DROP FUNCTION record_event(text, uuid, uuid, uuid, uuid);
DROP TABLE events;
