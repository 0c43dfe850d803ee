//! Typed configuration: every variable is declared once, below, with its
//! default and its documentation, and clap reads it from the environment
//! (or the matching `--flag`). `conduit serve --help` lists them all, and a
//! test holds the table in docs/operations.md to the same list.
//!
//! A value that does not parse stops start-up with a message naming the
//! variable; nothing falls back silently. A blank variable counts as unset.

mod cache;
mod checks;
mod database;
mod environment;
mod jobs;
mod limits;
mod rate_limits;
mod redis;
mod replicas;
mod subscriptions;
mod values;

use std::{net::IpAddr, path::PathBuf, time::Duration};

use anyhow::bail;
use clap::{CommandFactory, FromArgMatches};

use self::values::{millis, secs};
pub use self::{
    cache::{ResponseCacheConfig, ResponseCacheStore},
    database::EmbeddedDatabase,
    environment::{reading_environment, variables},
    jobs::{Jobs, Webhooks},
    limits::{Limits, Pagination, schema_lists},
    rate_limits::RateLimits,
    redis::RedisConfig,
    replicas::Replicas,
    subscriptions::Subscriptions,
    values::{AppEnv, CorsOrigins, DatabasePooler, List, PersistedQueryStore, RateLimitStoreKind},
};
pub use crate::telemetry::LogFormat;

#[derive(Debug, Clone, clap::Parser)]
#[command(name = "conduit")]
pub struct Config {
    /// Address the HTTP server binds (`0.0.0.0` in a container).
    #[arg(long, env = "HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port the HTTP server binds; `0` picks a free one.
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,
    /// `development` or `production`: production refuses a weak or missing
    /// `JWT_SECRET` or `WEBHOOK_SECRETS_KEY` and changes the defaults marked
    /// so.
    #[arg(long, env = "APP_ENV", value_enum, default_value = "development")]
    pub app_env: AppEnv,
    /// PostgreSQL URL; unset starts the embedded PostgreSQL.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// Connections in the pool.
    #[arg(long, env = "DATABASE_POOL_SIZE", default_value_t = 10)]
    pub database_pool_size: u32,
    /// Longest wait for a free connection; then the request fails with
    /// `TIMEOUT` (or `SERVICE_UNAVAILABLE` when the database cannot be
    /// reached).
    #[arg(long = "database-acquire-timeout-ms", env = "DATABASE_ACQUIRE_TIMEOUT_MS", default_value = "3000", value_parser = millis)]
    pub database_acquire_timeout: Duration,
    /// PostgreSQL `statement_timeout` on every pooled connection.
    #[arg(long = "database-statement-timeout-ms", env = "DATABASE_STATEMENT_TIMEOUT_MS", default_value = "5000", value_parser = millis)]
    pub database_statement_timeout: Duration,
    /// A pooled connection idle at least this long is pinged before a
    /// request gets it, so one that died silently is replaced instead of
    /// failing the request.
    #[arg(long = "database-ping-after-idle-secs", env = "DATABASE_PING_AFTER_IDLE_SECS", default_value = "30", value_parser = secs)]
    pub database_ping_after_idle: Duration,
    /// `transaction` when `DATABASE_URL` leads to a pooler in transaction
    /// mode (PgBouncer's `pool_mode = transaction`): every checkout becomes
    /// one transaction, statements are not kept prepared, and settings are
    /// made per transaction. Needs `DATABASE_DIRECT_URL`.
    #[arg(long, env = "DATABASE_POOLER", value_enum, default_value = "none")]
    pub database_pooler: DatabasePooler,
    /// The primary itself, bypassing the pooler: for what a transaction
    /// pooler cannot carry (migrations under their advisory lock, `LISTEN`
    /// for subscriptions and the job queue, which also runs its workers'
    /// pool here). Defaults to `DATABASE_URL`.
    #[arg(long, env = "DATABASE_DIRECT_URL", hide_env_values = true)]
    pub database_direct_url: Option<String>,
    #[command(flatten)]
    pub embedded_database: EmbeddedDatabase,
    #[command(flatten)]
    pub replicas: Replicas,
    /// HMAC key for access tokens: required in production (at least 32
    /// random bytes); unset in development, a random key is made at start,
    /// so access tokens do not survive a restart (refresh tokens do).
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Comma-separated keys that still verify tokens after a rotation;
    /// tokens are always signed with `JWT_SECRET`.
    #[arg(
        long,
        env = "JWT_PREVIOUS_SECRETS",
        hide_env_values = true,
        default_value = ""
    )]
    pub jwt_previous_secrets: List,
    /// Access-token lifetime.
    #[arg(long = "access-token-ttl-secs", env = "ACCESS_TOKEN_TTL_SECS", default_value = "900", value_parser = secs)]
    pub access_token_ttl: Duration,
    /// Refresh-token and session lifetime (renewed on each refresh).
    #[arg(long = "refresh-token-ttl-secs", env = "REFRESH_TOKEN_TTL_SECS", default_value = "2592000", value_parser = secs)]
    pub refresh_token_ttl: Duration,
    /// `pretty` or `json`; unset, `pretty` in development and `json` in
    /// production.
    #[arg(long, env = "LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// An OpenTelemetry collector (OTLP over HTTP, e.g.
    /// `http://127.0.0.1:4318`): each request's spans, with its GraphQL
    /// operations, loader batches and SQL statements, are sent there.
    /// Unset, no traces are made.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otel_endpoint: Option<String>,
    /// The `service.name` traces carry.
    #[arg(long, env = "OTEL_SERVICE_NAME", default_value = "conduit")]
    pub otel_service_name: String,
    /// Which log lines are written, e.g. `conduit=debug,info`.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub log_filter: String,
    /// Longest a GraphQL request may run; then `TIMEOUT`.
    #[arg(long = "request-timeout-secs", env = "REQUEST_TIMEOUT_SECS", default_value = "30", value_parser = secs)]
    pub request_timeout: Duration,
    /// Largest accepted request body (413 past it).
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
    /// On SIGTERM, how long `/readyz` answers 503 while the server still
    /// serves, so a load balancer stops sending it new requests and sockets
    /// before it drains; unset, 5 in production and 0 in development.
    #[arg(long = "shutdown-drain-secs", env = "SHUTDOWN_DRAIN_SECS", value_parser = secs)]
    pub shutdown_drain: Option<Duration>,
    /// Requests served at once; past it new ones get an immediate 503
    /// instead of queueing.
    #[arg(long, env = "MAX_CONCURRENT_REQUESTS", default_value_t = 512)]
    pub max_concurrent_requests: usize,
    #[command(flatten)]
    pub limits: Limits,
    #[command(flatten)]
    pub pagination: Pagination,
    /// `*` for any origin, or a comma-separated list of origins
    /// (`https://app.example.com`) allowed to call from a browser; unset,
    /// `*` in development and none in production.
    #[arg(long, env = "CORS_ALLOWED_ORIGINS")]
    pub cors_allowed_origins: Option<CorsOrigins>,
    #[command(flatten)]
    pub redis: RedisConfig,
    #[command(flatten)]
    pub rate_limits: RateLimits,
    #[command(flatten)]
    pub subscriptions: Subscriptions,
    #[command(flatten)]
    pub response_cache: ResponseCacheConfig,
    #[command(flatten)]
    pub jobs: Jobs,
    /// Proxies in front of the server that append to `X-Forwarded-For`;
    /// `0` ignores the header (anyone can forge it) and uses the
    /// connection's address.
    #[arg(long, env = "TRUSTED_PROXY_HOPS", default_value_t = 0)]
    pub trusted_proxy_hops: usize,
    /// Where automatic persisted queries are kept: `memory` (this
    /// instance), `redis` (`REDIS_URL`, shared by all instances) or `off`.
    #[arg(long, env = "PERSISTED_QUERIES", value_enum, default_value = "memory")]
    pub persisted_queries: PersistedQueryStore,
    /// Path of a persisted-documents manifest (hash to document, as GraphQL
    /// Code Generator writes it); when set, only its documents run.
    #[arg(long, env = "TRUSTED_DOCUMENTS")]
    pub trusted_documents: Option<PathBuf>,
    /// Serve GraphiQL to browsers at `GET /graphql`; unset, `true` in
    /// development and `false` in production.
    #[arg(long, env = "GRAPHIQL")]
    pub graphiql: Option<bool>,
}

impl Config {
    /// Every variable at its default, whatever the environment holds: for
    /// printing the SDL, and for tests, which set fields directly.
    pub fn defaults() -> Self {
        let command = Self::command().mut_args(|arg| arg.env(None::<&'static str>));
        let matches = command
            .try_get_matches_from(["conduit"])
            .expect("every variable has a valid default");
        Self::from_arg_matches(&matches).expect("the defaults build a configuration")
    }

    /// The configuration `serve` needs: checked, with a JWT secret (a
    /// random one in development, made here when none is set).
    pub fn for_serving(mut self) -> anyhow::Result<Self> {
        self.check()?;
        if self.jwt_secret.is_none() {
            self.jwt_secret = Some(crate::auth::refresh::generate_token());
        }
        Ok(self)
    }

    pub fn is_production(&self) -> bool {
        self.app_env == AppEnv::Production
    }

    /// The JWT secret; present once [`Config::for_serving`] has run.
    pub fn jwt_secret(&self) -> anyhow::Result<&str> {
        match &self.jwt_secret {
            Some(secret) => Ok(secret),
            None => bail!("JWT_SECRET is not set"),
        }
    }

    /// Where traces go, when they are on.
    pub fn traces(&self) -> Option<crate::telemetry::traces::Exporter> {
        self.otel_endpoint
            .clone()
            .map(|endpoint| crate::telemetry::traces::Exporter {
                endpoint,
                service_name: self.otel_service_name.clone(),
            })
    }

    pub fn log_format(&self) -> LogFormat {
        self.log_format.unwrap_or(match self.app_env {
            AppEnv::Development => LogFormat::Pretty,
            AppEnv::Production => LogFormat::Json,
        })
    }

    pub fn shutdown_drain(&self) -> Duration {
        self.shutdown_drain.unwrap_or(match self.app_env {
            AppEnv::Development => Duration::ZERO,
            AppEnv::Production => Duration::from_secs(5),
        })
    }

    pub fn graphiql(&self) -> bool {
        self.graphiql.unwrap_or(!self.is_production())
    }

    pub fn cors_allowed_origins(&self) -> CorsOrigins {
        self.cors_allowed_origins
            .clone()
            .unwrap_or(match self.app_env {
                AppEnv::Development => CorsOrigins::Any,
                AppEnv::Production => CorsOrigins::List(Vec::new()),
            })
    }
}

#[cfg(test)]
mod tests;
