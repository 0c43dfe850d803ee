//! What no single value can say: combinations of variables, and
//! production's rules. A configuration that fails them stops start-up.

use std::time::Duration;

use anyhow::bail;

use super::{Config, DatabasePooler};

const MIN_PRODUCTION_SECRET_BYTES: usize = 32;

impl Config {
    /// What no single value can say: combinations, and production's rules.
    pub fn check(&self) -> anyhow::Result<()> {
        match &self.jwt_secret {
            Some(secret) if self.is_production() && !is_strong_secret(secret) => bail!(
                "JWT_SECRET is too weak for APP_ENV=production: use at least {MIN_PRODUCTION_SECRET_BYTES} random bytes (for example `openssl rand -base64 48`)"
            ),
            None if self.is_production() => bail!("JWT_SECRET must be set when APP_ENV=production"),
            _ => {}
        }
        match &self.jobs.webhooks.secrets_key {
            Some(key) if self.is_production() && !is_strong_secret(key) => bail!(
                "WEBHOOK_SECRETS_KEY is too weak for APP_ENV=production: use at least {MIN_PRODUCTION_SECRET_BYTES} random bytes (for example `openssl rand -base64 48`)"
            ),
            None if self.is_production() => bail!(
                "WEBHOOK_SECRETS_KEY must be set when APP_ENV=production: it seals webhook signing secrets in the database (for example `openssl rand -base64 48`)"
            ),
            _ => {}
        }
        if self.database_pooler == DatabasePooler::Transaction && self.database_direct_url.is_none()
        {
            bail!(
                "DATABASE_POOLER=transaction needs DATABASE_DIRECT_URL: migrations and LISTEN must reach the primary itself"
            );
        }
        if !self.replicas.urls.0.is_empty() && self.database_url.is_none() {
            bail!(
                "DATABASE_REPLICA_URLS needs DATABASE_URL: the embedded PostgreSQL has no replicas"
            );
        }
        if self.database_pool_size == 0 {
            bail!("DATABASE_POOL_SIZE must be at least 1");
        }
        if self.access_token_ttl.is_zero() || self.refresh_token_ttl.is_zero() {
            bail!("ACCESS_TOKEN_TTL_SECS and REFRESH_TOKEN_TTL_SECS must be positive");
        }
        if self.access_token_ttl >= self.refresh_token_ttl {
            bail!("ACCESS_TOKEN_TTL_SECS must be shorter than REFRESH_TOKEN_TTL_SECS");
        }
        if self.jobs.lease < Duration::from_secs(1) {
            bail!("JOB_LEASE_SECS must be at least 1");
        }
        if self.jobs.retention_batch_size == 0 {
            bail!("RETENTION_BATCH_SIZE must be at least 1");
        }
        if self.max_concurrent_requests == 0 {
            bail!("MAX_CONCURRENT_REQUESTS must be at least 1");
        }
        if self.request_timeout.is_zero() {
            bail!("REQUEST_TIMEOUT_SECS must be positive");
        }
        let pages = &self.pagination;
        if !(1..=pages.max_page_size).contains(&pages.default_page_size) {
            bail!("DEFAULT_PAGE_SIZE must be between 1 and MAX_PAGE_SIZE");
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log_filter) {
            bail!("invalid value for RUST_LOG: {e}");
        }
        Ok(())
    }
}

/// A production secret must be long and not an obvious placeholder.
fn is_strong_secret(secret: &str) -> bool {
    const PLACEHOLDERS: [&str; 4] = ["secret", "changeme", "change-me", "jwt_secret"];
    let lowered = secret.to_ascii_lowercase();
    let distinct = secret
        .bytes()
        .collect::<std::collections::HashSet<_>>()
        .len();
    secret.len() >= MIN_PRODUCTION_SECRET_BYTES
        && distinct >= 10
        && !PLACEHOLDERS.iter().any(|p| lowered.contains(p))
}
