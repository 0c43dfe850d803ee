//! Read replicas: where queries read from.

use std::time::Duration;

use clap::Args;

use super::values::{List, millis};

#[derive(Debug, Clone, Args)]
pub struct Replicas {
    /// PostgreSQL streaming replicas of `DATABASE_URL`, comma-separated.
    /// Queries read from them; mutations, and everything a mutation reads,
    /// use the primary. A viewer's reads never see a state older than
    /// their last write: until a replica has replayed that write, they
    /// read from the primary.
    #[arg(
        long = "database-replica-urls",
        env = "DATABASE_REPLICA_URLS",
        default_value = "",
        hide_env_values = true
    )]
    pub urls: List,
    /// A replica further behind the primary than this is skipped until it
    /// catches up.
    #[arg(long = "database-replica-max-lag-ms", env = "DATABASE_REPLICA_MAX_LAG_MS", default_value = "2000", value_parser = millis)]
    pub max_lag: Duration,
    /// How often each replica's replay position (and so its lag) is read.
    #[arg(long = "database-replica-poll-ms", env = "DATABASE_REPLICA_POLL_MS", default_value = "100", value_parser = millis)]
    pub poll_every: Duration,
}
