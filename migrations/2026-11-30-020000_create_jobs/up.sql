-- The job queue: work that runs outside a request, at least once.
--
-- A job is inserted in the transaction of the write that causes it (a
-- rolled-back write leaves none). A worker claims due jobs with
-- `FOR UPDATE SKIP LOCKED`, marks them running under a lease it renews
-- while it works, and on the outcome deletes the job (done), puts it back
-- with a later `run_at` (retry) or marks it failed (no attempts left; the
-- row stays, with its last error, for an operator). A job whose lease ran
-- out belongs to a worker that died: it is queued again.
CREATE TABLE jobs (
    id           bigserial   PRIMARY KEY,
    kind         text        NOT NULL,
    payload      jsonb       NOT NULL DEFAULT '{}',
    state        text        NOT NULL DEFAULT 'queued',
    attempts     integer     NOT NULL DEFAULT 0,
    max_attempts integer     NOT NULL DEFAULT 10,
    run_at       timestamptz NOT NULL DEFAULT now(),
    locked_by    text,
    locked_until timestamptz,
    last_error   text,
    -- The request that caused the job, for its log lines: set explicitly,
    -- or taken from the writing transaction's `conduit.request_id`.
    request_id   text        DEFAULT NULLIF(current_setting('conduit.request_id', true), ''),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT jobs_state_known CHECK (state IN ('queued', 'running', 'failed')),
    CONSTRAINT jobs_attempts_positive CHECK (max_attempts > 0 AND attempts >= 0)
);

-- What is due, in order; what is running, by lease.
CREATE INDEX jobs_due_idx ON jobs (run_at, id) WHERE state = 'queued';
CREATE INDEX jobs_leased_idx ON jobs (locked_until) WHERE state = 'running';

CREATE TRIGGER jobs_set_updated_at BEFORE UPDATE ON jobs
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Wakes idle workers at commit; the payload is empty (workers read the table).
CREATE FUNCTION jobs_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('conduit_jobs', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_notify AFTER INSERT ON jobs
    FOR EACH STATEMENT EXECUTE FUNCTION jobs_notify();

-- Recurring jobs: one row per schedule. A worker that finds `next_run_at`
-- past moves it on and enqueues the job in one transaction, so each
-- period's run is enqueued once however many workers look.
CREATE TABLE job_schedules (
    name        text        PRIMARY KEY,
    next_run_at timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- What the retention jobs look for, so each of their small batches finds
-- its rows without scanning a table.
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);
CREATE INDEX sessions_revoked_at_idx ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX refresh_tokens_expires_at_idx ON refresh_tokens (expires_at);
CREATE INDEX articles_deleted_at_idx ON articles (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE INDEX comments_deleted_at_idx ON comments (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE INDEX users_deleted_at_idx ON users (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE INDEX events_created_at_idx ON events (created_at);
