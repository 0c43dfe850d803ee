CREATE OR REPLACE FUNCTION articles_record_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM record_event('article_published', NEW.id, NULL, NEW.author_id, NULL, NEW.author_id);
    ELSIF OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL THEN
        PERFORM record_event('article_deleted', NEW.id, NULL, NEW.author_id, NULL, NEW.author_id);
    ELSIF NEW.deleted_at IS NULL THEN
        -- An edit (tags included: their change touches the row) or a new
        -- favorites count.
        PERFORM record_event('article_updated', NEW.id, NULL, NEW.author_id, NULL, NULL);
    END IF;
    RETURN NULL;
END;
$$;
DROP TRIGGER article_tags_after_delete ON article_tags;
DROP TRIGGER article_tags_after_update ON article_tags;
DROP TRIGGER article_tags_after_insert ON article_tags;
DROP FUNCTION article_tags_changed();
DROP FUNCTION refresh_tag_lists(uuid[]);
ALTER TABLE articles DROP COLUMN tag_list;
