//! Budgets: what a client may spend on queries, sign-ins and sign-ups.

use std::time::Duration;

use clap::Args;

use super::values::{RateLimitStoreKind, secs};

#[derive(Debug, Clone, Args)]
pub struct RateLimits {
    /// Where budgets are counted: `memory` (this instance) or `redis`
    /// (`REDIS_URL`, shared by all instances).
    #[arg(
        long = "rate-limit-store",
        env = "RATE_LIMIT_STORE",
        value_enum,
        default_value = "memory"
    )]
    pub store: RateLimitStoreKind,
    /// Prefix of the rate-limit keys in Redis.
    #[arg(long, env = "REDIS_KEY_PREFIX", default_value = "conduit:rl:")]
    pub redis_key_prefix: String,
    /// Query cost a user, or an anonymous address, may spend per window
    /// (`0`: off).
    #[arg(
        long = "rate-limit-points",
        env = "RATE_LIMIT_POINTS",
        default_value_t = 20_000
    )]
    pub points: u64,
    /// The query-budget window.
    #[arg(long = "rate-limit-window-secs", env = "RATE_LIMIT_WINDOW_SECS", default_value = "60", value_parser = secs)]
    pub window: Duration,
    /// Sign-in attempts per account per sign-in window.
    #[arg(
        long = "sign-in-limit-per-account",
        env = "SIGN_IN_LIMIT_PER_ACCOUNT",
        default_value_t = 10
    )]
    pub sign_in_per_account: u64,
    /// Sign-in attempts per client address per sign-in window.
    #[arg(
        long = "sign-in-limit-per-address",
        env = "SIGN_IN_LIMIT_PER_ADDRESS",
        default_value_t = 30
    )]
    pub sign_in_per_address: u64,
    /// The sign-in window.
    #[arg(long = "sign-in-window-secs", env = "SIGN_IN_WINDOW_SECS", default_value = "900", value_parser = secs)]
    pub sign_in_window: Duration,
    /// Sign-ups per client address per sign-up window.
    #[arg(
        long = "sign-up-limit-per-address",
        env = "SIGN_UP_LIMIT_PER_ADDRESS",
        default_value_t = 10
    )]
    pub sign_up_per_address: u64,
    /// The sign-up window.
    #[arg(long = "sign-up-window-secs", env = "SIGN_UP_WINDOW_SECS", default_value = "3600", value_parser = secs)]
    pub sign_up_window: Duration,
}
