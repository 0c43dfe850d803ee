//! Persisted documents in this process: the most recently used ones, for
//! one instance (each instance of several keeps its own).

use std::{
    num::NonZeroUsize,
    sync::{Arc, Mutex},
};

use super::DocumentStore;

/// Documents kept (at most 16 MiB with the longest a document may be).
const CAPACITY: usize = 1024;

pub struct MemoryDocuments {
    documents: Mutex<lru::LruCache<String, Arc<str>>>,
}

impl MemoryDocuments {
    /// A store of the `capacity` most recently used documents.
    pub fn with_capacity(capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        Self {
            documents: Mutex::new(lru::LruCache::new(capacity)),
        }
    }
}

impl Default for MemoryDocuments {
    fn default() -> Self {
        Self::with_capacity(CAPACITY)
    }
}

#[async_trait::async_trait]
impl DocumentStore for MemoryDocuments {
    async fn get(&self, hash: &str) -> Option<Arc<str>> {
        self.documents
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(hash)
            .cloned()
    }

    async fn set(&self, hash: String, document: &str) {
        self.documents
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .put(hash, Arc::from(document));
    }
}
