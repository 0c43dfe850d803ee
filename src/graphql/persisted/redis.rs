//! Persisted documents in Redis: a document registered on one instance
//! runs by its hash on every other. Each is kept a week past its last use.

use std::{sync::Arc, time::Duration};

use redis::aio::ConnectionManager;

use super::DocumentStore;

/// How long Redis keeps a document nobody asked for.
const TTL: Duration = Duration::from_secs(7 * 24 * 3600);
const PREFIX: &str = "conduit:apq:";

pub struct RedisDocuments {
    connection: ConnectionManager,
}

impl RedisDocuments {
    pub fn new(connection: ConnectionManager) -> Self {
        Self { connection }
    }
}

#[async_trait::async_trait]
impl DocumentStore for RedisDocuments {
    async fn get(&self, hash: &str) -> Option<Arc<str>> {
        let mut connection = self.connection.clone();
        let found: redis::RedisResult<Option<String>> = redis::cmd("GETEX")
            .arg(format!("{PREFIX}{hash}"))
            .arg("EX")
            .arg(TTL.as_secs())
            .query_async(&mut connection)
            .await;
        // A Redis outage costs a round trip with the text, not the request.
        found
            .inspect_err(|e| tracing::warn!(error = %e, "persisted query lookup failed"))
            .ok()
            .flatten()
            .map(Arc::from)
    }

    async fn set(&self, hash: String, document: &str) {
        let mut connection = self.connection.clone();
        let stored: redis::RedisResult<()> = redis::cmd("SET")
            .arg(format!("{PREFIX}{hash}"))
            .arg(document)
            .arg("EX")
            .arg(TTL.as_secs())
            .query_async(&mut connection)
            .await;
        if let Err(e) = stored {
            tracing::warn!(error = %e, "failed to store a persisted query");
        }
    }
}
