//! The job queue's workers: work that runs outside a request, at least
//! once, on the PostgreSQL the server already uses (see the jobs migration
//! and `db::models::job`).
//!
//! A worker claims due jobs with `FOR UPDATE SKIP LOCKED` (several workers
//! never take the same job), runs up to its concurrency at once, renews
//! the lease of what it runs, and writes each outcome: done (the row goes),
//! retry (back in the queue, due after a backoff with jitter, or when the
//! job itself asked), failed (no attempts left: the row stays with its
//! error). A `LISTEN` connection wakes it when a job is enqueued; a poll
//! catches what is due later. Leases that run out (a killed worker) are
//! queued again by whichever worker looks next. On shutdown a worker stops
//! claiming, lets running jobs finish for a grace period, and hands back
//! the rest.

use std::{
    future::Future,
    panic::AssertUnwindSafe,
    pin::pin,
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::Utc;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use futures_util::{FutureExt, StreamExt};
use rand::Rng as _;
use tokio::{sync::Notify, task::JoinSet};
use tracing::Instrument as _;
use uuid::Uuid;

use crate::{
    config::Jobs as Settings,
    db::Database,
    db::models::job::{self, Job, JobKind},
    services::{
        retention,
        webhooks::{self, DeliveryOutcome},
    },
    telemetry::metrics_export,
    webhook_transport::WebhookTransport,
};

/// Attempts of a recurring job's run (the next period brings another).
const SCHEDULED_ATTEMPTS: i32 = 3;
/// Recurring jobs and their period.
const SCHEDULES: [(JobKind, Duration); 3] = [
    (JobKind::PurgeSessions, Duration::from_secs(3600)),
    (JobKind::PurgeSoftDeleted, Duration::from_secs(3600)),
    (JobKind::PurgeRecords, Duration::from_secs(3600)),
];
const CHANNEL: &str = "conduit_jobs";
/// The listening connection's `application_name`.
pub const LISTENER_NAME: &str = "conduit jobs listener";
/// How often the queue is read when nothing woke the worker.
const POLL_EVERY: Duration = Duration::from_secs(1);
/// How long a woken worker waits for more jobs before it claims, so a
/// burst is claimed in a few statements rather than one per job.
const GATHER: Duration = Duration::from_millis(20);
const SCHEDULES_EVERY: Duration = Duration::from_secs(30);
const DEPTH_EVERY: Duration = Duration::from_secs(10);
/// How often an idle listening connection is checked.
const CHECK_EVERY: Duration = Duration::from_secs(15);
/// Attempts of a job that does not say otherwise.
pub const DEFAULT_ATTEMPTS: i32 = 10;
/// The longest backoff between two attempts of a failing job.
const LONGEST_BACKOFF: Duration = Duration::from_secs(3600);

/// How a job's attempt ended, as the job sees it.
#[derive(Debug)]
enum Outcome {
    Done,
    /// Try again after `after` (the job knows when: a receiver's
    /// `Retry-After`, a webhook schedule).
    Retry {
        after: Duration,
        reason: String,
    },
}

/// What becomes of a job after an attempt.
enum Settled {
    Done,
    /// Due again after the wait, with the error that caused it.
    Retry(Duration, String),
    /// No attempts left; the error stays on the row.
    Failed(String),
}

impl Settled {
    /// The `outcome` label of `jobs_total`.
    fn label(&self) -> &'static str {
        match self {
            Self::Done => "succeeded",
            Self::Retry(..) => "retried",
            Self::Failed(_) => "failed",
        }
    }
}

/// The worker of one process.
pub struct Workers {
    /// A pool of the workers' own: jobs and requests never wait for each
    /// other's connections.
    db: Database,
    webhooks: WebhookTransport,
    url: String,
    settings: Settings,
    /// Names this process's claims in the queue.
    id: String,
}

impl Workers {
    /// Workers on `db` that listen on `url`.
    pub fn new(db: Database, webhooks: WebhookTransport, url: &str, settings: Settings) -> Self {
        let id = format!(
            "{}:{}",
            std::process::id(),
            &Uuid::new_v4().simple().to_string()[..8]
        );
        Self {
            db,
            webhooks,
            url: url.to_owned(),
            settings,
            id,
        }
    }

    /// Runs jobs until `stop` resolves, then finishes or hands back what runs.
    pub async fn run(self, stop: impl Future<Output = ()>) {
        let this = Arc::new(self);
        let wake = Arc::new(Notify::new());
        let listener = tokio::spawn(listen(this.url.clone(), wake.clone()));
        let concurrency = this.settings.workers.max(1);
        let mut running: JoinSet<Option<Duration>> = JoinSet::new();
        let mut stop = pin!(stop);
        let mut maintenance =
            tokio::time::interval((this.settings.lease / 3).max(Duration::from_millis(200)));
        let mut schedules = tokio::time::interval(SCHEDULES_EVERY);
        let mut depth = tokio::time::interval(DEPTH_EVERY);
        let mut next_poll = Instant::now();
        // Whether the last claim took all it could (more may be due).
        let mut backlog = false;
        tracing::info!(worker = %this.id, concurrency, "job worker started");
        loop {
            let free = concurrency.saturating_sub(running.len());
            if free > 0 && Instant::now() >= next_poll {
                match this.claim(free).await {
                    Ok(jobs) => {
                        backlog = jobs.len() == free;
                        for job in jobs {
                            running.spawn(this.clone().attempt(job));
                        }
                        // A full claim may have left more behind.
                        next_poll = if backlog {
                            Instant::now()
                        } else {
                            Instant::now() + POLL_EVERY
                        };
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "could not claim jobs");
                        next_poll = Instant::now() + POLL_EVERY;
                    }
                }
            }
            let poll = tokio::time::sleep_until(next_poll.into());
            tokio::select! {
                () = &mut stop => break,
                () = wake.notified() => next_poll = next_poll.min(Instant::now() + GATHER),
                Some(done) = running.join_next(), if !running.is_empty() => {
                    // A slot is free: worth a claim now if jobs were left
                    // behind, and when a retry this worker set is due.
                    if backlog {
                        next_poll = Instant::now();
                    }
                    if let Some(after) = done.ok().flatten() {
                        next_poll = next_poll.min(Instant::now() + after);
                    }
                }
                () = poll, if free > 0 => {}
                _ = maintenance.tick() => this.maintain().await,
                _ = schedules.tick() => this.enqueue_schedules().await,
                _ = depth.tick() => this.record_depth().await,
            }
        }
        listener.abort();
        this.stop(running).await;
    }

    async fn claim(&self, limit: usize) -> anyhow::Result<Vec<Job>> {
        let mut conn = self.db.conn().await?;
        Ok(job::claim(&mut conn, &self.id, limit as i64, self.settings.lease).await?)
    }

    /// Renews this worker's leases and queues again the jobs of workers
    /// whose leases ran out.
    async fn maintain(&self) {
        let result = async {
            let mut conn = self.db.conn().await?;
            job::renew(&mut conn, &self.id, self.settings.lease).await?;
            let requeued = job::requeue_expired(&mut conn).await?;
            if requeued > 0 {
                tracing::warn!(
                    jobs = requeued,
                    "queued again the jobs of a worker that stopped"
                );
            }
            anyhow::Ok(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "job queue upkeep failed");
        }
    }

    /// Enqueues each recurring job whose time has come (once per period,
    /// whichever worker gets there first).
    async fn enqueue_schedules(&self) {
        let result = async {
            let mut conn = self.db.conn().await?;
            anyhow::Ok(job::enqueue_due(&mut conn, &SCHEDULES, SCHEDULED_ATTEMPTS).await?)
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not enqueue recurring jobs");
        }
    }

    async fn record_depth(&self) {
        let Ok(mut conn) = self.db.conn().await else {
            return;
        };
        if let Ok(rows) = job::depth(&mut conn).await {
            for (kind, state, count) in rows {
                metrics_export::record_queue_depth(&kind, &state, count);
            }
        }
    }

    /// Runs one claimed job and writes its outcome. Returns when it is
    /// due again, if it is to be retried.
    async fn attempt(self: Arc<Self>, job: Job) -> Option<Duration> {
        let span = tracing::info_span!(
            "job",
            kind = %job.kind,
            job_id = job.id,
            attempt = job.attempts,
            request_id = job.request_id.as_deref().unwrap_or(""),
        );
        async move {
            let waited = (Utc::now() - job.run_at).to_std().unwrap_or_default();
            metrics_export::record_job_started(&job.kind, waited, job.attempts == 1);
            let started = Instant::now();
            let result = AssertUnwindSafe(self.perform(&job)).catch_unwind().await;
            let result = result.unwrap_or_else(|_| Err(anyhow::anyhow!("the job panicked")));
            let took = started.elapsed();
            let last = job.attempts >= job.max_attempts;
            let settled = match result {
                Ok(Outcome::Done) => Settled::Done,
                Ok(Outcome::Retry { reason, .. }) if last => Settled::Failed(reason),
                Err(e) if last => Settled::Failed(format!("{e:#}")),
                Ok(Outcome::Retry { after, reason }) => Settled::Retry(after, reason),
                Err(e) => Settled::Retry(backoff(job.attempts), format!("{e:#}")),
            };
            match &settled {
                Settled::Done => tracing::debug!(ms = took.as_millis() as u64, "job done"),
                Settled::Failed(error) => tracing::error!(error, "job failed; no attempts left"),
                Settled::Retry(_, error) => tracing::warn!(error, "job will be retried"),
            }
            metrics_export::record_job_outcome(&job.kind, settled.label(), took);
            if let Err(e) = self.settle(&job, &settled).await {
                // The lease runs out and the job runs again: at least once.
                tracing::warn!(error = %e, "could not record the job's outcome");
            }
            match settled {
                Settled::Retry(after, _) => Some(after),
                _ => None,
            }
        }
        .instrument(span)
        .await
    }

    /// Writes an attempt's outcome to the queue.
    async fn settle(&self, job: &Job, settled: &Settled) -> anyhow::Result<()> {
        let mut conn = self.db.conn().await?;
        match settled {
            Settled::Done => job::finish(&mut conn, job.id, &self.id).await?,
            Settled::Retry(after, error) => {
                job::retry(&mut conn, job.id, &self.id, *after, error).await?
            }
            Settled::Failed(error) => job::fail(&mut conn, job.id, &self.id, error).await?,
        };
        Ok(())
    }

    async fn perform(&self, job: &Job) -> anyhow::Result<Outcome> {
        let settings = &self.settings;
        let (db, hooks) = (&self.db, &self.webhooks);
        let batch = settings.retention_batch_size;
        let Some(kind) = job.kind() else {
            anyhow::bail!("no worker knows the job kind `{}`", job.kind);
        };
        match kind {
            JobKind::FanOutWebhooks => {
                let event_id = field(job, "event_id")?
                    .as_i64()
                    .ok_or_else(|| anyhow::anyhow!("event_id is not a number"))?;
                let made =
                    webhooks::fan_out(db, hooks, event_id, job.request_id.as_deref()).await?;
                tracing::debug!(event_id, deliveries = made, "webhooks fanned out");
                Ok(Outcome::Done)
            }
            JobKind::DeliverWebhook => {
                let id: Uuid = serde_json::from_value(field(job, "delivery_id")?.clone())?;
                Ok(match webhooks::deliver(db, hooks, id).await? {
                    DeliveryOutcome::Finished => Outcome::Done,
                    DeliveryOutcome::RetryAfter { after, reason } => {
                        Outcome::Retry { after, reason }
                    }
                })
            }
            JobKind::PurgeSessions => {
                let purged = retention::sessions(db, batch).await?;
                tracing::info!(?purged, "purged ended sessions");
                Ok(Outcome::Done)
            }
            JobKind::PurgeSoftDeleted => {
                let days = settings.soft_delete_retention_days;
                let purged = retention::soft_deleted(db, days, batch).await?;
                tracing::info!(?purged, "purged soft-deleted rows");
                Ok(Outcome::Done)
            }
            JobKind::PurgeRecords => {
                let purged = retention::records(db, settings.event_retention_days, batch).await?;
                tracing::info!(?purged, "purged old events, failed jobs and deliveries");
                Ok(Outcome::Done)
            }
        }
    }

    /// Lets running jobs finish for the grace period, then hands back the rest.
    async fn stop(&self, mut running: JoinSet<Option<Duration>>) {
        let grace = tokio::time::sleep(self.settings.shutdown_grace);
        let mut grace = pin!(grace);
        while !running.is_empty() {
            tokio::select! {
                _ = running.join_next() => {}
                () = &mut grace => {
                    running.abort_all();
                    while running.join_next().await.is_some() {}
                }
            }
        }
        match self.db.conn().await {
            Ok(mut conn) => match job::release(&mut conn, &self.id).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(jobs = n, "handed unfinished jobs back to the queue");
                    metrics_export::record_jobs_released(n);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not hand jobs back; their leases will run out")
                }
            },
            Err(e) => tracing::warn!(
                error = %anyhow::Error::from(e),
                "could not hand jobs back; their leases will run out"
            ),
        }
        tracing::info!(worker = %self.id, "job worker stopped");
    }
}

fn field<'a>(job: &'a Job, name: &str) -> anyhow::Result<&'a serde_json::Value> {
    job.payload
        .get(name)
        .ok_or_else(|| anyhow::anyhow!("the payload has no {name}"))
}

/// The wait before attempt `attempts + 1` of a failing job: doubling from
/// two seconds up to an hour, each a random half to all of it, so jobs
/// that failed together do not come back together.
pub fn backoff(attempts: i32) -> Duration {
    let doubled = Duration::from_secs(1u64 << attempts.clamp(1, 12) as u32).min(LONGEST_BACKOFF);
    doubled.mul_f64(rand::rng().random_range(0.5..=1.0))
}

/// Wakes the worker whenever a job is enqueued. Reconnects when the
/// connection drops (an idle one is checked every `CHECK_EVERY`, so one
/// that died without a word is noticed); meanwhile the poll keeps the
/// worker going.
async fn listen(url: String, wake: Arc<Notify>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let result: anyhow::Result<()> = async {
            let mut conn = AsyncPgConnection::establish(&url).await?;
            conn.batch_execute(&format!(
                "SET application_name = '{LISTENER_NAME}'; LISTEN {CHANNEL}"
            ))
            .await?;
            wake.notify_one();
            loop {
                let heard = {
                    let mut notifications = pin!(conn.notifications_stream());
                    tokio::time::timeout(CHECK_EVERY, notifications.next()).await
                };
                match heard {
                    Ok(Some(notification)) => {
                        notification?;
                        wake.notify_one();
                    }
                    Ok(None) => anyhow::bail!("the listening connection closed"),
                    Err(_) => conn.batch_execute("SELECT 1").await?,
                }
            }
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(
                error = format!("{e:#}"),
                "job listener lost its connection; reconnecting"
            );
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_an_hour() {
        for attempts in 1..=20 {
            let ceiling = Duration::from_secs(1u64 << attempts.clamp(1, 12)).min(LONGEST_BACKOFF);
            let waits: Vec<Duration> = (0..50).map(|_| backoff(attempts)).collect();
            assert!(
                waits.iter().all(|w| *w >= ceiling / 2 && *w <= ceiling),
                "{attempts}"
            );
            assert!(waits.iter().any(|w| *w != waits[0]), "{attempts}: jittered");
        }
    }
}
