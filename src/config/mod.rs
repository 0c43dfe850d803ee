//! Typed configuration: every variable is declared once, below, with its
//! default and its documentation, and clap reads it from the environment
//! (or the matching `--flag`). `conduit serve --help` lists them all, and a
//! test holds the README's table to the same list.
//!
//! A value that does not parse stops start-up with a message naming the
//! variable; nothing falls back silently. A blank variable counts as unset.

mod cache;
mod jobs;
mod limits;
mod rate_limits;
mod replicas;
mod subscriptions;
mod values;

use std::{net::IpAddr, path::PathBuf, time::Duration};

use anyhow::bail;
use clap::{Args, CommandFactory, FromArgMatches};

use self::values::{millis, secs};
pub use self::{
    cache::{ResponseCacheConfig, ResponseCacheStore},
    jobs::{Jobs, Webhooks},
    limits::{Limits, Pagination, schema_lists},
    rate_limits::RateLimits,
    replicas::Replicas,
    subscriptions::Subscriptions,
    values::{
        AppEnv, CorsOrigins, DatabasePooler, List, LogFormat, PersistedQueryStore,
        RateLimitStoreKind,
    },
};

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

/// The PostgreSQL started when `DATABASE_URL` is unset.
#[derive(Debug, Clone, Args)]
pub struct EmbeddedDatabase {
    /// Where the embedded PostgreSQL keeps its files.
    #[arg(
        id = "embedded_database_dir",
        long = "embedded-database-dir",
        env = "EMBEDDED_DATABASE_DIR",
        default_value = "data"
    )]
    pub dir: PathBuf,
    /// Local port of the embedded PostgreSQL.
    #[arg(
        id = "embedded_database_port",
        long = "embedded-database-port",
        env = "EMBEDDED_DATABASE_PORT",
        default_value_t = 54329
    )]
    pub port: u16,
}

const MIN_PRODUCTION_SECRET_BYTES: usize = 32;

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

/// `command` (and its subcommands) as the process reads its environment:
/// each value is named by its variable in help and errors, and a variable
/// that is set but blank counts as unset rather than as an empty value.
pub fn reading_environment(command: clap::Command) -> clap::Command {
    let command = command.mut_args(|arg| {
        let Some(name) = arg.get_env().map(|n| n.to_string_lossy().into_owned()) else {
            return arg;
        };
        let blank =
            std::env::var_os(&name).is_some_and(|value| value.to_string_lossy().trim().is_empty());
        let arg = arg.value_name(name);
        if blank {
            arg.env(None::<&'static str>)
        } else {
            arg
        }
    });
    let names: Vec<String> = command
        .get_subcommands()
        .map(|c| c.get_name().to_owned())
        .collect();
    names.into_iter().fold(command, |command, name| {
        command.mut_subcommand(name, reading_environment)
    })
}

/// Each variable clap knows: its name and default, if it has one.
pub fn variables() -> Vec<(String, Option<String>)> {
    Config::command()
        .get_arguments()
        .filter_map(|arg| {
            let name = arg.get_env()?.to_string_lossy().into_owned();
            let default = arg
                .get_default_values()
                .first()
                .map(|v| v.to_string_lossy().into_owned());
            Some((name, default))
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The configuration `pairs` of variables make, given as the flags
    /// clap maps those variables to (the process environment is shared by
    /// every test).
    fn config(pairs: &[(&str, &str)]) -> anyhow::Result<Config> {
        let command = Config::command().mut_args(|arg| arg.env(None::<&'static str>));
        let mut argv = vec!["conduit".to_owned()];
        for (name, value) in pairs {
            let arg = Config::command()
                .get_arguments()
                .find(|a| a.get_env() == Some(std::ffi::OsStr::new(name)))
                .map(|a| a.get_long().expect("a long flag").to_owned())
                .unwrap_or_else(|| panic!("{name} is not a variable"));
            argv.push(format!("--{arg}={value}"));
        }
        let matches = command.try_get_matches_from(argv)?;
        let config = Config::from_arg_matches(&matches)?;
        config.check()?;
        Ok(config)
    }

    #[test]
    fn defaults_are_development_on_localhost() {
        let c = config(&[]).unwrap();
        assert_eq!(c.app_env, AppEnv::Development);
        assert_eq!(c.port, 8080);
        assert_eq!(c.host.to_string(), "127.0.0.1");
        assert!(c.database_url.is_none());
        assert_eq!(c.access_token_ttl, Duration::from_secs(900));
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let err = config(&[("PORT", "eighty")]).unwrap_err();
        assert!(format!("{err:#}").contains("PORT"), "{err:#}");
        let err = config(&[("APP_ENV", "staging")]).unwrap_err();
        assert!(format!("{err:#}").contains("APP_ENV"), "{err:#}");
    }

    #[test]
    fn cors_origins_parse_strictly() {
        assert_eq!("*".parse::<CorsOrigins>().unwrap(), CorsOrigins::Any);
        assert_eq!(
            "https://a.example.com, http://localhost:3000/"
                .parse::<CorsOrigins>()
                .unwrap(),
            CorsOrigins::List(vec![
                "https://a.example.com".into(),
                "http://localhost:3000".into()
            ])
        );
        assert!("a.example.com".parse::<CorsOrigins>().is_err());
        assert!("https://a.example.com/path".parse::<CorsOrigins>().is_err());
        let c = config(&[("CORS_ALLOWED_ORIGINS", "nope")]).unwrap_err();
        assert!(format!("{c:#}").contains("CORS_ALLOWED_ORIGINS"));
    }

    #[test]
    fn production_refuses_missing_or_weak_secret() {
        assert!(config(&[("APP_ENV", "production")]).is_err());
        assert!(config(&[("APP_ENV", "production"), ("JWT_SECRET", "secret")]).is_err());
        assert!(
            config(&[
                ("APP_ENV", "production"),
                ("JWT_SECRET", "changeme-changeme-changeme-changeme")
            ])
            .is_err()
        );
        let ok = config(&[
            ("APP_ENV", "production"),
            ("JWT_SECRET", "q8Vd1kP0x7rT2mN9bW4yZ6cH3jL5sA0eF1gK8uR2"),
            (
                "WEBHOOK_SECRETS_KEY",
                "Wm5Tg8Qa2Lr7Zx0Kc4Vb9Nh1Jd6Fp3Ys-seal",
            ),
        ])
        .unwrap();
        assert_eq!(ok.log_format(), LogFormat::Json);
        assert!(!ok.graphiql());
        assert_eq!(ok.cors_allowed_origins(), CorsOrigins::List(vec![]));
    }

    #[test]
    fn production_refuses_a_missing_or_weak_webhook_secrets_key() {
        let production = [
            ("APP_ENV", "production"),
            ("JWT_SECRET", "q8Vd1kP0x7rT2mN9bW4yZ6cH3jL5sA0eF1gK8uR2"),
        ];
        let err = config(&production).unwrap_err();
        assert!(
            format!("{err:#}").contains("WEBHOOK_SECRETS_KEY"),
            "{err:#}"
        );
        let weak = [
            production[0],
            production[1],
            ("WEBHOOK_SECRETS_KEY", "changeme"),
        ];
        let err = config(&weak).unwrap_err();
        assert!(
            format!("{err:#}").contains("WEBHOOK_SECRETS_KEY"),
            "{err:#}"
        );
        let strong = [
            production[0],
            production[1],
            (
                "WEBHOOK_SECRETS_KEY",
                "Wm5Tg8Qa2Lr7Zx0Kc4Vb9Nh1Jd6Fp3Ys-seal",
            ),
        ];
        assert!(config(&strong).is_ok());
        // Development stores secrets as they are when no key is set.
        assert!(config(&[]).unwrap().jobs.webhooks.secrets_key.is_none());
    }

    #[test]
    fn defaults_need_no_secret_and_ignore_the_environment() {
        let defaults = Config::defaults();
        assert!(defaults.jwt_secret.is_none());
        assert_eq!(defaults.pagination.max_page_size, 100);
        let serving = defaults.for_serving().unwrap();
        assert!(serving.jwt_secret().unwrap().len() >= 32);
    }

    #[test]
    fn every_variable_has_a_flag_and_a_description() {
        for arg in Config::command().get_arguments() {
            if arg.get_env().is_some() {
                assert!(arg.get_long().is_some(), "{}", arg.get_id());
                assert!(arg.get_help().is_some(), "{} is documented", arg.get_id());
            }
        }
    }

    /// The operations guide's table of variables: each row's name and
    /// default cell.
    fn documented_variables() -> Vec<(String, String)> {
        let guide = include_str!("../../docs/operations.md");
        let start = guide
            .find("| variable | default | meaning |")
            .expect("docs/operations.md has a table of variables");
        guide[start..]
            .lines()
            .skip(2)
            .take_while(|line| line.starts_with('|'))
            .map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                (cells[1].trim_matches('`').to_owned(), cells[2].to_owned())
            })
            .collect()
    }

    #[test]
    fn the_operations_guide_lists_every_variable_with_its_default() {
        let documented = documented_variables();
        let known = variables();
        for (name, default) in &known {
            let row = documented.iter().find(|(n, _)| n == name);
            let Some((_, cell)) = row else {
                panic!("{name} is missing from the table in docs/operations.md");
            };
            match default.as_deref() {
                Some("") | None => {}
                Some(default) => assert!(
                    cell.starts_with(&format!("`{default}`")),
                    "{name}: docs/operations.md says {cell}, the default is `{default}`"
                ),
            }
        }
        for (name, _) in &documented {
            assert!(
                known.iter().any(|(n, _)| n == name),
                "docs/operations.md lists {name}, which is not a variable"
            );
        }
    }
}
