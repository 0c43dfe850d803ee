//! How configuration values are written: the types a variable can hold
//! and their parsers.

use std::{str::FromStr, time::Duration};

/// Where the server runs: `development` is friendly, `production` is strict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AppEnv {
    #[value(alias = "dev")]
    Development,
    #[value(alias = "prod")]
    Production,
}

/// What stands between the server and PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DatabasePooler {
    /// Nothing, or a pooler in session mode.
    None,
    /// A pooler in transaction mode (PgBouncer's `pool_mode = transaction`).
    Transaction,
}

/// Where automatic persisted queries are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PersistedQueryStore {
    Off,
    Memory,
    Redis,
}

/// Where rate-limit windows are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RateLimitStoreKind {
    /// In this process: right for a single instance.
    Memory,
    /// In Redis (`REDIS_URL`): budgets shared by every instance.
    Redis,
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

/// A comma-separated list; blank entries are dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct List(pub Vec<String>);

impl FromStr for List {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
        ))
    }
}

/// A duration written in whole seconds.
pub fn secs(s: &str) -> Result<Duration, String> {
    s.trim()
        .parse()
        .map(Duration::from_secs)
        .map_err(|_| format!("expected whole seconds, got `{s}`"))
}

/// A duration written in milliseconds.
pub fn millis(s: &str) -> Result<Duration, String> {
    s.trim()
        .parse()
        .map(Duration::from_millis)
        .map_err(|_| format!("expected milliseconds, got `{s}`"))
}

/// A comma-separated list of durations, each a whole number with a unit:
/// `ms`, `s`, `m` or `h` (`5s,5m,2h`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule(pub Vec<Duration>);

impl FromStr for Schedule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let steps = s
            .split(',')
            .map(str::trim)
            .filter(|step| !step.is_empty())
            .map(|step| {
                let split = step
                    .find(|c: char| !c.is_ascii_digit())
                    .ok_or_else(|| format!("`{step}` has no unit (ms, s, m or h)"))?;
                let (number, unit) = step.split_at(split);
                let n: u64 = number
                    .parse()
                    .map_err(|_| format!("`{step}` is not a whole number with a unit"))?;
                match unit {
                    "ms" => Ok(Duration::from_millis(n)),
                    "s" => Ok(Duration::from_secs(n)),
                    "m" => Ok(Duration::from_secs(n * 60)),
                    "h" => Ok(Duration::from_secs(n * 3600)),
                    _ => Err(format!("`{step}`: the unit is ms, s, m or h")),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self(steps))
    }
}
