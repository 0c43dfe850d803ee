//! The response cache (see `graphql::cache`).

use std::time::Duration;

use clap::Args;

use super::values::secs;

/// Where the response cache keeps its entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ResponseCacheStore {
    Off,
    /// This instance's memory.
    Memory,
    /// Redis (`REDIS_URL`), shared by every instance.
    Redis,
}

#[derive(Debug, Clone, Args)]
pub struct ResponseCacheConfig {
    /// Where responses to public queries are kept, shared by every viewer
    /// and dropped when what they show changes: `memory` (this instance),
    /// `redis` (`REDIS_URL`, shared by all instances) or `off`.
    #[arg(
        id = "response_cache",
        long = "response-cache",
        env = "RESPONSE_CACHE",
        value_enum,
        default_value = "memory"
    )]
    pub store: ResponseCacheStore,
    /// Memory the cached responses may take in `memory`; the least
    /// recently used go first (Redis bounds its own with `maxmemory`).
    #[arg(
        long = "response-cache-max-bytes",
        env = "RESPONSE_CACHE_MAX_BYTES",
        default_value_t = 64 * 1024 * 1024
    )]
    pub max_bytes: usize,
    /// How long a response is kept at most. Writes drop what they change
    /// at once; this bounds only what no event names.
    #[arg(
        long = "response-cache-ttl-secs",
        env = "RESPONSE_CACHE_TTL_SECS",
        default_value = "300",
        value_parser = secs
    )]
    pub ttl: Duration,
    /// Prefix of the response cache's keys in Redis.
    #[arg(
        long = "response-cache-redis-prefix",
        env = "RESPONSE_CACHE_REDIS_PREFIX",
        default_value = "conduit:response:"
    )]
    pub redis_prefix: String,
}
