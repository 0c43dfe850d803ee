-- Counts a profile page needs live on the row, kept exact by triggers.
ALTER TABLE users ADD COLUMN followers_count integer NOT NULL DEFAULT 0
    CONSTRAINT users_followers_count_non_negative CHECK (followers_count >= 0);

CREATE TABLE follows (
    follower_id uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    followee_id uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (follower_id, followee_id),
    CONSTRAINT follows_no_self_follow CHECK (follower_id <> followee_id)
);

-- Followers of a user, newest first (keyset on created_at, follower_id).
CREATE INDEX follows_followee_idx ON follows (followee_id, created_at DESC, follower_id DESC);

CREATE TRIGGER follows_set_updated_at BEFORE UPDATE ON follows
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Statement-level, so a bulk insert costs one update per followee.
CREATE FUNCTION follows_count_inserted() RETURNS trigger AS $$
BEGIN
    UPDATE users SET followers_count = users.followers_count + n.count
    FROM (SELECT followee_id, count(*) AS count FROM inserted GROUP BY followee_id) n
    WHERE users.id = n.followee_id;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE FUNCTION follows_count_deleted() RETURNS trigger AS $$
BEGIN
    UPDATE users SET followers_count = users.followers_count - n.count
    FROM (SELECT followee_id, count(*) AS count FROM deleted GROUP BY followee_id) n
    WHERE users.id = n.followee_id;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER follows_after_insert AFTER INSERT ON follows
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION follows_count_inserted();
CREATE TRIGGER follows_after_delete AFTER DELETE ON follows
    REFERENCING OLD TABLE AS deleted
    FOR EACH STATEMENT EXECUTE FUNCTION follows_count_deleted();
