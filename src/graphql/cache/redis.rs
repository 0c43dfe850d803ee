//! The response cache in Redis (`RESPONSE_CACHE=redis`): entries shared by
//! every instance. Each instance still hears every event on its own bus
//! and drops what it names; dropping the same entries twice is harmless.
//!
//! Every step is one script, so none interleaves with another:
//! - an invalidation numbers itself (`gen`), marks each tag with that
//!   number (`v:<tag>`) and deletes the entries its tags list;
//! - a store is refused when one of its tags was marked after the number
//!   the response started at (it may predate the write), or the cache was
//!   cleared since;
//! - a clear moves everything to a new epoch; the old keys expire.

use std::time::Duration;

use anyhow::Context;
use redis::{Script, aio::ConnectionManager};

const GET: &str = r"
local epoch = redis.call('GET', ARGV[1] .. 'epoch') or '0'
return redis.call('GET', ARGV[1] .. 'e:' .. epoch .. ':' .. ARGV[2])
";

const PUT: &str = r"
local p, start = ARGV[1], tonumber(ARGV[5])
if tonumber(redis.call('GET', p .. 'cleared') or '0') > start then return 0 end
for i = 6, #ARGV do
    local marked = redis.call('GET', p .. 'v:' .. ARGV[i])
    if marked and tonumber(marked) > start then return 0 end
end
local epoch = redis.call('GET', p .. 'epoch') or '0'
local entry = p .. 'e:' .. epoch .. ':' .. ARGV[2]
redis.call('SET', entry, ARGV[3], 'PX', ARGV[4])
for i = 6, #ARGV do
    local tag = p .. 't:' .. epoch .. ':' .. ARGV[i]
    redis.call('SADD', tag, entry)
    redis.call('PEXPIRE', tag, ARGV[4])
end
return 1
";

const INVALIDATE: &str = r"
local p = ARGV[1]
local gen = redis.call('INCR', p .. 'gen')
local epoch = redis.call('GET', p .. 'epoch') or '0'
local dropped = 0
for i = 3, #ARGV do
    redis.call('SET', p .. 'v:' .. ARGV[i], gen, 'PX', ARGV[2])
    local tag = p .. 't:' .. epoch .. ':' .. ARGV[i]
    for _, entry in ipairs(redis.call('SMEMBERS', tag)) do
        dropped = dropped + redis.call('DEL', entry)
    end
    redis.call('DEL', tag)
end
return dropped
";

const CLEAR: &str = r"
local gen = redis.call('INCR', ARGV[1] .. 'gen')
redis.call('SET', ARGV[1] .. 'cleared', gen)
redis.call('INCR', ARGV[1] .. 'epoch')
return gen
";

pub struct Shared {
    connection: ConnectionManager,
    prefix: String,
    ttl: Duration,
    get: Script,
    put: Script,
    invalidate: Script,
    clear: Script,
}

impl Shared {
    pub fn new(connection: ConnectionManager, prefix: &str, ttl: Duration) -> Self {
        Self {
            connection,
            prefix: prefix.to_owned(),
            ttl,
            get: Script::new(GET),
            put: Script::new(PUT),
            invalidate: Script::new(INVALIDATE),
            clear: Script::new(CLEAR),
        }
    }

    fn ttl_ms(&self) -> u64 {
        self.ttl.as_millis().max(1) as u64
    }

    /// The stored bytes under `key`.
    pub async fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let mut connection = self.connection.clone();
        self.get
            .arg(&self.prefix)
            .arg(key)
            .invoke_async(&mut connection)
            .await
            .context("response cache read failed in Redis")
    }

    /// The number of the last invalidation: what a response starts at.
    pub async fn generation(&self) -> anyhow::Result<u64> {
        let mut connection = self.connection.clone();
        let generation: Option<u64> = redis::cmd("GET")
            .arg(format!("{}gen", self.prefix))
            .query_async(&mut connection)
            .await
            .context("response cache read failed in Redis")?;
        Ok(generation.unwrap_or_default())
    }

    /// Stores `value` under `key` with `tags`, unless one of them was
    /// invalidated after `start`; whether it was stored.
    pub async fn put(
        &self,
        key: &str,
        value: &[u8],
        tags: &[super::Tag],
        start: u64,
    ) -> anyhow::Result<bool> {
        let mut connection = self.connection.clone();
        let mut invocation = self.put.prepare_invoke();
        invocation
            .arg(&self.prefix)
            .arg(key)
            .arg(value)
            .arg(self.ttl_ms())
            .arg(start);
        for tag in tags {
            invocation.arg(tag.as_ref());
        }
        let stored: i64 = invocation
            .invoke_async(&mut connection)
            .await
            .context("response cache write failed in Redis")?;
        Ok(stored == 1)
    }

    /// Drops the entries tagged with `tags`; how many.
    pub async fn invalidate(&self, tags: &[super::Tag]) -> anyhow::Result<usize> {
        let mut connection = self.connection.clone();
        let mut invocation = self.invalidate.prepare_invoke();
        invocation.arg(&self.prefix).arg(self.ttl_ms());
        for tag in tags {
            invocation.arg(tag.as_ref());
        }
        invocation
            .invoke_async(&mut connection)
            .await
            .context("response cache invalidation failed in Redis")
    }

    /// Drops everything, for every instance.
    pub async fn clear(&self) -> anyhow::Result<()> {
        let mut connection = self.connection.clone();
        let _: u64 = self
            .clear
            .arg(&self.prefix)
            .invoke_async(&mut connection)
            .await
            .context("response cache clear failed in Redis")?;
        Ok(())
    }
}
