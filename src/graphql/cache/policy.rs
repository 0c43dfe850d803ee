//! Which responses the cache keeps: the decision taken before a query runs
//! (may it be kept at all, and what keeping it will need) and the one taken
//! after (do its hints let every viewer share it).

use std::sync::Arc;

use async_graphql::parser::types::ExecutableDocument;

use super::{Key, ResponseCache, Stored, Ticket, tags};

/// What keeping a query's response needs, taken before it runs.
pub struct Keep {
    key: Key,
    ticket: Option<Ticket>,
    cost: Option<usize>,
    /// The document as the client sent it (the one run selects more).
    document: Arc<ExecutableDocument>,
    operation_name: Option<String>,
    variables: async_graphql::Variables,
}

impl Keep {
    /// Whether the response to `document` may be kept, and if so what
    /// keeping it needs: `executed` (the document that will run) is made
    /// to select the ids the entry is tagged with. Not on a replica: what
    /// it answers may predate writes whose invalidations this instance
    /// already applied. Not for a document seen answering privately.
    pub async fn prepare(
        cache: &ResponseCache,
        key: Key,
        on_replica: bool,
        document: &Arc<ExecutableDocument>,
        executed: &mut ExecutableDocument,
        request: &async_graphql::Request,
        cost: Option<usize>,
    ) -> Option<Self> {
        if on_replica || !tags::may_keep(&request.query) || cache.is_private(document) {
            return None;
        }
        tags::augment(executed);
        Some(Self {
            key,
            ticket: cache.ticket().await,
            cost,
            document: document.clone(),
            operation_name: request.operation_name.clone(),
            variables: request.variables.clone(),
        })
    }

    /// Takes the entity ids out of a response made to be kept, and keeps
    /// it if its hints let every viewer share it: public, with a
    /// `max_age`, without errors or extensions. The response to send
    /// otherwise.
    pub async fn keep(
        self,
        cache: &ResponseCache,
        mut response: async_graphql::Response,
    ) -> Result<Arc<Stored>, Box<async_graphql::Response>> {
        let tags = tags::collect(
            &self.document,
            self.operation_name.as_deref(),
            &self.variables,
            &mut response.data,
        );
        let hints = response.cache_control;
        if !hints.public {
            cache.remember_private(&self.document);
        }
        let shareable = hints.public
            && hints.max_age > 0
            && response.errors.is_empty()
            && response.extensions.is_empty();
        if !shareable {
            return Err(Box::new(response));
        }
        cache
            .put(self.ticket, self.key, response, tags, self.cost)
            .await
    }
}
