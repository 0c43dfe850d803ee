//! Background work: the job queue's workers, retention, and webhook
//! delivery.

use std::time::Duration;

use clap::Args;

use super::values::{Schedule, secs};

#[derive(Debug, Clone, Args)]
pub struct Jobs {
    /// Jobs one process runs at once. `conduit serve` runs them beside
    /// requests; `0` leaves them to `conduit worker` processes.
    #[arg(long = "job-workers", env = "JOB_WORKERS", default_value_t = 4)]
    pub workers: usize,
    /// How long a claimed job is reserved for its worker, which renews the
    /// reservation while it runs. A worker killed mid-job loses it, and the
    /// job runs again elsewhere this long after the last renewal.
    #[arg(long = "job-lease-secs", env = "JOB_LEASE_SECS", default_value = "30", value_parser = secs)]
    pub lease: Duration,
    /// How long a stopping process lets running jobs finish before it
    /// hands them back to the queue.
    #[arg(long = "job-shutdown-grace-secs", env = "JOB_SHUTDOWN_GRACE_SECS", default_value = "10", value_parser = secs)]
    pub shutdown_grace: Duration,
    /// Soft-deleted articles, comments and users are removed for good this
    /// many days after their deletion.
    #[arg(long, env = "SOFT_DELETE_RETENTION_DAYS", default_value_t = 30)]
    pub soft_delete_retention_days: u32,
    /// Recorded events (what subscriptions resume from) are kept this many
    /// days.
    #[arg(long, env = "EVENT_RETENTION_DAYS", default_value_t = 7)]
    pub event_retention_days: u32,
    /// Rows one retention statement removes; each batch is its own short
    /// transaction.
    #[arg(long, env = "RETENTION_BATCH_SIZE", default_value_t = 500)]
    pub retention_batch_size: u32,
    #[command(flatten)]
    pub webhooks: Webhooks,
}

#[derive(Debug, Clone, Args)]
pub struct Webhooks {
    /// Allow endpoints on loopback, private and link-local addresses (for
    /// development and tests). Cloud metadata addresses stay refused.
    #[arg(long = "webhooks-allow-private-addresses", env = "WEBHOOKS_ALLOW_PRIVATE_ADDRESSES", default_value_t = false, action = clap::ArgAction::Set)]
    pub allow_private_addresses: bool,
    /// How long one delivery attempt may take, connection included.
    #[arg(long = "webhook-timeout-secs", env = "WEBHOOK_TIMEOUT_SECS", default_value = "10", value_parser = secs)]
    pub timeout: Duration,
    /// Waits between a failed attempt and the next (each varied by up to a
    /// fifth either way); after the last, the delivery has failed.
    #[arg(
        long = "webhook-retry-schedule",
        env = "WEBHOOK_RETRY_SCHEDULE",
        default_value = "5s,5m,30m,2h,5h,10h,10h"
    )]
    pub retry_schedule: Schedule,
    /// An endpoint whose every attempt failed for this long is disabled.
    #[arg(long = "webhook-disable-after-secs", env = "WEBHOOK_DISABLE_AFTER_SECS", default_value = "86400", value_parser = secs)]
    pub disable_after: Duration,
    /// Endpoints one user may register.
    #[arg(
        long = "webhook-max-endpoints",
        env = "WEBHOOK_MAX_ENDPOINTS",
        default_value_t = 10
    )]
    pub max_endpoints: i64,
    /// Undelivered deliveries one endpoint may hold; events past it are
    /// not queued for that endpoint (and counted).
    #[arg(
        long = "webhook-max-pending",
        env = "WEBHOOK_MAX_PENDING",
        default_value_t = 1000
    )]
    pub max_pending: i64,
    /// Seals endpoints' signing secrets in the database (AES-256-GCM under a
    /// key derived from this value with HKDF-SHA256, each bound to its
    /// endpoint): required in production (at least 32 random bytes); unset,
    /// they are stored as they are (development). Once it is set, secrets
    /// stored unsealed, sealed under another key or by an older version are
    /// not used: rotate them.
    #[arg(
        long = "webhook-secrets-key",
        env = "WEBHOOK_SECRETS_KEY",
        hide_env_values = true
    )]
    pub secrets_key: Option<String>,
}
