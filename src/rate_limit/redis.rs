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
