//! The GraphQL pipeline, whatever carries the request. Transports (`http`)
//! only decode requests and encode what comes back; between the two, a
//! request goes through these steps, in order, on one path for every
//! transport ([`Executor::execute`] for HTTP, [`Executor::stream`] for a
//! WebSocket's operations):
//!
//! 1. **Prepare** ([`prepared`]): a persisted hash becomes its document (or
//!    the request is refused), and each document is parsed within the
//!    static limits, once per text ([`super::document_cache`]).
//! 2. **Authenticate**: the credentials name a viewer, or nobody, and then
//!    the client is told why ([`crate::auth::credentials`]). A WebSocket
//!    does this once, when it opens.
//! 3. **Route**: queries read from a replica that has replayed the viewer's
//!    last write, else from the primary; a request with a mutation runs on
//!    the primary, on a view of the pool of its own when its commits must
//!    be awaited or its writers remembered ([`crate::db::route`]).
//! 4. **Run** each operation ([`operation`]), by the request's deadline for
//!    queries: a public query is answered from the response cache when it
//!    holds the answer, charged what running it would cost; otherwise the
//!    operation is measured, charged to the rate limit, given its loaders
//!    and run, and its response offered to the cache, which keeps it when
//!    its hints let every viewer share it ([`super::cache::policy`]).
//!    Subscriptions stream instead, with no deadline.
//! 5. **Settle** (the route, [`crate::db::route::Route::answer`]): the
//!    request's commits are awaited, so no write is acknowledged that did
//!    not commit; then the writers' next reads are sent where their writes
//!    can be seen. After a mutation this
//!    instance applies the invalidations it has not yet, so its next
//!    answer shows the write.
//! 6. **Respond** ([`response`]): every error gets a code (internal ones
//!    the request id, within whose scope everything above ran), a rejected
//!    token is told in `extensions`, and the operation metrics are taken.

mod operation;
mod prepared;
mod response;

use std::{net::IpAddr, sync::Arc, time::Duration};

use async_graphql::BatchRequest;
use futures_util::StreamExt;
use tokio::time::Instant;

use self::operation::Operation;
pub use self::{
    prepared::{Operations, Prepared, Refusal},
    response::{Answer, Executed, nothing_ran, tag_errors},
};
use super::{
    ConduitSchema,
    cache::{ResponseCache, invalidation},
    document_cache::DocumentCache,
    limits::DocumentLimits,
    persisted::PersistedDocuments,
    rate_limit::{ClientAddress, RateLimitTicket},
};
pub use crate::auth::credentials::Credentials;
use crate::{
    auth::{Viewer, credentials},
    config::Config,
    db::route::{Route, RouteKind},
    error::AppError,
    rate_limit::Spender,
    services::sessions,
    state::AppState,
    telemetry::metrics_export,
};

pub struct Executor {
    app: AppState,
    schema: ConduitSchema,
    limits: DocumentLimits,
    parsed: DocumentCache,
    cache: ResponseCache,
    documents: PersistedDocuments,
    /// Production hides the schema from anonymous clients.
    production: bool,
    request_timeout: Duration,
    max_batch_size: usize,
}

/// Who is calling, as the transport saw it.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    /// The credentials sent (`Token <jwt>` or `Bearer <jwt>`), if any;
    /// `Some("")` for ones the transport could not read.
    pub authorization: Option<&'a str>,
    pub address: IpAddr,
    /// Put on internal errors, so the logged cause can be found.
    pub request_id: &'a str,
}

impl Executor {
    pub fn new(
        app: AppState,
        schema: ConduitSchema,
        documents: PersistedDocuments,
        cache: ResponseCache,
        config: &Config,
    ) -> Self {
        invalidation::follow(&app.events, cache.clone());
        Self {
            app,
            schema,
            limits: DocumentLimits::new(config.limits, config.pagination),
            parsed: DocumentCache::default(),
            cache,
            documents,
            production: config.is_production(),
            request_timeout: config.request_timeout,
            max_batch_size: config.limits.max_batch_size,
        }
    }

    /// The instance's event bus, for transports that push.
    pub fn events(&self) -> &crate::events::EventBus {
        &self.app.events
    }

    /// How long a query may run, and a mutation may wait to start (see
    /// [`operation`]).
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// A batch of `len` operations, within `MAX_BATCH_SIZE` or refused
    /// before any is looked at.
    pub fn check_batch_size(&self, len: usize) -> Result<(), Refusal> {
        if len > self.max_batch_size {
            return Err(Refusal::Limit(AppError::QueryTooComplex {
                rule: "batchSize",
                measured: len,
                limit: self.max_batch_size,
            }));
        }
        Ok(())
    }

    /// Prepares every operation of a request; a batch is refused whole
    /// when it is too large or one of its documents is refused.
    pub async fn prepare_all(&self, batch: BatchRequest) -> Result<Operations, Refusal> {
        Ok(match batch {
            BatchRequest::Single(request) => Operations::Single(self.prepare(request).await?),
            BatchRequest::Batch(requests) => {
                self.check_batch_size(requests.len())?;
                let mut prepared = Vec::with_capacity(requests.len());
                for request in requests {
                    prepared.push(self.prepare(request).await?);
                }
                Operations::Batch(prepared)
            }
        })
    }

    /// Puts a persisted document's text on `request` (or refuses it) and
    /// parses it within the static limits.
    pub async fn prepare(&self, mut request: async_graphql::Request) -> Result<Prepared, Refusal> {
        let registration = self
            .documents
            .resolve(&mut request)
            .await
            .map_err(Refusal::PersistedQuery)?;
        let document = self
            .parsed
            .get_or_parse(&request.query, |query| self.limits.parse(query));
        Ok(Prepared {
            request,
            document,
            registration,
        })
    }

    /// Runs a request's operations for the caller: authenticates, then the
    /// shared path ([`Executor::answer`]), then the answer as the client
    /// gets it, with the operation metrics.
    pub async fn execute(&self, operations: Operations, caller: Caller<'_>) -> Executed {
        let started = std::time::Instant::now();
        let credentials = match self.authenticate(caller.authorization).await {
            Ok(credentials) => credentials,
            Err(e) => {
                return Executed {
                    codes: vec![e.code().as_str().to_owned()],
                    result: Err(e),
                    rejected: None,
                    charge: None,
                };
            }
        };
        let viewer = credentials.viewer;
        let names: Vec<String> = operations
            .as_slice()
            .iter()
            .map(|p| p.name().to_owned())
            .collect();
        let span = tracing::Span::current();
        span.record("operation", names.join(",").as_str());
        if let Some(viewer) = viewer {
            span.record("user_id", viewer.user_id.to_string().as_str());
        }
        let ticket = ticket(viewer, caller.address);
        let answer = self
            .answer(
                operations,
                viewer,
                caller.address,
                caller.request_id,
                &ticket,
            )
            .await;
        let (result, codes) = response::finish(answer, credentials.rejected, caller.request_id);
        for name in &names {
            metrics_export::record_operation(
                Some(name).filter(|n| !n.is_empty()).map(String::as_str),
                started.elapsed(),
                &codes,
            );
        }
        let charge = ticket.last_charge();
        if let Some(charge) = charge {
            span.record("cost", charge.cost);
        }
        Executed {
            result,
            codes,
            rejected: credentials.rejected,
            charge,
        }
    }

    /// Runs one operation for a caller already authenticated (a WebSocket
    /// authenticates once, when it opens): every result it produces, one
    /// for a query or mutation, one per event for a subscription. A query
    /// or mutation takes the path of [`Executor::execute`]; a subscription
    /// has its limits, rate-limit charge and error codes.
    pub async fn stream(
        &self,
        operation: Prepared,
        viewer: Option<Viewer>,
        address: IpAddr,
        request_id: &str,
    ) -> futures_util::stream::BoxStream<'static, async_graphql::Response> {
        let ticket = ticket(viewer, address);
        let request_id = request_id.to_owned();
        if operation.is_subscription() {
            let tag = move |mut response: async_graphql::Response| {
                tag_errors(std::slice::from_mut(&mut response), &request_id);
                response
            };
            let shared = Operation {
                executor: self,
                app: &self.app,
                on_replica: false,
                viewer,
                address: ClientAddress(address),
                ticket: &ticket,
            };
            return match shared.request(operation, None).await {
                Ok((request, _)) => self.schema.execute_stream(request).map(tag).boxed(),
                Err(refused) => futures_util::stream::once(async move { tag(refused) }).boxed(),
            };
        }
        let mut response = match self
            .answer(
                Operations::Single(operation),
                viewer,
                address,
                &request_id,
                &ticket,
            )
            .await
        {
            Ok(answer) => answer.into_response(),
            Err(e) => async_graphql::Response::from_errors(vec![e.into_server_error()]),
        };
        tag_errors(std::slice::from_mut(&mut response), &request_id);
        futures_util::stream::once(async move { response }).boxed()
    }

    /// The one path of a request's queries and mutations, whatever the
    /// transport: on the database the request is routed to, within the
    /// request id's scope and by its deadline, the operations run, and the
    /// route settles before anything is answered; after a mutation, the
    /// cache catches up.
    async fn answer(
        &self,
        operations: Operations,
        viewer: Option<Viewer>,
        address: IpAddr,
        request_id: &str,
        ticket: &Arc<RateLimitTicket>,
    ) -> Result<Answer, AppError> {
        let reads_only = operations.as_slice().iter().all(Prepared::is_query);
        let reader = viewer.map(|v| v.user_id);
        let route = Route::choose(&self.app.db, &self.app.reads, reads_only, reader).await;
        let routed = match route.kind() {
            RouteKind::Primary => None,
            RouteKind::Replica | RouteKind::Writes => {
                Some(self.app.with_db(route.database().clone()))
            }
        };
        let shared = Operation {
            executor: self,
            app: routed.as_ref().unwrap_or(&self.app),
            on_replica: route.kind() == RouteKind::Replica,
            viewer,
            address: ClientAddress(address),
            ticket,
        };
        let deadline = Instant::now() + self.request_timeout;
        // Boxed: the operations' future holds the schema's, which is large,
        // and each layer below (the route, the request-id scope) would move
        // it whole; `scripts/bench/instructions.sh` counts 2.6% more
        // instructions per home-page request unboxed.
        let work = Box::pin(shared.run_all(operations, deadline));
        let answer = crate::telemetry::REQUEST_ID
            .scope(
                request_id.into(),
                route.answer(&self.app.reads, reader, work),
            )
            .await;
        if !reads_only {
            invalidation::catch_up(&self.app, &self.cache).await;
        }
        answer
    }

    /// The caller, per its credentials: none is anonymous, and so are ones
    /// that do not verify, but then the client is told why. Only a database
    /// failure is an error.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Credentials, AppError> {
        let Some(value) = authorization else {
            return Ok(Credentials::anonymous(None));
        };
        let token = match credentials::access_token(value) {
            Ok(token) => token,
            Err(rejection) => return Ok(Credentials::anonymous(Some(rejection))),
        };
        Ok(match sessions::authenticate(&self.app, token).await? {
            Ok(viewer) => Credentials::of(viewer),
            Err(rejection) => Credentials::anonymous(Some(rejection)),
        })
    }
}

/// Who pays for a request's operations: its viewer, else its address.
fn ticket(viewer: Option<Viewer>, address: IpAddr) -> Arc<RateLimitTicket> {
    RateLimitTicket::new(match viewer {
        Some(viewer) => Spender::User(viewer.user_id),
        None => Spender::Address(address),
    })
}
