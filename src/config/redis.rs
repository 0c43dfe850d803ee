//! Redis, shared by the instances (see `crate::redis`): where to reach it.

use clap::Args;

use super::{Config, PersistedQueryStore, RateLimitStoreKind, ResponseCacheStore};

#[derive(Debug, Clone, Args)]
pub struct RedisConfig {
    /// Redis, for every store set to `redis` (`RATE_LIMIT_STORE`,
    /// `PERSISTED_QUERIES`, `RESPONSE_CACHE`); with one, read-your-writes
    /// positions are kept there too. Start-up refuses a Redis that may
    /// evict keys.
    #[arg(
        id = "redis_url",
        long = "redis-url",
        env = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    pub url: String,
}

impl Config {
    /// Whether some store keeps its state in Redis, so the process needs
    /// the connection.
    pub fn uses_redis(&self) -> bool {
        self.rate_limits.store == RateLimitStoreKind::Redis
            || self.persisted_queries == PersistedQueryStore::Redis
            || self.response_cache.store == ResponseCacheStore::Redis
    }
}
