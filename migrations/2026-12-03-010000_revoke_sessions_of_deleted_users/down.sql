-- Sessions revoked on the way up stay revoked: their accounts are deleted.
DROP TRIGGER users_revoke_sessions ON users;
DROP FUNCTION users_revoke_sessions();
