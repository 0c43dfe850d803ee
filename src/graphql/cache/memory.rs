//! The response cache in this instance's memory (`RESPONSE_CACHE=memory`):
//! entries within `RESPONSE_CACHE_MAX_BYTES`, the least recently used out
//! first, each indexed by its tags; the latest invalidations are kept for
//! the race check of [`super::ResponseCache::put`].

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
    time::Instant,
};

use super::{Key, ResponseStore, Stored, Tag, Ticket};
use crate::telemetry::metrics_export;

/// Invalidations remembered for the race check; a response that ran
/// longer than it takes to see this many is not stored.
const RECENT_INVALIDATIONS: usize = 4096;

pub struct MemoryResponses {
    store: Mutex<Store>,
    max_bytes: usize,
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
    /// The generation of the last clear.
    recent_cleared: u64,
}

impl MemoryResponses {
    /// Entries within `max_bytes`.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            store: Mutex::new(Store {
                entries: lru::LruCache::unbounded(),
                bytes: 0,
                tagged: HashMap::new(),
                generation: 0,
                recent: VecDeque::new(),
                recent_cleared: 0,
            }),
            max_bytes,
        }
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait::async_trait]
impl ResponseStore for MemoryResponses {
    async fn get(&self, key: &Key) -> Option<Arc<Stored>> {
        let mut store = self.store();
        match store.entries.get(key) {
            Some(entry) if entry.expires > Instant::now() => Some(entry.clone()),
            Some(_) => {
                store.remove(key);
                None
            }
            None => None,
        }
    }

    async fn ticket(&self) -> Option<Ticket> {
        Some(Ticket {
            generation: self.store().generation,
            incarnation: 0,
        })
    }

    async fn put(&self, ticket: Ticket, key: Key, stored: &Arc<Stored>) {
        let size = stored.size();
        if size > self.max_bytes / 8 {
            return;
        }
        let mut store = self.store();
        if store.invalidated_since(ticket, &stored.tags) {
            drop(store);
            metrics_export::record_response_cache("stale_refused");
            return;
        }
        store.remove(&key);
        for tag in &stored.tags {
            store.tagged.entry(tag.clone()).or_default().insert(key);
        }
        store.bytes += size;
        store.entries.put(key, stored.clone());
        while store.bytes > self.max_bytes {
            let Some((old, _)) = store.entries.peek_lru().map(|(k, v)| (*k, v.clone())) else {
                break;
            };
            store.remove(&old);
            metrics_export::record_response_cache("evicted");
        }
        metrics_export::record_response_cache_size(store.entries.len(), store.bytes);
    }

    async fn invalidate(&self, tags: &[Tag]) {
        let mut store = self.store();
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
    }

    async fn clear(&self) {
        let mut store = self.store();
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{
        super::{
            ResponseCache,
            tests::{key, response, tags},
        },
        *,
    };

    #[tokio::test]
    async fn memory_stays_within_the_bound_least_recently_used_out_first() {
        let memory = Arc::new(MemoryResponses::new(8 * 1024));
        let cache = ResponseCache::over(memory.clone(), Duration::from_secs(60));
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
        let store = memory.store();
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
