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
//!
//! The marks are only worth anything while Redis keeps them, so:
//! - **Full** (`maxmemory` under `noeviction`, the one policy start-up
//!   accepts): a store is refused whole and the response is served
//!   uncached; invalidations and clears run past the limit
//!   (`allow-oom`), since one refused would leave a stale entry.
//! - **Emptied** (a flush, a restart without persistence): a random
//!   `incarnation`, kept without expiry, names the keys' lifetime. A
//!   response's ticket reads it with the number it starts at, and its
//!   store is refused if it changed or is gone: the marks the store would
//!   be checked against may be lost. Found missing, the cache is cleared
//!   and a new incarnation begins; reads meanwhile miss.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use anyhow::Context;
use redis::{Script, aio::ConnectionManager};

use super::{Key, ResponseStore, Stored, Tag, Ticket, hex};
use crate::telemetry::metrics_export;

const GET: &str = r"#!lua flags=no-writes
local p = ARGV[1]
local found = redis.call('MGET', p .. 'incarnation', p .. 'epoch')
if not found[1] then return false end
return redis.call('GET', p .. 'e:' .. (found[2] or '0') .. ':' .. ARGV[2])
";

const TICKET: &str = r"#!lua flags=allow-oom
local p = ARGV[1]
local incarnation = redis.call('GET', p .. 'incarnation')
if not incarnation then
    incarnation = ARGV[2]
    local gen = redis.call('INCR', p .. 'gen')
    redis.call('SET', p .. 'cleared', gen)
    redis.call('INCR', p .. 'epoch')
    redis.call('SET', p .. 'incarnation', incarnation)
end
return {redis.call('GET', p .. 'gen') or '0', incarnation}
";

const PUT: &str = r"#!lua
local p, start = ARGV[1], tonumber(ARGV[5])
if redis.call('GET', p .. 'incarnation') ~= ARGV[6] then return 0 end
if tonumber(redis.call('GET', p .. 'cleared') or '0') > start then return 0 end
for i = 7, #ARGV do
    local marked = redis.call('GET', p .. 'v:' .. ARGV[i])
    if marked and tonumber(marked) > start then return 0 end
end
local epoch = redis.call('GET', p .. 'epoch') or '0'
local entry = p .. 'e:' .. epoch .. ':' .. ARGV[2]
redis.call('SET', entry, ARGV[3], 'PX', ARGV[4])
for i = 7, #ARGV do
    local tag = p .. 't:' .. epoch .. ':' .. ARGV[i]
    redis.call('SADD', tag, entry)
    redis.call('PEXPIRE', tag, ARGV[4])
end
return 1
";

const INVALIDATE: &str = r"#!lua flags=allow-oom
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

const CLEAR: &str = r"#!lua flags=allow-oom
local gen = redis.call('INCR', ARGV[1] .. 'gen')
redis.call('SET', ARGV[1] .. 'cleared', gen)
redis.call('INCR', ARGV[1] .. 'epoch')
return gen
";

/// The response cache in Redis, for every instance.
pub struct RedisResponses {
    shared: Arc<Shared>,
    /// Redis missed an invalidation: nothing is read from it until it is
    /// cleared.
    suspect: Arc<AtomicBool>,
}

impl RedisResponses {
    /// Entries kept `ttl` under keys beginning with `prefix`.
    pub fn new(connection: ConnectionManager, prefix: &str, ttl: Duration) -> Self {
        Self {
            shared: Arc::new(Shared::new(connection, prefix, ttl)),
            suspect: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Redis missed an invalidation: reads stop until a clear succeeds,
    /// retried in the background.
    fn distrust(&self) {
        if self.suspect.swap(true, Ordering::AcqRel) {
            return;
        }
        let shared = self.shared.clone();
        let suspect = self.suspect.clone();
        tokio::spawn(async move {
            while shared.clear().await.is_err() {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            suspect.store(false, Ordering::Release);
            tracing::info!("response cache in Redis cleared after a lost invalidation");
        });
    }
}

#[async_trait::async_trait]
impl ResponseStore for RedisResponses {
    async fn get(&self, key: &Key) -> Option<Arc<Stored>> {
        if self.suspect.load(Ordering::Acquire) {
            return None;
        }
        match self.shared.get(&hex(key)).await {
            Ok(found) => found.and_then(|bytes| Stored::decode(&bytes)).map(Arc::new),
            Err(e) => {
                tracing::warn!(error = format!("{e:#}"), "response cache unavailable");
                None
            }
        }
    }

    async fn ticket(&self) -> Option<Ticket> {
        self.shared.ticket().await.ok()
    }

    async fn put(&self, ticket: Ticket, key: Key, stored: &Arc<Stored>) {
        let kept = self
            .shared
            .put(&hex(&key), &stored.encode(), &stored.tags, ticket)
            .await;
        match kept {
            Ok(Put::Kept) => {}
            Ok(Put::Stale) => metrics_export::record_response_cache("stale_refused"),
            // Served all the same; Redis has room again as entries expire.
            Ok(Put::Full) => metrics_export::record_response_cache("full"),
            Err(e) => tracing::warn!(error = format!("{e:#}"), "response not cached"),
        }
    }

    async fn invalidate(&self, tags: &[Tag]) {
        if tags.is_empty() {
            return;
        }
        match self.shared.invalidate(tags).await {
            Ok(dropped) => metrics_export::record_response_cache_invalidations(dropped),
            Err(e) => {
                tracing::warn!(error = format!("{e:#}"), "response cache invalidation lost");
                self.distrust();
            }
        }
    }

    async fn clear(&self) {
        if let Err(e) = self.shared.clear().await {
            tracing::warn!(error = format!("{e:#}"), "response cache clear failed");
            self.distrust();
        }
    }
}

/// What became of a response offered to Redis.
enum Put {
    Kept,
    /// One of its tags was invalidated since it started, or the keys it
    /// would be checked against were lost.
    Stale,
    /// Redis is at `maxmemory`.
    Full,
}

/// The scripts, over the connection.
struct Shared {
    connection: ConnectionManager,
    prefix: String,
    ttl: Duration,
    get: Script,
    ticket: Script,
    put: Script,
    invalidate: Script,
    clear: Script,
}

impl Shared {
    fn new(connection: ConnectionManager, prefix: &str, ttl: Duration) -> Self {
        Self {
            connection,
            prefix: prefix.to_owned(),
            ttl,
            get: Script::new(GET),
            ticket: Script::new(TICKET),
            put: Script::new(PUT),
            invalidate: Script::new(INVALIDATE),
            clear: Script::new(CLEAR),
        }
    }

    fn ttl_ms(&self) -> u64 {
        self.ttl.as_millis().max(1) as u64
    }

    /// The stored bytes under `key`.
    async fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let mut connection = self.connection.clone();
        self.get
            .arg(&self.prefix)
            .arg(key)
            .invoke_async(&mut connection)
            .await
            .context("response cache read failed in Redis")
    }

    /// The number of the last invalidation, which a response starts at,
    /// and the incarnation of the keys it is checked against.
    async fn ticket(&self) -> anyhow::Result<Ticket> {
        let mut connection = self.connection.clone();
        // The incarnation to begin if the keys were lost, drawn afresh
        // each time: one drawn per process would come back after a second
        // loss, and a response from before it would pass for current.
        let fresh = rand::random::<u64>().max(1);
        let (generation, incarnation) = self
            .ticket
            .arg(&self.prefix)
            .arg(fresh)
            .invoke_async(&mut connection)
            .await
            .context("response cache read failed in Redis")?;
        Ok(Ticket {
            generation,
            incarnation,
        })
    }

    /// Stores `value` under `key` with `tags`, unless one of them was
    /// invalidated since `ticket` or the keys' incarnation changed.
    async fn put(
        &self,
        key: &str,
        value: &[u8],
        tags: &[Tag],
        ticket: Ticket,
    ) -> anyhow::Result<Put> {
        let mut connection = self.connection.clone();
        let mut invocation = self.put.prepare_invoke();
        invocation
            .arg(&self.prefix)
            .arg(key)
            .arg(value)
            .arg(self.ttl_ms())
            .arg(ticket.generation)
            .arg(ticket.incarnation);
        for tag in tags {
            invocation.arg(tag.as_ref());
        }
        match invocation.invoke_async::<i64>(&mut connection).await {
            Ok(1) => Ok(Put::Kept),
            Ok(_) => Ok(Put::Stale),
            Err(e) if e.code() == Some("OOM") => Ok(Put::Full),
            Err(e) => Err(e).context("response cache write failed in Redis"),
        }
    }

    /// Drops the entries tagged with `tags`; how many.
    async fn invalidate(&self, tags: &[Tag]) -> anyhow::Result<usize> {
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
    async fn clear(&self) -> anyhow::Result<()> {
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
