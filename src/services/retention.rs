//! Retention: what is kept, and for how long. Each purge removes rows in
//! small batches, each its own short statement, with a breath between
//! them so requests are never queued behind a long lock.

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};

use crate::{
    db::{
        Database,
        models::{
            event, job,
            retention::{self, SoftDeleted},
            webhook,
        },
    },
    error::AppResult,
};

/// The pause between two batches.
const BREATH: Duration = Duration::from_millis(20);
/// Failed jobs and finished webhook deliveries are kept this long, to be
/// seen and redelivered.
const RECORDS_KEPT: TimeDelta = TimeDelta::days(30);

/// What one purge removed, and its longest batch.
#[derive(Debug, Default, Clone, Copy)]
pub struct Purged {
    pub rows: usize,
    pub batches: usize,
    pub longest_batch: Duration,
}

/// What one batch removes.
#[derive(Debug, Clone, Copy)]
enum Target {
    EndedSessions,
    ExpiredRefreshTokens,
    SoftDeleted(SoftDeleted, DateTime<Utc>),
    Events(DateTime<Utc>),
    FailedJobs(DateTime<Utc>),
    FinishedDeliveries(DateTime<Utc>),
}

async fn batch(db: &Database, target: Target, limit: i64) -> AppResult<usize> {
    let mut conn = db.conn().await?;
    let conn = &mut conn;
    Ok(match target {
        Target::EndedSessions => retention::purge_ended_sessions(conn, limit).await?,
        Target::ExpiredRefreshTokens => {
            retention::purge_expired_refresh_tokens(conn, limit).await?
        }
        Target::SoftDeleted(table, before) => {
            retention::purge_soft_deleted(conn, table, before, limit).await?
        }
        Target::Events(before) => event::purge_before(conn, before, limit).await?,
        Target::FailedJobs(before) => job::purge_failed_before(conn, before, limit).await?,
        Target::FinishedDeliveries(before) => {
            webhook::purge_finished_before(conn, before, limit).await?
        }
    })
}

/// Removes `target` in batches of `size` until one removes fewer.
async fn in_batches(db: &Database, size: u32, target: Target) -> AppResult<Purged> {
    let mut purged = Purged::default();
    loop {
        let started = Instant::now();
        let removed = batch(db, target, i64::from(size)).await?;
        purged.longest_batch = purged.longest_batch.max(started.elapsed());
        purged.rows += removed;
        purged.batches += 1;
        if removed < size as usize {
            return Ok(purged);
        }
        tokio::time::sleep(BREATH).await;
    }
}

impl Purged {
    fn and(self, other: Self) -> Self {
        Self {
            rows: self.rows + other.rows,
            batches: self.batches + other.batches,
            longest_batch: self.longest_batch.max(other.longest_batch),
        }
    }
}

/// Expired and revoked sessions (with their refresh tokens), and expired
/// refresh tokens of live sessions.
pub async fn sessions(db: &Database, size: u32) -> AppResult<Purged> {
    let sessions = in_batches(db, size, Target::EndedSessions).await?;
    let tokens = in_batches(db, size, Target::ExpiredRefreshTokens).await?;
    Ok(sessions.and(tokens))
}

/// Comments, articles and users soft-deleted more than `days` days ago.
/// A user's removal takes what is theirs with it, so users go in smaller
/// batches.
pub async fn soft_deleted(db: &Database, days: u32, size: u32) -> AppResult<Purged> {
    let before = Utc::now() - TimeDelta::days(i64::from(days));
    let mut total = Purged::default();
    for table in SoftDeleted::ALL {
        let size = if table == SoftDeleted::Users {
            (size / 10).max(1)
        } else {
            size
        };
        let purged = in_batches(db, size, Target::SoftDeleted(table, before)).await?;
        if purged.rows > 0 {
            tracing::info!(
                table = table.table(),
                rows = purged.rows,
                "purged soft-deleted rows"
            );
        }
        total = total.and(purged);
    }
    Ok(total)
}

/// Events older than `event_days` days, failed jobs and finished webhook
/// deliveries older than thirty.
pub async fn records(db: &Database, event_days: u32, size: u32) -> AppResult<Purged> {
    let events_before = Utc::now() - TimeDelta::days(i64::from(event_days));
    let records_before = Utc::now() - RECORDS_KEPT;
    let events = in_batches(db, size, Target::Events(events_before)).await?;
    let jobs = in_batches(db, size, Target::FailedJobs(records_before)).await?;
    let deliveries = in_batches(db, size, Target::FinishedDeliveries(records_before)).await?;
    Ok(events.and(jobs).and(deliveries))
}
