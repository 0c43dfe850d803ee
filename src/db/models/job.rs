//! The job queue's rows (see the jobs migration): the kinds of job,
//! enqueueing in the caller's transaction, claiming with `FOR UPDATE SKIP
//! LOCKED`, and the outcomes of a run.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::{
    prelude::*,
    sql_types::{BigInt, Text},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::text_enum::text_enum;
use crate::db::schema::jobs;

text_enum! {
    /// What a job does, as stored in `jobs.kind` (and as `record_event`
    /// writes its fan-out jobs).
    pub enum JobKind {
        /// Make the deliveries of one event (payload `event_id`).
        FanOutWebhooks = "webhooks.fan_out",
        /// One attempt at one delivery (payload `delivery_id`).
        DeliverWebhook = "webhooks.deliver",
        PurgeSessions = "retention.sessions",
        PurgeSoftDeleted = "retention.soft_deleted",
        PurgeRecords = "retention.records",
    }
}

/// A claimed job: what a worker needs to run it.
#[derive(Debug, Clone, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = jobs, check_for_backend(diesel::pg::Pg))]
pub struct Job {
    pub id: i64,
    /// As stored: a kind this build does not know is claimed too, and
    /// fails visibly (see [`Job::kind`]).
    pub kind: String,
    pub payload: serde_json::Value,
    /// Attempts so far, this one included.
    pub attempts: i32,
    pub max_attempts: i32,
    pub request_id: Option<String>,
    /// When the job was due: how long it waited is measured from here.
    pub run_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

impl Job {
    /// The job's kind, `None` when this build knows no such kind.
    pub fn kind(&self) -> Option<JobKind> {
        JobKind::from_name(&self.kind)
    }
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = jobs)]
pub struct NewJob<'a> {
    pub kind: JobKind,
    pub payload: serde_json::Value,
    /// `None`: now.
    pub run_at: Option<DateTime<Utc>>,
    pub max_attempts: i32,
    /// `None`: the writing transaction's `conduit.request_id`, if any.
    pub request_id: Option<&'a str>,
}

/// Adds jobs; inside a transaction they exist only if it commits.
pub async fn enqueue(conn: &mut AsyncPgConnection, new: &[NewJob<'_>]) -> QueryResult<usize> {
    if new.is_empty() {
        return Ok(0);
    }
    diesel::insert_into(jobs::table)
        .values(new)
        .execute(conn)
        .await
}

/// Names the request a transaction works for: jobs its triggers enqueue
/// carry it (the column's default reads it).
pub async fn tag_transaction(conn: &mut AsyncPgConnection, request_id: &str) -> QueryResult<()> {
    diesel::sql_query("SELECT set_config('conduit.request_id', $1, true)")
        .bind::<Text, _>(request_id)
        .execute(conn)
        .await
        .map(drop)
}

/// Claims up to `limit` due jobs for `worker`, oldest due first, leased
/// for `lease`; jobs other workers are claiming are skipped, not waited for.
pub async fn claim(
    conn: &mut AsyncPgConnection,
    worker: &str,
    limit: i64,
    lease: Duration,
) -> QueryResult<Vec<Job>> {
    diesel::sql_query(
        "UPDATE jobs SET state = 'running', attempts = attempts + 1, locked_by = $1, \
             locked_until = now() + $2 * interval '1 millisecond' \
         WHERE id IN ( \
             SELECT id FROM jobs WHERE state = 'queued' AND run_at <= now() \
             ORDER BY run_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) \
         RETURNING id, kind, payload, attempts, max_attempts, request_id, run_at, created_at",
    )
    .bind::<Text, _>(worker)
    .bind::<BigInt, _>(millis(lease))
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await
}

/// The job is done: it leaves the queue.
pub async fn finish(conn: &mut AsyncPgConnection, id: i64, worker: &str) -> QueryResult<usize> {
    diesel::sql_query("DELETE FROM jobs WHERE id = $1 AND locked_by = $2 AND state = 'running'")
        .bind::<BigInt, _>(id)
        .bind::<Text, _>(worker)
        .execute(conn)
        .await
}

/// The job runs again after `delay`.
pub async fn retry(
    conn: &mut AsyncPgConnection,
    id: i64,
    worker: &str,
    delay: Duration,
    error: &str,
) -> QueryResult<usize> {
    diesel::sql_query(
        "UPDATE jobs SET state = 'queued', run_at = now() + $3 * interval '1 millisecond', \
             locked_by = NULL, locked_until = NULL, last_error = $4 \
         WHERE id = $1 AND locked_by = $2 AND state = 'running'",
    )
    .bind::<BigInt, _>(id)
    .bind::<Text, _>(worker)
    .bind::<BigInt, _>(millis(delay))
    .bind::<Text, _>(error)
    .execute(conn)
    .await
}

/// The job will not run again; the row stays, with its error.
pub async fn fail(
    conn: &mut AsyncPgConnection,
    id: i64,
    worker: &str,
    error: &str,
) -> QueryResult<usize> {
    diesel::sql_query(
        "UPDATE jobs SET state = 'failed', locked_by = NULL, locked_until = NULL, last_error = $3 \
         WHERE id = $1 AND locked_by = $2 AND state = 'running'",
    )
    .bind::<BigInt, _>(id)
    .bind::<Text, _>(worker)
    .bind::<Text, _>(error)
    .execute(conn)
    .await
}

/// Extends the lease of every job `worker` runs.
pub async fn renew(
    conn: &mut AsyncPgConnection,
    worker: &str,
    lease: Duration,
) -> QueryResult<usize> {
    diesel::sql_query(
        "UPDATE jobs SET locked_until = now() + $2 * interval '1 millisecond' \
         WHERE locked_by = $1 AND state = 'running'",
    )
    .bind::<Text, _>(worker)
    .bind::<BigInt, _>(millis(lease))
    .execute(conn)
    .await
}

/// Gives `worker`'s unfinished jobs back to the queue, due now, the
/// interrupted attempt not counted (a stopping worker's doing, not the job's).
pub async fn release(conn: &mut AsyncPgConnection, worker: &str) -> QueryResult<usize> {
    diesel::sql_query(
        "UPDATE jobs SET state = 'queued', attempts = greatest(attempts - 1, 0), run_at = now(), \
             locked_by = NULL, locked_until = NULL, last_error = 'interrupted by a shutdown' \
         WHERE locked_by = $1 AND state = 'running'",
    )
    .bind::<Text, _>(worker)
    .execute(conn)
    .await
}

/// Queues again the jobs whose lease ran out (their worker died), or fails
/// those with no attempts left.
pub async fn requeue_expired(conn: &mut AsyncPgConnection) -> QueryResult<usize> {
    diesel::sql_query(
        "UPDATE jobs SET \
             state = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END, \
             run_at = now(), locked_by = NULL, locked_until = NULL, \
             last_error = 'its worker stopped (the lease ran out)' \
         WHERE state = 'running' AND locked_until < now()",
    )
    .execute(conn)
    .await
}

/// Jobs per kind and state: the queue's depth.
pub async fn depth(conn: &mut AsyncPgConnection) -> QueryResult<Vec<(String, String, i64)>> {
    jobs::table
        .group_by((jobs::kind, jobs::state))
        .select((jobs::kind, jobs::state, diesel::dsl::count_star()))
        .load(conn)
        .await
}

/// Failed jobs last touched before `before`, up to `limit`: removed.
pub async fn purge_failed_before(
    conn: &mut AsyncPgConnection,
    before: DateTime<Utc>,
    limit: i64,
) -> QueryResult<usize> {
    diesel::sql_query(
        "DELETE FROM jobs WHERE id IN ( \
             SELECT id FROM jobs WHERE state = 'failed' AND updated_at < $1 LIMIT $2)",
    )
    .bind::<diesel::sql_types::Timestamptz, _>(before)
    .bind::<BigInt, _>(limit)
    .execute(conn)
    .await
}

/// Enqueues a job for each schedule (a kind and its period) that is due,
/// and moves the schedule on, in one statement; a schedule seen for the
/// first time is due. However many workers run it at once, each period's
/// job is enqueued once: the row locks of the update and the conflict of
/// the insert decide. Returns how many jobs were enqueued.
pub async fn enqueue_due(
    conn: &mut AsyncPgConnection,
    schedules: &[(JobKind, Duration)],
    max_attempts: i32,
) -> QueryResult<usize> {
    use diesel::sql_types::{Array, Integer};
    let names: Vec<&str> = schedules.iter().map(|(kind, _)| kind.as_str()).collect();
    let periods: Vec<i64> = schedules.iter().map(|(_, every)| millis(*every)).collect();
    diesel::sql_query(
        "WITH wanted AS ( \
             SELECT name, every * interval '1 millisecond' AS every \
             FROM unnest($1::text[], $2::bigint[]) AS w(name, every)), \
         due AS ( \
             UPDATE job_schedules s SET next_run_at = now() + w.every, updated_at = now() \
             FROM wanted w WHERE s.name = w.name AND s.next_run_at <= now() \
             RETURNING s.name), \
         seen AS ( \
             INSERT INTO job_schedules (name, next_run_at) \
             SELECT name, now() + every FROM wanted \
             ON CONFLICT (name) DO NOTHING RETURNING name) \
         INSERT INTO jobs (kind, max_attempts) \
         SELECT name, $3 FROM due UNION ALL SELECT name, $3 FROM seen",
    )
    .bind::<Array<Text>, _>(&names)
    .bind::<Array<BigInt>, _>(&periods)
    .bind::<Integer, _>(max_attempts)
    .execute(conn)
    .await
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
