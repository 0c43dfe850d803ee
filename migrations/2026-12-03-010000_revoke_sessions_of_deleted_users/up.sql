-- A deleted account signs out everywhere, whoever deletes it (an operator,
-- retention, a future mutation): its sessions are revoked in the deleting
-- transaction, so each records `session_revoked` and the sockets they
-- authenticated close at once instead of streaming until their access
-- tokens expire.
CREATE FUNCTION users_revoke_sessions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE sessions SET revoked_at = now()
        WHERE user_id = NEW.id AND revoked_at IS NULL;
    RETURN NULL;
END;
$$;

CREATE TRIGGER users_revoke_sessions AFTER UPDATE OF deleted_at ON users
    FOR EACH ROW WHEN (OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL)
    EXECUTE FUNCTION users_revoke_sessions();

-- Accounts deleted before this trigger existed sign out too.
UPDATE sessions SET revoked_at = now()
    FROM users
    WHERE users.id = sessions.user_id
      AND users.deleted_at IS NOT NULL
      AND sessions.revoked_at IS NULL;
