//! The response cache (see `graphql::cache`).

use std::time::Duration;

use clap::Args;

use super::values::secs;

#[derive(Debug, Clone, Copy, Args)]
pub struct ResponseCacheConfig {
    /// Keep responses to public queries in this instance's memory, dropped
    /// when what they show changes (`false` turns the cache off).
    #[arg(
        id = "response_cache",
        long = "response-cache",
        env = "RESPONSE_CACHE",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub enabled: bool,
    /// Memory the cached responses may take; the least recently used go first.
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
}
