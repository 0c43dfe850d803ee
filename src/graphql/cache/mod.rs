//! The response cache: whole responses to public queries, shared by every
//! viewer, kept until what they show changes.
//!
//! - **What is kept.** A query whose cache hints (`cache_control` on types
//!   and fields) are all public and give it a `max_age`: anything that
//!   depends on the viewer (`viewer`, `email`, `viewerHasFavorited`,
//!   `followedByViewer`, `rateLimit`, `node`) is hinted private or
//!   uncacheable, so a response holding it is never stored and never
//!   shared. Responses with errors are not kept either.
//! - **The key** is the SHA-256 of the document, the operation name and
//!   the variables, within the viewer's scope: public, the one scope kept.
//! - **Tags.** Each entry is tagged with the entities it shows (type and
//!   id, from the global ids the executed document is made to select, see
//!   [`tags`]) and the lists it depends on. The event bus tells every
//!   instance what each committed write touched ([`invalidation`]); the
//!   entries tagged with it are dropped. A TTL bounds the rest.
//! - **Races.** A response read before a write and stored after that
//!   write's invalidation would be stale until its TTL: [`ResponseCache::put`]
//!   refuses an entry when one of its tags was invalidated since the
//!   response started. A request with a mutation reads the events since
//!   the last one applied here and applies them before it answers, so the
//!   next request here sees the write.
//! - **Bounds.** Entries are kept within `RESPONSE_CACHE_MAX_BYTES`, the
//!   least recently used out first; in Redis within its `maxmemory`, a
//!   full Redis keeping no new entry until others expire.
//! - **Where.** In this instance's memory (`RESPONSE_CACHE=memory`), or in
//!   Redis, shared by every instance (`redis`, see [`redis`]).

pub mod invalidation;
pub mod policy;
mod redis;
pub mod tags;

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use async_graphql::{CacheControl, Response};
use bytes::Bytes;
use sha2::{Digest, Sha256};

use self::redis::{Put, Shared};
use crate::{
    config::{ResponseCacheConfig, ResponseCacheStore},
    telemetry::metrics_export,
};

pub use tags::Tag;

/// An entry's key: SHA-256 of what the response depends on.
pub type Key = [u8; 32];

/// Invalidations remembered for the race check; a response that ran
/// longer than it takes to see this many is not stored.
const RECENT_INVALIDATIONS: usize = 4096;
/// Documents remembered as private.
const PRIVATE_DOCUMENTS: usize = 1024;

/// A stored response, as every transport sends it.
#[derive(Debug)]
pub struct Stored {
    /// The response's data (a kept response has no errors).
    data: async_graphql::Value,
    hints: CacheControl,
    /// Its JSON, as HTTP sends it.
    pub body: Bytes,
    /// A strong validator of `body`.
    pub etag: String,
    /// The rate-limit cost of the operation, charged on every hit.
    pub cost: Option<usize>,
    tags: Vec<Tag>,
    expires: Instant,
}

impl Stored {
    pub fn cache_control(&self) -> CacheControl {
        self.hints
    }

    /// The response, for transports that send values rather than bytes.
    pub fn response(&self) -> Response {
        let mut response = Response::new(self.data.clone());
        response.cache_control = self.hints;
        response
    }

    /// The bytes kept in Redis: a header line, then the body.
    fn encode(&self) -> Vec<u8> {
        let header = serde_json::json!({
            "etag": self.etag,
            "cost": self.cost,
            "public": self.hints.public,
            "maxAge": self.hints.max_age,
        });
        let mut bytes = serde_json::to_vec(&header).unwrap_or_default();
        bytes.push(b'\n');
        bytes.extend_from_slice(&self.body);
        bytes
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let split = bytes.iter().position(|b| *b == b'\n')?;
        let header: serde_json::Value = serde_json::from_slice(&bytes[..split]).ok()?;
        let body = Bytes::copy_from_slice(&bytes[split + 1..]);
        let mut response: serde_json::Value = serde_json::from_slice(&body).ok()?;
        let data = async_graphql::Value::from_json(response.get_mut("data")?.take()).ok()?;
        Some(Self {
            data,
            hints: CacheControl {
                public: header["public"].as_bool()?,
                max_age: i32::try_from(header["maxAge"].as_i64()?).ok()?,
            },
            body,
            etag: header["etag"].as_str()?.to_owned(),
            cost: header["cost"].as_u64().map(|c| c as usize),
            tags: Vec::new(),
            expires: Instant::now(),
        })
    }

    fn size(&self) -> usize {
        // The body, the value tree beside it (about as large) and the tags.
        2 * self.body.len() + self.tags.iter().map(|t| t.len() + 48).sum::<usize>() + 256
    }
}

/// The cache; cloning shares it. Off, every lookup misses and nothing is kept.
#[derive(Clone, Default)]
pub struct ResponseCache(Option<Arc<Inner>>);

struct Inner {
    /// The entries (in memory), and the invalidations a store is checked
    /// against.
    store: Mutex<Store>,
    /// The entries in Redis instead, when shared.
    shared: Option<Shared>,
    /// Redis missed an invalidation: nothing is read from it until it is
    /// cleared.
    shared_suspect: std::sync::atomic::AtomicBool,
    /// Parsed documents (by address: the document cache hands out one per
    /// text) whose hints were private: their responses are not made ready
    /// to keep. An address reused by another document only costs that one
    /// its caching.
    private_documents: Mutex<lru::LruCache<usize, ()>>,
    ttl: Duration,
    max_bytes: usize,
    /// The id of the last event whose invalidations were applied.
    applied: AtomicI64,
    /// Lookups answered from the cache, here (the metric counts those of
    /// the whole process).
    hits: AtomicU64,
}

struct Store {
    entries: lru::LruCache<Key, Arc<Stored>>,
    bytes: usize,
    /// Tag → the keys of the entries tagged with it.
    tagged: HashMap<Tag, HashSet<Key>>,
    /// Invalidations so far; a [`Ticket`] remembers the count it saw.
    generation: u64,
    /// The latest invalidations, oldest first, with their generation.
    recent: VecDeque<(u64, Vec<Tag>)>,
    /// The generation of the last [`ResponseCache::clear`].
    recent_cleared: u64,
}

/// Taken when a response starts: what has been invalidated since is
/// checked before it is stored.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    /// Invalidations so far.
    generation: u64,
    /// In Redis, the lifetime of the keys the store is checked against
    /// (see [`redis`]); 0 in memory.
    incarnation: u64,
}

impl ResponseCache {
    /// `redis` is the process's Redis connection, present whenever the
    /// store is Redis.
    pub fn new(
        config: &ResponseCacheConfig,
        redis: Option<&::redis::aio::ConnectionManager>,
    ) -> anyhow::Result<Self> {
        let shared = match config.store {
            ResponseCacheStore::Off => return Ok(Self(None)),
            ResponseCacheStore::Memory => None,
            ResponseCacheStore::Redis => Some(Shared::new(
                redis
                    .ok_or_else(|| {
                        anyhow::anyhow!("RESPONSE_CACHE=redis needs a Redis connection")
                    })?
                    .clone(),
                &config.redis_prefix,
                config.ttl,
            )),
        };
        Ok(Self(Some(Arc::new(Inner {
            shared,
            shared_suspect: std::sync::atomic::AtomicBool::new(false),
            private_documents: Mutex::new(lru::LruCache::new(
                std::num::NonZeroUsize::new(PRIVATE_DOCUMENTS).expect("non-zero"),
            )),
            store: Mutex::new(Store {
                entries: lru::LruCache::unbounded(),
                bytes: 0,
                tagged: HashMap::new(),
                generation: 0,
                recent: VecDeque::new(),
                recent_cleared: 0,
            }),
            ttl: config.ttl,
            max_bytes: config.max_bytes,
            applied: AtomicI64::new(0),
            hits: AtomicU64::new(0),
        }))))
    }

    pub fn is_enabled(&self) -> bool {
        self.0.is_some()
    }

    fn store(inner: &Inner) -> std::sync::MutexGuard<'_, Store> {
        inner.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The key of a query: its document, operation name and variables.
    pub fn key(
        document: &str,
        operation: Option<&str>,
        variables: &async_graphql::Variables,
    ) -> Key {
        let mut hash = Sha256::new();
        hash.update(document.as_bytes());
        hash.update([0]);
        hash.update(operation.unwrap_or_default().as_bytes());
        hash.update([0]);
        // Variables serialise in a stable order (an ordered map).
        hash.update(serde_json::to_vec(variables).unwrap_or_default());
        hash.finalize().into()
    }

    /// The stored response for `key`, if any and still fresh.
    pub async fn get(&self, key: &Key) -> Option<Arc<Stored>> {
        let inner = self.0.as_ref()?;
        if let Some(shared) = &inner.shared {
            let found = if inner.shared_suspect.load(Ordering::Acquire) {
                None
            } else {
                match shared.get(&hex(key)).await {
                    Ok(found) => found.and_then(|bytes| Stored::decode(&bytes)),
                    Err(e) => {
                        tracing::warn!(error = format!("{e:#}"), "response cache unavailable");
                        None
                    }
                }
            };
            inner.looked_up(found.is_some());
            return found.map(Arc::new);
        }
        let mut store = Self::store(inner);
        let found = match store.entries.get(key) {
            Some(entry) if entry.expires > Instant::now() => Some(entry.clone()),
            Some(_) => {
                store.remove(key);
                None
            }
            None => None,
        };
        drop(store);
        inner.looked_up(found.is_some());
        found
    }

    /// Lookups this cache has answered.
    pub fn hits(&self) -> u64 {
        self.0
            .as_ref()
            .map_or(0, |inner| inner.hits.load(Ordering::Relaxed))
    }

    /// Taken before a response is computed, for [`ResponseCache::put`];
    /// `None` when nothing could be stored (Redis does not answer).
    pub async fn ticket(&self) -> Option<Ticket> {
        let inner = self.0.as_ref()?;
        match &inner.shared {
            Some(shared) => shared.ticket().await.ok(),
            None => Some(Ticket {
                generation: Self::store(inner).generation,
                incarnation: 0,
            }),
        }
    }

    /// Keeps `response` under `key`, unless one of `tags` was invalidated
    /// since `ticket` was taken (the response may predate that write) or it
    /// is too large; either way it comes back serialised. `response` must
    /// be public, cacheable and without errors.
    pub async fn put(
        &self,
        ticket: Option<Ticket>,
        key: Key,
        response: Response,
        tags: Vec<Tag>,
        cost: Option<usize>,
    ) -> Result<Arc<Stored>, Box<Response>> {
        let Some(inner) = self.0.as_ref() else {
            return Err(Box::new(response));
        };
        let body = match serde_json::to_vec(&response) {
            Ok(body) => Bytes::from(body),
            Err(_) => return Err(Box::new(response)),
        };
        let etag = etag(&body);
        let stored = Arc::new(Stored {
            hints: response.cache_control,
            data: response.data,
            body,
            etag,
            cost,
            tags,
            expires: Instant::now() + inner.ttl,
        });
        let Some(ticket) = ticket else {
            return Ok(stored);
        };
        if let Some(shared) = &inner.shared {
            let kept = shared
                .put(&hex(&key), &stored.encode(), &stored.tags, ticket)
                .await;
            match kept {
                Ok(Put::Kept) => {}
                Ok(Put::Stale) => metrics_export::record_response_cache("stale_refused"),
                // Served all the same; Redis has room again as entries expire.
                Ok(Put::Full) => metrics_export::record_response_cache("full"),
                Err(e) => tracing::warn!(error = format!("{e:#}"), "response not cached"),
            }
            return Ok(stored);
        }
        let size = stored.size();
        if size > inner.max_bytes / 8 {
            return Ok(stored);
        }
        let mut store = Self::store(inner);
        if store.invalidated_since(ticket, &stored.tags) {
            drop(store);
            metrics_export::record_response_cache("stale_refused");
            return Ok(stored);
        }
        store.remove(&key);
        for tag in &stored.tags {
            store.tagged.entry(tag.clone()).or_default().insert(key);
        }
        store.bytes += size;
        store.entries.put(key, stored.clone());
        while store.bytes > inner.max_bytes {
            let Some((old, _)) = store.entries.peek_lru().map(|(k, v)| (*k, v.clone())) else {
                break;
            };
            store.remove(&old);
            metrics_export::record_response_cache("evicted");
        }
        metrics_export::record_response_cache_size(store.entries.len(), store.bytes);
        Ok(stored)
    }

    /// Drops every entry tagged with one of `tags`; `event` is the id of
    /// the last event they come from.
    pub async fn invalidate(&self, tags: &[Tag], event: i64) {
        let Some(inner) = &self.0 else {
            return;
        };
        if let Some(shared) = &inner.shared {
            if !tags.is_empty() {
                match shared.invalidate(tags).await {
                    Ok(dropped) => metrics_export::record_response_cache_invalidations(dropped),
                    Err(e) => {
                        tracing::warn!(
                            error = format!("{e:#}"),
                            "response cache invalidation lost"
                        );
                        self.distrust_shared();
                    }
                }
            }
            inner.applied.fetch_max(event, Ordering::AcqRel);
            return;
        }
        let mut store = Self::store(inner);
        store.generation += 1;
        let generation = store.generation;
        store.recent.push_back((generation, tags.to_vec()));
        if store.recent.len() > RECENT_INVALIDATIONS {
            store.recent.pop_front();
        }
        let mut dropped = 0;
        for tag in tags {
            let Some(keys) = store.tagged.remove(tag) else {
                continue;
            };
            for key in keys {
                dropped += usize::from(store.remove(&key));
            }
        }
        metrics_export::record_response_cache_size(store.entries.len(), store.bytes);
        drop(store);
        metrics_export::record_response_cache_invalidations(dropped);
        inner.applied.fetch_max(event, Ordering::AcqRel);
    }

    /// Drops everything: the bus may have lost events.
    pub async fn clear(&self, event: i64) {
        let Some(inner) = &self.0 else {
            return;
        };
        if let Some(shared) = &inner.shared {
            if let Err(e) = shared.clear().await {
                tracing::warn!(error = format!("{e:#}"), "response cache clear failed");
                self.distrust_shared();
            }
            inner.applied.fetch_max(event, Ordering::AcqRel);
            return;
        }
        let mut store = Self::store(inner);
        let dropped = store.entries.len();
        store.generation += 1;
        let generation = store.generation;
        // Whatever started before cannot be stored.
        store.recent.clear();
        store.recent.push_back((generation, Vec::new()));
        store.entries.clear();
        store.tagged.clear();
        store.bytes = 0;
        store.recent_cleared = generation;
        drop(store);
        metrics_export::record_response_cache_invalidations(dropped);
        inner.applied.fetch_max(event, Ordering::AcqRel);
    }

    /// Redis missed an invalidation: reads stop until a clear succeeds,
    /// retried in the background.
    fn distrust_shared(&self) {
        let Some(inner) = &self.0 else {
            return;
        };
        if inner.shared_suspect.swap(true, Ordering::AcqRel) {
            return;
        }
        let inner = inner.clone();
        tokio::spawn(async move {
            let Some(shared) = &inner.shared else {
                return;
            };
            while shared.clear().await.is_err() {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            inner.shared_suspect.store(false, Ordering::Release);
            tracing::info!("response cache in Redis cleared after a lost invalidation");
        });
    }

    /// Remembers that `document`'s responses are private.
    pub fn remember_private(
        &self,
        document: &Arc<async_graphql::parser::types::ExecutableDocument>,
    ) {
        if let Some(inner) = &self.0 {
            let mut private = inner
                .private_documents
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            private.put(Arc::as_ptr(document) as usize, ());
        }
    }

    /// Whether `document`'s responses were private before.
    pub fn is_private(
        &self,
        document: &Arc<async_graphql::parser::types::ExecutableDocument>,
    ) -> bool {
        self.0.as_ref().is_some_and(|inner| {
            let private = inner
                .private_documents
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            private.contains(&(Arc::as_ptr(document) as usize))
        })
    }

    /// Marks every event up to `event` applied.
    pub fn applied_through(&self, event: i64) {
        if let Some(inner) = &self.0 {
            inner.applied.fetch_max(event, Ordering::AcqRel);
        }
    }

    /// The id of the last event whose invalidations were applied here.
    pub fn applied_id(&self) -> i64 {
        self.0
            .as_ref()
            .map_or(0, |inner| inner.applied.load(Ordering::Acquire))
    }
}

impl Inner {
    fn looked_up(&self, found: bool) {
        if found {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        metrics_export::record_response_cache(if found { "hit" } else { "miss" });
    }
}

impl Store {
    /// Removes `key`'s entry and its tags; whether there was one.
    fn remove(&mut self, key: &Key) -> bool {
        let Some(entry) = self.entries.pop(key) else {
            return false;
        };
        self.bytes -= entry.size();
        for tag in &entry.tags {
            if let Some(keys) = self.tagged.get_mut(tag) {
                keys.remove(key);
                if keys.is_empty() {
                    self.tagged.remove(tag);
                }
            }
        }
        true
    }

    fn invalidated_since(&self, ticket: Ticket, tags: &[Tag]) -> bool {
        let start = ticket.generation;
        if start == self.generation {
            return false;
        }
        // Invalidations the check can no longer see: assume the worst.
        if self.recent_cleared > start
            || self
                .recent
                .front()
                .is_none_or(|(first, _)| *first > start + 1)
        {
            return true;
        }
        self.recent
            .iter()
            .filter(|(generation, _)| *generation > start)
            .any(|(_, invalidated)| invalidated.iter().any(|t| tags.contains(t)))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A strong validator of a response body: a quoted prefix of its SHA-256.
pub fn etag(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    format!("\"{}\"", hex(&digest[..16]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// async-graphql's hint calculation does not count the fields of a
    /// named fragment spread where an interface or a union is expected,
    /// so a document could reach a private field through one and still be
    /// hinted public. No cacheable path may lead to an interface or a
    /// union until that is handled (here, and by the tags' walk).
    #[test]
    fn no_cacheable_field_returns_an_interface_or_a_union() {
        use async_graphql::registry::{MetaType, MetaTypeName};

        let registry = crate::graphql::limits::registry();
        let cacheable = |hints: &CacheControl| hints.public && hints.max_age != -1;
        let mut seen = HashSet::new();
        let mut queue = vec![("Query".to_owned(), "Query".to_owned())];
        let mut reached = Vec::new();
        while let Some((ty, path)) = queue.pop() {
            if !seen.insert(ty.clone()) {
                continue;
            }
            match registry.types.get(&ty) {
                Some(MetaType::Object {
                    fields,
                    cache_control,
                    ..
                }) if cacheable(cache_control) => {
                    for field in fields.values() {
                        if cacheable(&field.cache_control) {
                            let named = MetaTypeName::concrete_typename(&field.ty).to_owned();
                            queue.push((named, format!("{path}.{}", field.name)));
                        }
                    }
                }
                Some(MetaType::Interface { .. } | MetaType::Union { .. }) => reached.push(path),
                _ => {}
            }
        }
        assert!(
            reached.is_empty(),
            "cacheable fields lead to interfaces or unions: {reached:?}"
        );
        assert!(
            seen.contains("Article") && seen.contains("Comment") && seen.contains("User"),
            "the walk reached the public types: {seen:?}"
        );
    }

    fn cache(max_bytes: usize) -> ResponseCache {
        let config = ResponseCacheConfig {
            store: ResponseCacheStore::Memory,
            max_bytes,
            ttl: Duration::from_secs(60),
            redis_prefix: String::new(),
        };
        ResponseCache::new(&config, None).unwrap()
    }

    fn response(text: &str) -> Response {
        let mut response = Response::new(async_graphql::Value::from(text));
        response.cache_control = CacheControl {
            public: true,
            max_age: 60,
        };
        response
    }

    fn key(n: u8) -> Key {
        [n; 32]
    }

    fn tags(names: &[&str]) -> Vec<Tag> {
        names.iter().map(|n| Tag::from(*n)).collect()
    }

    #[tokio::test]
    async fn an_invalidation_drops_exactly_the_entries_tagged_with_it() {
        let cache = cache(1 << 20);
        let ticket = cache.ticket().await;
        cache
            .put(ticket, key(1), response("one"), tags(&["A", "L"]), None)
            .await
            .unwrap();
        cache
            .put(ticket, key(2), response("two"), tags(&["B"]), Some(3))
            .await
            .unwrap();
        assert_eq!(cache.get(&key(2)).await.unwrap().cost, Some(3));
        cache.invalidate(&tags(&["A"]), 1).await;
        assert!(cache.get(&key(1)).await.is_none());
        assert!(cache.get(&key(2)).await.is_some());
        assert_eq!(
            cache.get(&key(2)).await.unwrap().body.as_ref(),
            br#"{"data":"two"}"#
        );
    }

    #[tokio::test]
    async fn a_response_older_than_an_invalidation_of_its_tags_is_not_kept() {
        let cache = cache(1 << 20);
        let ticket = cache.ticket().await;
        cache.invalidate(&tags(&["A"]), 1).await;
        // Served, but not kept: it may show what A was before the write.
        let stale = cache
            .put(ticket, key(1), response("old"), tags(&["A"]), None)
            .await;
        assert!(stale.is_ok());
        assert!(cache.get(&key(1)).await.is_none());
        // Another tag's invalidation does not matter.
        cache
            .put(ticket, key(2), response("fine"), tags(&["B"]), None)
            .await
            .unwrap();
        assert!(cache.get(&key(2)).await.is_some());
        // After a clear nothing from before is kept.
        let before_clear = cache.ticket().await;
        cache.clear(2).await;
        cache
            .put(before_clear, key(3), response("x"), tags(&["C"]), None)
            .await
            .unwrap();
        assert!(cache.get(&key(3)).await.is_none());
    }

    #[tokio::test]
    async fn memory_stays_within_the_bound_least_recently_used_out_first() {
        let cache = cache(8 * 1024);
        let ticket = cache.ticket().await;
        for n in 0..40 {
            cache
                .put(
                    ticket,
                    key(n),
                    response(&"x".repeat(200)),
                    tags(&["T"]),
                    None,
                )
                .await
                .unwrap();
            let _ = cache.get(&key(0)).await;
        }
        let inner = cache.0.as_ref().unwrap();
        let store = ResponseCache::store(inner);
        assert!(store.bytes <= 8 * 1024, "{} bytes", store.bytes);
        assert!(
            store.entries.contains(&key(0)),
            "the one read each time stays"
        );
        assert!(!store.entries.contains(&key(1)));
        let tagged = store.tagged.get("T").map_or(0, HashSet::len);
        assert_eq!(tagged, store.entries.len(), "no tag outlives its entry");
    }
}
