//! Parsed documents by their text. Clients send the same few documents
//! over and over, and parsing is a large share of a small request's work:
//! a known text skips the text checks and the parser. Bounded, and only
//! short documents are kept, so a flood of distinct documents costs memory
//! no more than the bound.

use std::{
    num::NonZeroUsize,
    sync::{Arc, Mutex},
};

use async_graphql::{ServerError, parser::types::ExecutableDocument};

/// How many documents are kept, least recently used first out.
const CACHED_DOCUMENTS: usize = 512;
/// Longer texts are parsed each time: they are rare, and would let a few
/// requests fill the cache's memory.
const MAX_CACHED_BYTES: usize = 16 * 1024;

pub struct DocumentCache {
    documents: Mutex<lru::LruCache<String, Arc<ExecutableDocument>>>,
}

impl Default for DocumentCache {
    fn default() -> Self {
        Self {
            documents: Mutex::new(lru::LruCache::new(
                NonZeroUsize::new(CACHED_DOCUMENTS).expect("non-zero"),
            )),
        }
    }
}

impl DocumentCache {
    /// The document `query` holds: cached, or parsed by `parse` and
    /// cached when it parsed (a refused text is refused again each time).
    pub fn get_or_parse(
        &self,
        query: &str,
        parse: impl FnOnce(&str) -> Result<ExecutableDocument, ServerError>,
    ) -> Result<Arc<ExecutableDocument>, ServerError> {
        let lock = || self.documents.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(document) = lock().get(query) {
            return Ok(document.clone());
        }
        let document = Arc::new(parse(query)?);
        if query.len() <= MAX_CACHED_BYTES {
            lock().put(query.to_owned(), document.clone());
        }
        Ok(document)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &str) -> Result<ExecutableDocument, ServerError> {
        async_graphql::parser::parse_query(query).map_err(ServerError::from)
    }

    #[test]
    fn a_known_text_is_parsed_once() {
        let cache = DocumentCache::default();
        let first = cache.get_or_parse("{ tags }", parse).unwrap();
        let again = cache
            .get_or_parse("{ tags }", |_| panic!("parsed again"))
            .unwrap();
        assert!(Arc::ptr_eq(&first, &again));
    }

    #[test]
    fn refused_and_long_texts_are_not_kept() {
        let cache = DocumentCache::default();
        assert!(cache.get_or_parse("{ tags", parse).is_err());
        assert!(cache.get_or_parse("{ tags", parse).is_err(), "not cached");
        let long = format!("{{ tags {} }}", "__typename ".repeat(2000));
        let first = cache.get_or_parse(&long, parse).unwrap();
        let again = cache.get_or_parse(&long, parse).unwrap();
        assert!(!Arc::ptr_eq(&first, &again), "parsed each time");
    }
}
