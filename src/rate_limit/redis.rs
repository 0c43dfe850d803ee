//! Redis store: instances behind a load balancer share one budget per
//! spender. One atomic script per charge.

use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use redis::{Script, aio::ConnectionManager};

use super::RateLimitStore;

/// Adds the cost; the first charge of a window sets its expiry. Returns
/// the total and the milliseconds until the window closes. A counter is a
/// few bytes for one window, so it may go past `maxmemory`: refused, it
/// would close sign-in to everyone while Redis is full (of cached pages,
/// which yield instead).
const CHARGE: &str = r"#!lua flags=allow-oom
local used = redis.call('INCRBY', KEYS[1], ARGV[1])
if used == tonumber(ARGV[1]) then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    ttl = tonumber(ARGV[2])
end
return {used, ttl}
";

pub struct RedisStore {
    connection: ConnectionManager,
    script: Script,
    prefix: String,
}

/// The one Redis connection of a process, shared by every store that
/// uses Redis (it multiplexes commands). A Redis that may evict keys is
/// refused (see [`refuse_eviction`]).
pub async fn connect(url: &str) -> anyhow::Result<ConnectionManager> {
    let client = redis::Client::open(url).with_context(|| format!("invalid REDIS_URL `{url}`"))?;
    let mut connection = ConnectionManager::new(client)
        .await
        .with_context(|| format!("failed to connect to Redis at {url}"))?;
    refuse_eviction(&mut connection).await?;
    Ok(connection)
}

/// Every store in Redis is right only while Redis drops no key on its
/// own: an evicted invalidation mark or tag list lets the response cache
/// keep or serve a stale page, an evicted write position sends a viewer
/// to a replica without their write, an evicted budget starts afresh.
/// `noeviction` (Redis's default) refuses growing writes at `maxmemory`
/// instead, which each store survives; with `maxmemory 0` nothing is
/// evicted. Read from `INFO`, which managed services keep when they turn
/// `CONFIG` off.
async fn refuse_eviction(connection: &mut ConnectionManager) -> anyhow::Result<()> {
    let info: redis::InfoDict = match redis::cmd("INFO")
        .arg("memory")
        .query_async(connection)
        .await
    {
        Ok(info) => info,
        Err(e) => {
            tracing::warn!(error = %e, "Redis's eviction policy could not be read (INFO memory); it must be noeviction");
            return Ok(());
        }
    };
    let limit: Option<u64> = info.get("maxmemory");
    let policy: Option<String> = info.get("maxmemory_policy");
    match (limit, policy) {
        (Some(0), _) => Ok(()),
        (Some(_), Some(policy)) if policy == "noeviction" => Ok(()),
        (Some(limit), Some(policy)) => anyhow::bail!(
            "Redis may evict keys (maxmemory {limit} bytes, maxmemory-policy {policy}); \
             set maxmemory-policy noeviction, or maxmemory 0: an evicted key would let the \
             response cache serve stale pages and viewers miss their own writes"
        ),
        _ => {
            tracing::warn!(
                "Redis does not report maxmemory and maxmemory_policy (INFO memory); the policy must be noeviction"
            );
            Ok(())
        }
    }
}

impl RedisStore {
    pub fn new(connection: ConnectionManager, prefix: &str) -> Self {
        Self {
            connection,
            script: Script::new(CHARGE),
            prefix: prefix.to_owned(),
        }
    }
}

#[async_trait::async_trait]
impl RateLimitStore for RedisStore {
    async fn charge(
        &self,
        key: &str,
        cost: u64,
        window: Duration,
    ) -> anyhow::Result<(u64, DateTime<Utc>)> {
        let mut connection = self.connection.clone();
        let (used, ttl_ms): (u64, i64) = self
            .script
            .key(format!("{}{key}", self.prefix))
            .arg(cost)
            .arg(window.as_millis() as u64)
            .invoke_async(&mut connection)
            .await
            .context("rate-limit charge failed in Redis")?;
        Ok((
            used,
            Utc::now() + chrono::Duration::milliseconds(ttl_ms.max(0)),
        ))
    }
}
