//! Write positions in Redis, shared by every instance. A Redis that lost
//! its keys (a flush, a restart without persistence) cannot tell "no
//! recent write" from "a write it forgot": until a position would have
//! expired anyway, a viewer it knows nothing of is `Forgotten`, and reads
//! from the primary.

use std::time::Duration;

use anyhow::Context as _;
use redis::{Script, aio::ConnectionManager};
use uuid::Uuid;

use super::{LastWrite, Lsn, WritePositionStore};

/// Raises a viewer's position, never lowers it (two writes finishing out
/// of order), and keeps it `ARGV[2]` ms; notes when the positions started
/// being kept (`KEYS[2]`, in seconds), if no one has. It may go past
/// `maxmemory`: a position refused would send the viewer to a replica
/// without their write.
const RAISE_POSITION: &str = r"#!lua flags=allow-oom
redis.call('SET', KEYS[2], redis.call('TIME')[1], 'NX')
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
";

/// A viewer's position; with none, `forgotten` while the positions have
/// been kept for less than `ARGV[1]` seconds (a position's lifetime), as
/// one lost with the others may still matter. Positions found never kept
/// (the keys were lost) start being kept now.
const READ_POSITION: &str = r"#!lua flags=allow-oom
local position = redis.call('GET', KEYS[1])
if position then return position end
local now = redis.call('TIME')[1]
local since = redis.call('GET', KEYS[2])
if not since then
  redis.call('SET', KEYS[2], now)
  return 'forgotten'
end
if tonumber(now) - tonumber(since) < tonumber(ARGV[1]) then return 'forgotten' end
return 'none'
";

const POSITION_KEY: &str = "conduit:wal:";
/// When the positions in Redis started being kept.
const POSITIONS_SINCE_KEY: &str = "conduit:wal:since";

pub struct RedisPositions {
    conn: ConnectionManager,
    raise: Script,
    read: Script,
    ttl: Duration,
}

impl RedisPositions {
    pub fn new(conn: ConnectionManager, ttl: Duration) -> Self {
        Self {
            conn,
            raise: Script::new(RAISE_POSITION),
            read: Script::new(READ_POSITION),
            ttl,
        }
    }
}

#[async_trait::async_trait]
impl WritePositionStore for RedisPositions {
    async fn get(&self, user: Uuid) -> anyhow::Result<LastWrite> {
        let known: String = self
            .read
            .key(format!("{POSITION_KEY}{user}"))
            .key(POSITIONS_SINCE_KEY)
            // Both ends in whole seconds, rounded down: a second more.
            .arg(self.ttl.as_secs_f64().ceil() as u64 + 1)
            .invoke_async(&mut self.conn.clone())
            .await
            .context("reading a write position in Redis")?;
        Ok(match known.as_str() {
            "none" => LastWrite::None,
            "forgotten" => LastWrite::Forgotten,
            position => LastWrite::At(Lsn(position
                .parse()
                .context("a write position in Redis")?)),
        })
    }

    async fn raise(&self, users: &[Uuid], position: Lsn) -> anyhow::Result<()> {
        for user in users {
            let _: i64 = self
                .raise
                .key(format!("{POSITION_KEY}{user}"))
                .key(POSITIONS_SINCE_KEY)
                .arg(position.0)
                .arg(u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX))
                .invoke_async(&mut self.conn.clone())
                .await
                .context("raising a write position in Redis")?;
        }
        Ok(())
    }
}
