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
//!   least recently used out first.

pub mod invalidation;
pub mod tags;

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicI64, Ordering},
    },
    time::{Duration, Instant},
};

use async_graphql::{CacheControl, Response};
use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::{config::ResponseCacheConfig, telemetry::metrics_export};

pub use tags::Tag;

/// An entry's key: SHA-256 of what the response depends on.
pub type Key = [u8; 32];

/// Invalidations remembered for the race check; a response that ran
/// longer than it takes to see this many is not stored.
const RECENT_INVALIDATIONS: usize = 4096;

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

    fn size(&self) -> usize {
        // The body, the value tree beside it (about as large) and the tags.
        2 * self.body.len() + self.tags.iter().map(|t| t.len() + 48).sum::<usize>() + 256
    }
}

/// The cache; cloning shares it. Off, every lookup misses and nothing is kept.
#[derive(Clone, Default)]
pub struct ResponseCache(Option<Arc<Inner>>);

struct Inner {
    store: Mutex<Store>,
    ttl: Duration,
    max_bytes: usize,
    /// The id of the last event whose invalidations were applied.
    applied: AtomicI64,
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
pub struct Ticket(u64);

impl ResponseCache {
    pub fn new(config: &ResponseCacheConfig) -> Self {
        if !config.enabled {
            return Self(None);
        }
        Self(Some(Arc::new(Inner {
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
        })))
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
    pub fn get(&self, key: &Key) -> Option<Arc<Stored>> {
        let inner = self.0.as_ref()?;
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
        metrics_export::record_response_cache(if found.is_some() { "hit" } else { "miss" });
        found
    }

    /// Taken before a response is computed, for [`ResponseCache::put`].
    pub fn ticket(&self) -> Ticket {
        Ticket(
            self.0
                .as_ref()
                .map_or(0, |inner| Self::store(inner).generation),
        )
    }

    /// Keeps `response` under `key`, unless one of `tags` was invalidated
    /// since `ticket` was taken (the response may predate that write) or it
    /// is too large; either way it comes back serialised. `response` must
    /// be public, cacheable and without errors.
    pub fn put(
        &self,
        ticket: Ticket,
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
    pub fn invalidate(&self, tags: &[Tag], event: i64) {
        let Some(inner) = &self.0 else {
            return;
        };
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
    pub fn clear(&self, event: i64) {
        let Some(inner) = &self.0 else {
            return;
        };
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

    /// The id of the last event whose invalidations were applied here.
    pub fn applied_id(&self) -> i64 {
        self.0
            .as_ref()
            .map_or(0, |inner| inner.applied.load(Ordering::Acquire))
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
        if ticket.0 == self.generation {
            return false;
        }
        // Invalidations the check can no longer see: assume the worst.
        if self.recent_cleared > ticket.0
            || self
                .recent
                .front()
                .is_none_or(|(first, _)| *first > ticket.0 + 1)
        {
            return true;
        }
        self.recent
            .iter()
            .filter(|(generation, _)| *generation > ticket.0)
            .any(|(_, invalidated)| invalidated.iter().any(|t| tags.contains(t)))
    }
}

/// A strong validator of a response body: a quoted prefix of its SHA-256.
pub fn etag(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(max_bytes: usize) -> ResponseCache {
        ResponseCache::new(&ResponseCacheConfig {
            enabled: true,
            max_bytes,
            ttl: Duration::from_secs(60),
        })
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

    #[test]
    fn an_invalidation_drops_exactly_the_entries_tagged_with_it() {
        let cache = cache(1 << 20);
        let ticket = cache.ticket();
        cache
            .put(ticket, key(1), response("one"), tags(&["A", "L"]), None)
            .unwrap();
        cache
            .put(ticket, key(2), response("two"), tags(&["B"]), Some(3))
            .unwrap();
        assert_eq!(cache.get(&key(2)).unwrap().cost, Some(3));
        cache.invalidate(&tags(&["A"]), 1);
        assert!(cache.get(&key(1)).is_none());
        assert!(cache.get(&key(2)).is_some());
        assert_eq!(
            cache.get(&key(2)).unwrap().body.as_ref(),
            br#"{"data":"two"}"#
        );
    }

    #[test]
    fn a_response_older_than_an_invalidation_of_its_tags_is_not_kept() {
        let cache = cache(1 << 20);
        let ticket = cache.ticket();
        cache.invalidate(&tags(&["A"]), 1);
        // Served, but not kept: it may show what A was before the write.
        let stale = cache.put(ticket, key(1), response("old"), tags(&["A"]), None);
        assert!(stale.is_ok());
        assert!(cache.get(&key(1)).is_none());
        // Another tag's invalidation does not matter.
        cache
            .put(ticket, key(2), response("fine"), tags(&["B"]), None)
            .unwrap();
        assert!(cache.get(&key(2)).is_some());
        // After a clear nothing from before is kept.
        let before_clear = cache.ticket();
        cache.clear(2);
        cache
            .put(before_clear, key(3), response("x"), tags(&["C"]), None)
            .unwrap();
        assert!(cache.get(&key(3)).is_none());
    }

    #[test]
    fn memory_stays_within_the_bound_least_recently_used_out_first() {
        let cache = cache(8 * 1024);
        let ticket = cache.ticket();
        for n in 0..40 {
            cache
                .put(
                    ticket,
                    key(n),
                    response(&"x".repeat(200)),
                    tags(&["T"]),
                    None,
                )
                .unwrap();
            let _ = cache.get(&key(0));
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
