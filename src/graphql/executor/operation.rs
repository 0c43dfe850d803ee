//! One operation of a request, in order: answered from the response cache
//! (charged what running it would cost), or measured against the static
//! limits, charged, given its loaders and the request's data, run by the
//! schema, and offered to the cache.

use std::sync::Arc;

use async_graphql::{BatchResponse, Request, ServerError, parser::types::ExecutableDocument};
use tokio::time::Instant;
use tracing::Instrument;

use super::{
    Executor, Operations, Prepared,
    response::{Answer, Answered},
};
use crate::{
    auth::Viewer,
    error::AppError,
    graphql::{
        cache::{self, ResponseCache, policy::Keep},
        limits, loaders,
        persisted::Registration,
        rate_limit::{self, ClientAddress, RateLimitTicket},
    },
    state::AppState,
};

/// What every operation of a request shares.
pub(super) struct Operation<'a> {
    pub executor: &'a Executor,
    /// What the operations read from and write to.
    pub app: &'a AppState,
    /// Whether `app` is a replica: what it answers may predate writes whose
    /// invalidations this instance already applied, so it is not kept.
    pub on_replica: bool,
    pub viewer: Option<Viewer>,
    pub address: ClientAddress,
    pub ticket: &'a Arc<RateLimitTicket>,
}

impl Operation<'_> {
    /// Runs a request's operations by `deadline`. A batch runs one after
    /// another, in order, as async-graphql runs one: a mutation may build
    /// on an earlier one's write.
    pub async fn run_all(
        &self,
        operations: Operations,
        deadline: Instant,
    ) -> Result<Answer, AppError> {
        match operations {
            Operations::Single(operation) => match self.run_by(operation, deadline).await {
                Some(Answered::Stored(stored)) => Ok(Answer::Stored(stored)),
                Some(Answered::Ran(response)) => {
                    Ok(Answer::Responses(BatchResponse::Single(response)))
                }
                None => Err(timed_out()),
            },
            Operations::Batch(operations) => {
                let mut responses = Vec::with_capacity(operations.len());
                let mut wrote = false;
                for operation in operations {
                    let mutation = operation.is_mutation();
                    match self.run_by(operation, deadline).await {
                        Some(answered) => responses.push(answered.into_response()),
                        // Nothing has changed: the whole request timed out.
                        None if !wrote => return Err(timed_out()),
                        // Each operation says whether it ran.
                        None => responses.push(async_graphql::Response::from_errors(vec![
                            timed_out().into_server_error(),
                        ])),
                    }
                    wrote |= mutation;
                }
                Ok(Answer::Responses(BatchResponse::Batch(responses)))
            }
        }
    }

    /// Runs one operation unless the request's `deadline` has passed. A
    /// query is cut off at the deadline, having changed nothing. A mutation
    /// is not: cut off, it could still commit (or have committed), and a
    /// client told `TIMEOUT` would retry and write twice. Once started it
    /// runs to its end, each statement within `statement_timeout` and each
    /// wait for a connection within the acquire timeout, and its answer
    /// says what it did. `None`: not run, or cut off.
    async fn run_by(&self, operation: Prepared, deadline: Instant) -> Option<Answered> {
        if Instant::now() >= deadline {
            return None;
        }
        if operation.is_mutation() {
            return Some(self.run(operation).await);
        }
        tokio::time::timeout_at(deadline, self.run(operation))
            .await
            .ok()
    }

    /// Runs one operation, or answers it from the response cache.
    async fn run(&self, mut operation: Prepared) -> Answered {
        let span = operation_span(&operation);
        async {
            let key = self.cache_key(&operation);
            if let Some(key) = &key
                && let Some(stored) = self.executor.cache.get(key).await
            {
                // A stored answer costs what running it would.
                let registration = operation.registration.take();
                if (stored.cost.is_some() || registration.is_some())
                    && let Err(e) = self
                        .charge(
                            stored.cost.unwrap_or_default(),
                            registration,
                            &operation.request.query,
                        )
                        .await
                {
                    return Answered::Ran(async_graphql::Response::from_errors(vec![e]));
                }
                return Answered::Stored(stored);
            }
            match self.request(operation, key).await {
                Ok((request, None)) => Answered::Ran(self.executor.schema.execute(request).await),
                Ok((request, Some(keep))) => {
                    let response = self.executor.schema.execute(request).await;
                    match keep.keep(&self.executor.cache, response).await {
                        Ok(stored) => Answered::Stored(stored),
                        Err(response) => Answered::Ran(*response),
                    }
                }
                Err(refused) => Answered::Ran(refused),
            }
        }
        .instrument(span)
        .await
    }

    /// Charges the operation's `cost` plus keeping the document that came
    /// with `registration`, then keeps it. Called only for a document that
    /// parsed within the limits, so nothing else is ever kept, and nothing
    /// beyond the caller's budget.
    async fn charge(
        &self,
        cost: usize,
        registration: Option<Registration>,
        document: &str,
    ) -> Result<(), ServerError> {
        let keeping = registration.as_ref().map_or(0, Registration::cost);
        rate_limit::charge(&self.executor.app, self.ticket, cost + keeping).await?;
        if let Some(registration) = registration {
            self.executor.documents.keep(registration, document).await;
        }
        Ok(())
    }

    /// The response cache's key for a query that parsed, when the cache is on.
    fn cache_key(&self, operation: &Prepared) -> Option<cache::Key> {
        if !self.executor.cache.is_enabled() || operation.document.is_err() || !operation.is_query()
        {
            return None;
        }
        let request = &operation.request;
        Some(ResponseCache::key(
            &request.query,
            request.operation_name.as_deref(),
            &request.variables,
        ))
    }

    /// The static limits and the rate-limit charge (then a document sent
    /// with its hash is kept), then the request the schema runs, with what
    /// resolvers need attached: the viewer, the client's address, the
    /// rate-limit ticket and a fresh set of loaders (they cache per
    /// operation and know the viewer). A refusal is the response to send
    /// instead.
    pub async fn request(
        &self,
        operation: Prepared,
        key: Option<cache::Key>,
    ) -> Result<(Request, Option<Keep>), async_graphql::Response> {
        let refuse = |e: ServerError| async_graphql::Response::from_errors(vec![e]);
        let executor = self.executor;
        let Prepared {
            mut request,
            document,
            registration,
        } = operation;
        let document = document.map_err(refuse)?;
        let measure = executor
            .limits
            .measure(
                &document,
                request.operation_name.as_deref(),
                &request.variables,
            )
            .map_err(refuse)?;
        // The operation's span when traces are on, else the request's.
        let span = tracing::Span::current();
        let loaders = loaders::for_request(self.app, self.viewer, move |batch| {
            tokio::spawn(batch.instrument(span.clone()))
        });
        let cost = measure.as_ref().map(|m| m.cost);
        if let Some(measure) = measure {
            if measure.mutation {
                // Mutations run in turn and change what later ones read:
                // no answer is cached across them.
                loaders.enable_all_cache(false);
            }
            self.charge(measure.cost, registration, &request.query)
                .await
                .map_err(refuse)?;
        }
        let mut executed = ExecutableDocument::clone(&document);
        let keep = match key {
            Some(key) => {
                Keep::prepare(
                    &executor.cache,
                    key,
                    self.on_replica,
                    &document,
                    &mut executed,
                    &request,
                    cost,
                )
                .await
            }
            None => None,
        };
        request.set_parsed_query(executed);
        request = request
            .data(self.address)
            .data(self.ticket.clone())
            .data(Arc::new(loaders));
        if !std::ptr::eq(self.app, &executor.app) {
            request = request.data(self.app.clone());
        }
        let request = match self.viewer {
            Some(viewer) => request.data(viewer),
            None if executor.production => request.disable_introspection(),
            None => request,
        };
        Ok((request, keep))
    }
}

/// What an operation that did not run in time answers.
fn timed_out() -> AppError {
    AppError::Timeout("the request took too long and was cancelled")
}

/// A span for one operation, when traces are on: named like
/// `query HomePage`.
fn operation_span(operation: &Prepared) -> tracing::Span {
    if !crate::telemetry::traces::enabled() {
        return tracing::Span::none();
    }
    let name = operation.request.operation_name.as_deref().unwrap_or("");
    let kind = match &operation.document {
        Ok(document) => {
            match limits::operation(document, operation.request.operation_name.as_deref()) {
                Some(op) => op.ty.to_string(),
                None => "operation".to_owned(),
            }
        }
        Err(_) => "invalid".to_owned(),
    };
    tracing::info_span!(
        "graphql.operation",
        otel.name = %format_args!("{kind} {name}"),
        graphql.operation.type = %kind,
        graphql.operation.name = name,
    )
}
