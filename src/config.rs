//! Typed configuration, read once from the environment at start-up.
//!
//! Every variable is documented here, where it is read, and in the README.
//! A value that does not parse stops start-up with a message naming the
//! variable; nothing falls back silently.

use std::{net::IpAddr, path::PathBuf, str::FromStr, time::Duration};

use anyhow::{Context, bail};

/// Where the server runs: `development` is friendly, `production` is strict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEnv {
    Development,
    Production,
}

impl FromStr for AppEnv {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "development" | "dev" => Ok(Self::Development),
            "production" | "prod" => Ok(Self::Production),
            other => Err(format!(
                "expected `development` or `production`, got `{other}`"
            )),
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines for a terminal.
    Pretty,
    /// One JSON object per line for log collectors.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pretty" | "text" => Ok(Self::Pretty),
            "json" => Ok(Self::Json),
            other => Err(format!("expected `pretty` or `json`, got `{other}`")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    /// `HOST` (default `127.0.0.1`): address the HTTP server binds.
    pub host: IpAddr,
    /// `PORT` (default `8080`): port the HTTP server binds; `0` picks a free one.
    pub port: u16,
    /// `APP_ENV` (default `development`).
    pub app_env: AppEnv,
    /// `DATABASE_URL` (default unset): PostgreSQL to use. Unset starts the
    /// embedded PostgreSQL described by `embedded_database`.
    pub database_url: Option<String>,
    /// `DATABASE_POOL_SIZE` (default `10`): connections in the pool.
    pub database_pool_size: u32,
    /// `DATABASE_ACQUIRE_TIMEOUT_MS` (default `3000`): how long a request waits
    /// for a free connection before failing with `TIMEOUT`.
    pub database_acquire_timeout: Duration,
    /// `DATABASE_STATEMENT_TIMEOUT_MS` (default `5000`): PostgreSQL
    /// `statement_timeout` set on every pooled connection.
    pub database_statement_timeout: Duration,
    /// `DATABASE_PING_AFTER_IDLE_SECS` (default `30`): a pooled connection
    /// idle at least this long is pinged before a request gets it, so one
    /// that died silently is replaced instead of failing the request.
    pub database_ping_after_idle: Duration,
    /// `EMBEDDED_DATABASE_DIR` (default `./data`) and `EMBEDDED_DATABASE_PORT`
    /// (default `54329`): where the embedded PostgreSQL keeps its files and
    /// which local port it listens on.
    pub embedded_database: EmbeddedDatabase,
    /// `JWT_SECRET`: HMAC key for access tokens. Required in production (at
    /// least 32 bytes); in development a random key is made at start, so
    /// access tokens do not survive a restart (refresh tokens do).
    pub jwt_secret: String,
    /// `JWT_PREVIOUS_SECRETS` (default empty): comma-separated keys that still
    /// verify tokens after a rotation; tokens are always signed with `JWT_SECRET`.
    pub jwt_previous_secrets: Vec<String>,
    /// `ACCESS_TOKEN_TTL_SECS` (default `900`, 15 minutes).
    pub access_token_ttl: Duration,
    /// `REFRESH_TOKEN_TTL_SECS` (default `2592000`, 30 days).
    pub refresh_token_ttl: Duration,
    /// `LOG_FORMAT` (default `pretty` in development, `json` in production).
    /// The level filter is `RUST_LOG` (default `info`).
    pub log_format: LogFormat,
    /// `REQUEST_TIMEOUT_SECS` (default `30`): longest a request may run.
    pub request_timeout: Duration,
    /// `MAX_BODY_BYTES` (default `1048576`): largest accepted request body.
    pub max_body_bytes: usize,
    /// `MAX_CONCURRENT_REQUESTS` (default `512`): requests served at once;
    /// past it new ones get an immediate 503 instead of queueing.
    pub max_concurrent_requests: usize,
    /// Static query limits, see [`Limits`].
    pub limits: Limits,
    /// `CORS_ALLOWED_ORIGINS`: `*` for any origin, or a comma-separated list
    /// of origins (`https://app.example.com`). Default `*` in development,
    /// none in production (browsers on other origins are refused).
    pub cors_allowed_origins: CorsOrigins,
    /// Rate limiting, see [`RateLimits`].
    pub rate_limits: RateLimits,
    /// `TRUSTED_PROXY_HOPS` (default `0`): how many proxies in front of the
    /// server append to `X-Forwarded-For`. `0` ignores the header (anyone
    /// can forge it) and uses the connection's address.
    pub trusted_proxy_hops: usize,
    /// `PERSISTED_QUERIES` (default `memory`): where automatic persisted
    /// queries are kept: `memory` (this process), `redis` (`REDIS_URL`,
    /// shared by every instance) or `off`.
    pub persisted_queries: PersistedQueryStore,
    /// `TRUSTED_DOCUMENTS` (default unset): path of a persisted-documents
    /// manifest (hash to document, as GraphQL Code Generator writes it).
    /// When set, only those documents run and anything else is refused.
    pub trusted_documents: Option<PathBuf>,
    /// `GRAPHIQL` (default `true` in development, `false` in production):
    /// serve GraphiQL to browsers at `GET /graphql`.
    pub graphiql: bool,
}

/// Where automatic persisted queries are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersistedQueryStore {
    Off,
    Memory,
    Redis,
}

impl FromStr for PersistedQueryStore {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "off" => Ok(Self::Off),
            "memory" => Ok(Self::Memory),
            "redis" => Ok(Self::Redis),
            other => Err(format!(
                "expected `memory`, `redis` or `off`, got `{other}`"
            )),
        }
    }
}

/// Where rate-limit windows are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimitStoreKind {
    /// In this process: right for a single instance.
    Memory,
    /// In Redis (`REDIS_URL`): budgets shared by every instance.
    Redis,
}

impl FromStr for RateLimitStoreKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "memory" => Ok(Self::Memory),
            "redis" => Ok(Self::Redis),
            other => Err(format!("expected `memory` or `redis`, got `{other}`")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RateLimits {
    /// `RATE_LIMIT_STORE` (default `memory`).
    pub store: RateLimitStoreKind,
    /// `REDIS_URL` (default `redis://127.0.0.1:6379`), used by the Redis store.
    pub redis_url: String,
    /// `REDIS_KEY_PREFIX` (default `conduit:rl:`).
    pub redis_key_prefix: String,
    /// `RATE_LIMIT_POINTS` (default `20000`; `0` turns it off): query cost a
    /// user (or, when anonymous, a client address) may spend per window.
    pub points: u64,
    /// `RATE_LIMIT_WINDOW_SECS` (default `60`).
    pub window: Duration,
    /// `SIGN_IN_LIMIT_PER_ACCOUNT` (default `10`) and
    /// `SIGN_IN_LIMIT_PER_ADDRESS` (default `30`) attempts per
    /// `SIGN_IN_WINDOW_SECS` (default `900`).
    pub sign_in_per_account: u64,
    pub sign_in_per_address: u64,
    pub sign_in_window: Duration,
    /// `SIGN_UP_LIMIT_PER_ADDRESS` (default `10`) per `SIGN_UP_WINDOW_SECS`
    /// (default `3600`).
    pub sign_up_per_address: u64,
    pub sign_up_window: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    Any,
    List(Vec<String>),
}

impl FromStr for CorsOrigins {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim() == "*" {
            return Ok(Self::Any);
        }
        let origins: Vec<String> = s
            .split(',')
            .map(|o| o.trim().trim_end_matches('/').to_owned())
            .filter(|o| !o.is_empty())
            .collect();
        for origin in &origins {
            let ok = url::Url::parse(origin).is_ok_and(|u| {
                matches!(u.scheme(), "http" | "https") && u.path() == "/" && u.query().is_none()
            });
            if !ok {
                return Err(format!(
                    "`{origin}` is not an origin like https://app.example.com"
                ));
            }
        }
        Ok(Self::List(origins))
    }
}

/// Limits checked before a request runs; over one is `QUERY_TOO_COMPLEX`.
/// The defaults leave room for every Conduit page and GraphiQL's
/// introspection query.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `MAX_QUERY_TOKENS` (default `2000`): names, punctuators and values.
    pub max_tokens: usize,
    /// `MAX_QUERY_ALIASES` (default `30`).
    pub max_aliases: usize,
    /// `MAX_ROOT_FIELDS` (default `20`): top-level fields per operation.
    pub max_root_fields: usize,
    /// `MAX_QUERY_DIRECTIVES` (default `20`).
    pub max_directives: usize,
    /// `MAX_QUERY_DEPTH` (default `15`).
    pub max_depth: usize,
    /// `MAX_QUERY_COST` (default `10000`): a list costs its page size
    /// times its children.
    pub max_cost: usize,
    /// `MAX_BATCH_SIZE` (default `10`): operations in one JSON-array batch.
    pub max_batch_size: usize,
}

#[derive(Debug, Clone)]
pub struct EmbeddedDatabase {
    pub dir: PathBuf,
    pub port: u16,
}

const MIN_PRODUCTION_SECRET_BYTES: usize = 32;

impl Config {
    /// Reads the process environment (after loading `.env` when present).
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Reads configuration through `lookup`, so tests can supply their own.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let var = |key: &str| lookup(key).filter(|v| !v.trim().is_empty());
        let app_env: AppEnv = parse(&var, "APP_ENV", AppEnv::Development)?;

        let jwt_secret = match var("JWT_SECRET") {
            Some(secret) => {
                if app_env == AppEnv::Production && !is_strong_secret(&secret) {
                    bail!(
                        "JWT_SECRET is too weak for APP_ENV=production: use at least {MIN_PRODUCTION_SECRET_BYTES} random bytes (for example `openssl rand -base64 48`)"
                    );
                }
                secret
            }
            None if app_env == AppEnv::Production => {
                bail!("JWT_SECRET must be set when APP_ENV=production")
            }
            None => crate::auth::refresh::generate_token(),
        };

        let default_log = match app_env {
            AppEnv::Development => LogFormat::Pretty,
            AppEnv::Production => LogFormat::Json,
        };

        let config = Self {
            host: parse(&var, "HOST", IpAddr::from([127, 0, 0, 1]))?,
            port: parse(&var, "PORT", 8080)?,
            app_env,
            database_url: var("DATABASE_URL"),
            database_pool_size: parse(&var, "DATABASE_POOL_SIZE", 10)?,
            database_acquire_timeout: Duration::from_millis(parse(
                &var,
                "DATABASE_ACQUIRE_TIMEOUT_MS",
                3000,
            )?),
            database_statement_timeout: Duration::from_millis(parse(
                &var,
                "DATABASE_STATEMENT_TIMEOUT_MS",
                5000,
            )?),
            database_ping_after_idle: Duration::from_secs(parse(
                &var,
                "DATABASE_PING_AFTER_IDLE_SECS",
                30,
            )?),
            embedded_database: EmbeddedDatabase {
                dir: parse(&var, "EMBEDDED_DATABASE_DIR", PathBuf::from("data"))?,
                port: parse(&var, "EMBEDDED_DATABASE_PORT", 54329)?,
            },
            jwt_secret,
            jwt_previous_secrets: var("JWT_PREVIOUS_SECRETS")
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default(),
            access_token_ttl: Duration::from_secs(parse(&var, "ACCESS_TOKEN_TTL_SECS", 900)?),
            refresh_token_ttl: Duration::from_secs(parse(
                &var,
                "REFRESH_TOKEN_TTL_SECS",
                30 * 24 * 3600,
            )?),
            log_format: parse(&var, "LOG_FORMAT", default_log)?,
            request_timeout: Duration::from_secs(parse(&var, "REQUEST_TIMEOUT_SECS", 30)?),
            max_body_bytes: parse(&var, "MAX_BODY_BYTES", 1024 * 1024)?,
            max_concurrent_requests: parse(&var, "MAX_CONCURRENT_REQUESTS", 512)?,
            limits: Limits {
                max_tokens: parse(&var, "MAX_QUERY_TOKENS", 2000)?,
                max_aliases: parse(&var, "MAX_QUERY_ALIASES", 30)?,
                max_root_fields: parse(&var, "MAX_ROOT_FIELDS", 20)?,
                max_directives: parse(&var, "MAX_QUERY_DIRECTIVES", 20)?,
                max_depth: parse(&var, "MAX_QUERY_DEPTH", 15)?,
                max_cost: parse(&var, "MAX_QUERY_COST", 10_000)?,
                max_batch_size: parse(&var, "MAX_BATCH_SIZE", 10)?,
            },
            rate_limits: RateLimits {
                store: parse(&var, "RATE_LIMIT_STORE", RateLimitStoreKind::Memory)?,
                redis_url: var("REDIS_URL").unwrap_or_else(|| "redis://127.0.0.1:6379".into()),
                redis_key_prefix: var("REDIS_KEY_PREFIX").unwrap_or_else(|| "conduit:rl:".into()),
                points: parse(&var, "RATE_LIMIT_POINTS", 20_000)?,
                window: Duration::from_secs(parse(&var, "RATE_LIMIT_WINDOW_SECS", 60)?),
                sign_in_per_account: parse(&var, "SIGN_IN_LIMIT_PER_ACCOUNT", 10)?,
                sign_in_per_address: parse(&var, "SIGN_IN_LIMIT_PER_ADDRESS", 30)?,
                sign_in_window: Duration::from_secs(parse(&var, "SIGN_IN_WINDOW_SECS", 900)?),
                sign_up_per_address: parse(&var, "SIGN_UP_LIMIT_PER_ADDRESS", 10)?,
                sign_up_window: Duration::from_secs(parse(&var, "SIGN_UP_WINDOW_SECS", 3600)?),
            },
            trusted_proxy_hops: parse(&var, "TRUSTED_PROXY_HOPS", 0)?,
            persisted_queries: parse(&var, "PERSISTED_QUERIES", PersistedQueryStore::Memory)?,
            trusted_documents: var("TRUSTED_DOCUMENTS").map(PathBuf::from),
            graphiql: parse(&var, "GRAPHIQL", app_env == AppEnv::Development)?,
            cors_allowed_origins: parse(
                &var,
                "CORS_ALLOWED_ORIGINS",
                match app_env {
                    AppEnv::Development => CorsOrigins::Any,
                    AppEnv::Production => CorsOrigins::List(Vec::new()),
                },
            )?,
        };
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> anyhow::Result<()> {
        if self.database_pool_size == 0 {
            bail!("DATABASE_POOL_SIZE must be at least 1");
        }
        if self.access_token_ttl.is_zero() || self.refresh_token_ttl.is_zero() {
            bail!("ACCESS_TOKEN_TTL_SECS and REFRESH_TOKEN_TTL_SECS must be positive");
        }
        if self.access_token_ttl >= self.refresh_token_ttl {
            bail!("ACCESS_TOKEN_TTL_SECS must be shorter than REFRESH_TOKEN_TTL_SECS");
        }
        if self.max_concurrent_requests == 0 {
            bail!("MAX_CONCURRENT_REQUESTS must be at least 1");
        }
        if self.request_timeout.is_zero() {
            bail!("REQUEST_TIMEOUT_SECS must be positive");
        }
        Ok(())
    }

    pub fn is_production(&self) -> bool {
        self.app_env == AppEnv::Production
    }
}

fn parse<T>(var: &impl Fn(&str) -> Option<String>, key: &str, default: T) -> anyhow::Result<T>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match var(key) {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse()
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("invalid value for {key}: `{raw}`")),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> anyhow::Result<Config> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|key| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()))
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
        ])
        .unwrap();
        assert_eq!(ok.log_format, LogFormat::Json);
    }
}
