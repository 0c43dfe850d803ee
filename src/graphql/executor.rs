//! The GraphQL pipeline, whatever carries the request: given documents (or
//! persisted hashes), variables, the caller's credentials and address, it
//! resolves persisted and trusted documents, authenticates, checks the
//! static limits, charges the rate limit, builds loaders, executes within
//! the timeout and gives every error a code. Transports (`http`) only
//! decode requests and encode what comes back.

use std::{net::IpAddr, sync::Arc, time::Duration};

use async_graphql::{
    BatchRequest, BatchResponse, Request, ServerError,
    parser::types::{ExecutableDocument, OperationType},
};
use futures_util::StreamExt;
use tokio::time::Instant;
use tracing::Instrument;

use super::{
    ConduitSchema,
    cache::{self, ResponseCache, Stored, invalidation, tags},
    document_cache::DocumentCache,
    limits::{self, DocumentLimits},
    loaders,
    persisted::{PersistedDocuments, PersistedQueryError, Registration},
    rate_limit::{self, ClientAddress, RateLimitTicket},
};
use crate::{
    auth::{TokenRejection, Viewer},
    config::Config,
    error::{AppError, ClientError, ErrorCode},
    rate_limit::{Charge, Spender},
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

/// What a request asks to run: one operation, or a batch.
/// Built once per request and moved, never copied: the single case stays
/// inline, as in async-graphql's own `BatchRequest`.
#[allow(clippy::large_enum_variant)]
pub enum Operations {
    Single(Prepared),
    Batch(Vec<Prepared>),
}

impl Operations {
    fn as_slice(&self) -> &[Prepared] {
        match self {
            Self::Single(operation) => std::slice::from_ref(operation),
            Self::Batch(operations) => operations.as_slice(),
        }
    }
}

/// A request with its document resolved (persisted documents) and parsed
/// within the static limits, or why not, looked up once.
pub struct Prepared {
    request: Request,
    document: Result<Arc<ExecutableDocument>, ServerError>,
    /// A text sent with its hash: kept once the operation has passed the
    /// limits and paid its rate-limit charge, which includes keeping it.
    registration: Option<Registration>,
}

impl Prepared {
    /// Whether the operation is a subscription, which streams.
    pub fn is_subscription(&self) -> bool {
        let Ok(document) = &self.document else {
            return false;
        };
        limits::operation(document, self.request.operation_name.as_deref())
            .is_some_and(|op| op.ty == OperationType::Subscription)
    }

    /// Whether the operation is a mutation, which writes.
    pub fn is_mutation(&self) -> bool {
        let Ok(document) = &self.document else {
            return false;
        };
        limits::operation(document, self.request.operation_name.as_deref())
            .is_some_and(|op| op.ty == OperationType::Mutation)
    }

    /// Whether the operation is a query, as a GET must be. A document that
    /// does not parse or pass the limits is left to the run, which says why.
    pub fn is_query(&self) -> bool {
        let Ok(document) = &self.document else {
            return true;
        };
        limits::operation(document, self.request.operation_name.as_deref())
            .is_none_or(|op| op.ty == OperationType::Query)
    }
}

/// Why a request was refused before anything ran.
#[derive(Debug)]
pub enum Refusal {
    /// A limit on the whole request (its batch size).
    Limit(AppError),
    PersistedQuery(PersistedQueryError),
}

impl ClientError for Refusal {
    fn code(&self) -> ErrorCode {
        match self {
            Self::Limit(e) => e.code(),
            Self::PersistedQuery(e) => e.code(),
        }
    }

    fn client_message(&self) -> String {
        match self {
            Self::Limit(e) => e.client_message(),
            Self::PersistedQuery(e) => e.client_message(),
        }
    }

    fn extend(&self, extensions: &mut async_graphql::ErrorExtensionValues) {
        match self {
            Self::Limit(e) => e.extend(extensions),
            Self::PersistedQuery(e) => e.extend(extensions),
        }
    }
}

/// What a request's operations answered. Made once per request and
/// moved, as [`Operations`] is.
#[allow(clippy::large_enum_variant)]
pub enum Answer {
    /// The responses, every error coded.
    Responses(BatchResponse),
    /// One operation's response, serialised, as the response cache keeps
    /// it (whether it came from the cache or was just made and kept).
    Stored(Arc<Stored>),
}

/// What one operation answered.
#[allow(clippy::large_enum_variant)]
enum Answered {
    Ran(async_graphql::Response),
    Stored(Arc<Stored>),
}

impl Answered {
    fn into_response(self) -> async_graphql::Response {
        match self {
            Self::Ran(response) => response,
            Self::Stored(stored) => stored.response(),
        }
    }
}

/// What came of a request.
pub struct Executed {
    /// What the operations answered; or why nothing ran.
    pub result: Result<Answer, AppError>,
    /// The codes of every error in `result`'s responses.
    pub codes: Vec<String>,
    /// Why the presented token named nobody; the request ran anonymously.
    pub rejected: Option<TokenRejection>,
    /// The last rate-limit charge, for the budget headers.
    pub charge: Option<Charge>,
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
    /// [`Operation::run_by`]).
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
    pub async fn prepare(&self, mut request: Request) -> Result<Prepared, Refusal> {
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
        let spender = match viewer {
            Some(viewer) => Spender::User(viewer.user_id),
            None => Spender::Address(caller.address),
        };
        let ticket = RateLimitTicket::new(spender);
        let names: Vec<String> = operations
            .as_slice()
            .iter()
            .map(|p| p.request.operation_name.clone().unwrap_or_default())
            .collect();
        let span = tracing::Span::current();
        span.record("operation", names.join(",").as_str());
        if let Some(viewer) = viewer {
            span.record("user_id", viewer.user_id.to_string().as_str());
        }

        let reads_only = operations.as_slice().iter().all(Prepared::is_query);
        let app = self.database_for(reads_only, viewer).await;
        // Writes are remembered only where reads may go to a replica.
        let writers =
            (!reads_only && self.app.reads.is_enabled()).then(|| Arc::new(Writers::default()));
        let shared = Operation {
            executor: self,
            app: app.as_ref().unwrap_or(&self.app),
            on_replica: reads_only && app.is_some(),
            writers: writers.clone(),
            viewer,
            address: ClientAddress(caller.address),
            ticket: &ticket,
        };
        let deadline = Instant::now() + self.request_timeout;
        let run = async {
            match operations {
                Operations::Single(operation) => match shared.run_by(operation, deadline).await {
                    Some(Answered::Stored(stored)) => Ok(Answer::Stored(stored)),
                    Some(Answered::Ran(response)) => {
                        Ok(Answer::Responses(BatchResponse::Single(response)))
                    }
                    None => Err(timed_out()),
                },
                // One after another, in order, as async-graphql runs a
                // batch: a mutation may build on an earlier one's write.
                Operations::Batch(operations) => {
                    let mut responses = Vec::with_capacity(operations.len());
                    let mut wrote = false;
                    for operation in operations {
                        let mutation = operation.is_mutation();
                        match shared.run_by(operation, deadline).await {
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
        };
        let run = crate::telemetry::REQUEST_ID.scope(caller.request_id.into(), async {
            let answer = run.await?;
            match &app {
                Some(app) => app.db.settle().await.map(|()| answer),
                None => Ok(answer),
            }
        });
        let (result, codes) = match run.await {
            Err(e) => {
                // Nothing ran in time, or a write the response would
                // acknowledge did not commit.
                let codes = vec![e.code().as_str().to_owned()];
                (Err(e), codes)
            }
            Ok(Answer::Stored(stored)) if credentials.rejected.is_none() => {
                (Ok(Answer::Stored(stored)), Vec::new())
            }
            Ok(answer) => {
                let mut response = match answer {
                    Answer::Responses(response) => response,
                    Answer::Stored(stored) => BatchResponse::Single(stored.response()),
                };
                tag_errors(responses_mut(&mut response), caller.request_id);
                if let Some(rejection) = credentials.rejected {
                    tell_token_rejection(&mut response, rejection);
                }
                let codes = error_codes(&response);
                (Ok(Answer::Responses(response)), codes)
            }
        };
        if let Some(writers) = writers {
            self.remember_writes(&writers, viewer).await;
        }
        if !reads_only {
            invalidation::catch_up(&self.app, &self.cache).await;
        }
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

    /// Where a request's operations run, when not on the shared state:
    /// queries on a replica that fits the viewer; anything else on the
    /// primary, and behind a transaction pooler on a view of the pool
    /// whose commits the request awaits before it answers. After a write,
    /// [`Executor::remember_writes`] sends the writer's next reads where
    /// the write can be seen.
    async fn database_for(&self, reads_only: bool, viewer: Option<Viewer>) -> Option<AppState> {
        if reads_only {
            let replica = self.app.reads.replica_for(viewer.map(|v| v.user_id)).await;
            return replica.map(|replica| self.app.with_db(replica));
        }
        self.app
            .db
            .behind_transaction_pooler()
            .then(|| self.app.with_db(self.app.db.for_request()))
    }

    /// After a request with a mutation: its writers' next reads go where
    /// the write can be seen.
    async fn remember_writes(&self, writers: &Writers, viewer: Option<Viewer>) {
        let mut writers = writers.take();
        writers.extend(viewer.map(|v| v.user_id));
        if let Err(e) = self.app.reads.wrote(&writers).await {
            tracing::warn!(error = ?e, "could not read the primary's position after a write");
        }
    }

    /// The caller, per its credentials: none is anonymous, and so are ones
    /// that do not verify, but then the client is told why. Only a database
    /// failure is an error.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Credentials, AppError> {
        let anonymous = |rejected| Credentials {
            viewer: None,
            rejected,
        };
        let Some(value) = authorization else {
            return Ok(anonymous(None));
        };
        let token = value
            .trim()
            .split_once(' ')
            .filter(|(scheme, _)| {
                scheme.eq_ignore_ascii_case("token") || scheme.eq_ignore_ascii_case("bearer")
            })
            .map(|(_, token)| token.trim())
            .filter(|token| !token.is_empty());
        let Some(token) = token else {
            tracing::debug!("credentials are neither `Token <jwt>` nor `Bearer <jwt>`");
            return Ok(anonymous(Some(TokenRejection::Invalid)));
        };
        Ok(match sessions::authenticate(&self.app, token).await? {
            Ok(viewer) => Credentials {
                viewer: Some(viewer),
                rejected: None,
            },
            Err(rejection) => anonymous(Some(rejection)),
        })
    }
}

/// Who the credentials name.
#[derive(Debug, Clone, Copy)]
pub struct Credentials {
    pub viewer: Option<Viewer>,
    /// Why presented credentials name nobody; the request is then anonymous.
    pub rejected: Option<TokenRejection>,
}

/// Who a request's mutations wrote as, besides its viewer: an account
/// that signed in or up, whose next reads carry its new token.
#[derive(Default)]
pub struct Writers(std::sync::Mutex<Vec<uuid::Uuid>>);

impl Writers {
    pub fn note(&self, user: uuid::Uuid) {
        self.0.lock().expect("writers lock").push(user);
    }

    fn take(&self) -> Vec<uuid::Uuid> {
        std::mem::take(&mut self.0.lock().expect("writers lock"))
    }
}

/// What every operation of a request shares.
struct Operation<'a> {
    executor: &'a Executor,
    /// What the operations read from and write to.
    app: &'a AppState,
    /// Whether `app` is a replica: what it answers may predate writes whose
    /// invalidations this instance already applied, so it is not kept.
    on_replica: bool,
    writers: Option<Arc<Writers>>,
    viewer: Option<Viewer>,
    address: ClientAddress,
    ticket: &'a Arc<RateLimitTicket>,
}

impl Operation<'_> {
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
                    self.keep(keep, response).await
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

    /// Takes the entity ids out of a response made to be kept, and keeps
    /// it if its hints let every viewer share it.
    async fn keep(&self, keep: Keep, mut response: async_graphql::Response) -> Answered {
        let tags = tags::collect(
            &keep.document,
            keep.operation_name.as_deref(),
            &keep.variables,
            &mut response.data,
        );
        let hints = response.cache_control;
        if !hints.public {
            self.executor.cache.remember_private(&keep.document);
        }
        let shareable = hints.public
            && hints.max_age > 0
            && response.errors.is_empty()
            && response.extensions.is_empty();
        if !shareable {
            return Answered::Ran(response);
        }
        match self
            .executor
            .cache
            .put(keep.ticket, keep.key, response, tags, keep.cost)
            .await
        {
            Ok(stored) => Answered::Stored(stored),
            Err(response) => Answered::Ran(*response),
        }
    }

    /// The static limits and the rate-limit charge (then a document sent
    /// with its hash is kept), then the request the schema runs, with what
    /// resolvers need attached: the viewer, the client's address, the
    /// rate-limit ticket and a fresh set of loaders (they cache per
    /// operation and know the viewer). A refusal is the response to send
    /// instead.
    async fn request(
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
        let may_keep = !self.on_replica
            && tags::may_keep(&request.query)
            && !executor.cache.is_private(&document);
        let keep = match key.filter(|_| may_keep) {
            Some(key) => {
                tags::augment(&mut executed);
                Some(Keep {
                    key,
                    ticket: executor.cache.ticket().await,
                    cost,
                    document: document.clone(),
                    operation_name: request.operation_name.clone(),
                    variables: request.variables.clone(),
                })
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
        if let Some(writers) = &self.writers {
            request = request.data(writers.clone());
        }
        let request = match self.viewer {
            Some(viewer) => request.data(viewer),
            None if executor.production => request.disable_introspection(),
            None => request,
        };
        Ok((request, keep))
    }
}

/// What keeping a query's response needs, taken before it runs.
struct Keep {
    key: cache::Key,
    ticket: Option<cache::Ticket>,
    cost: Option<usize>,
    /// The document as the client sent it (the one run selects more).
    document: Arc<ExecutableDocument>,
    operation_name: Option<String>,
    variables: async_graphql::Variables,
}

impl Executor {
    /// Runs one operation for a caller already authenticated (a WebSocket
    /// authenticates once, when it opens): every result it produces, one
    /// for a query or mutation, one per event for a subscription. Limits,
    /// the rate-limit charge and error codes are those of
    /// [`Executor::execute`]; a query or mutation also has its timeout.
    pub async fn stream(
        &self,
        operation: Prepared,
        viewer: Option<Viewer>,
        address: std::net::IpAddr,
        request_id: &str,
    ) -> futures_util::stream::BoxStream<'static, async_graphql::Response> {
        let spender = match viewer {
            Some(viewer) => Spender::User(viewer.user_id),
            None => Spender::Address(address),
        };
        let ticket = RateLimitTicket::new(spender);
        let subscription = operation.is_subscription();
        let query = operation.is_query();
        let app = match subscription {
            true => None,
            false => self.database_for(query, viewer).await,
        };
        let writers = (!query && !subscription && self.app.reads.is_enabled())
            .then(|| Arc::new(Writers::default()));
        let shared = Operation {
            executor: self,
            app: app.as_ref().unwrap_or(&self.app),
            on_replica: query && app.is_some(),
            writers: writers.clone(),
            viewer,
            address: ClientAddress(address),
            ticket: &ticket,
        };
        let tagged_id = request_id.to_owned();
        let request_id = request_id.to_owned();
        let tag = move |mut response: async_graphql::Response| {
            tag_errors(std::slice::from_mut(&mut response), &request_id);
            response
        };
        if subscription {
            return match shared.request(operation, None).await {
                Ok((request, _)) => self.schema.execute_stream(request).map(tag).boxed(),
                Err(refused) => futures_util::stream::once(async move { tag(refused) }).boxed(),
            };
        }
        let deadline = Instant::now() + self.request_timeout;
        let response = crate::telemetry::REQUEST_ID
            .scope(tagged_id.into(), async {
                let Some(answered) = shared.run_by(operation, deadline).await else {
                    return Err(timed_out());
                };
                match &app {
                    Some(app) => app.db.settle().await.map(|()| answered.into_response()),
                    None => Ok(answered.into_response()),
                }
            })
            .await
            .unwrap_or_else(|e| async_graphql::Response::from_errors(vec![e.into_server_error()]));
        if let Some(writers) = writers {
            self.remember_writes(&writers, viewer).await;
        }
        if !query {
            invalidation::catch_up(&self.app, &self.cache).await;
        }
        futures_util::stream::once(async move { tag(response) }).boxed()
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

/// The responses of a batch, or the one response, as a slice.
fn responses(response: &BatchResponse) -> &[async_graphql::Response] {
    match response {
        BatchResponse::Single(r) => std::slice::from_ref(r),
        BatchResponse::Batch(rs) => rs,
    }
}

fn responses_mut(response: &mut BatchResponse) -> &mut [async_graphql::Response] {
    match response {
        BatchResponse::Single(r) => std::slice::from_mut(r),
        BatchResponse::Batch(rs) => rs,
    }
}

/// Whether nothing ran: the document did not parse or validate, a variable
/// did not coerce, or a limit refused it (a request error, which transports
/// answer differently from errors beside data).
pub fn nothing_ran(response: &async_graphql::Response) -> bool {
    response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty())
}

const REQUEST_ID_KEY: &str = "requestId";

/// Every error gets a code; internal errors carry only the request id,
/// which finds the logged cause.
pub fn tag_errors(responses: &mut [async_graphql::Response], request_id: &str) {
    for error in responses.iter_mut().flat_map(|r| r.errors.iter_mut()) {
        crate::error::fill_error_code(error);
        let extensions = error.extensions.get_or_insert_with(Default::default);
        let internal = matches!(
            extensions.get("code"),
            Some(async_graphql::Value::String(code)) if code == ErrorCode::InternalServerError.as_str()
        );
        if internal && !request_id.is_empty() {
            extensions.set(REQUEST_ID_KEY, request_id);
        }
    }
}

fn error_codes(response: &BatchResponse) -> Vec<String> {
    responses(response)
        .iter()
        .flat_map(|r| r.errors.iter())
        .map(
            |e| match e.extensions.as_ref().and_then(|x| x.get("code")) {
                Some(async_graphql::Value::String(code)) => code.clone(),
                // `tag_errors` gave every error a code first.
                _ => ErrorCode::InternalServerError.as_str().to_owned(),
            },
        )
        .collect()
}

/// Key of the top-level `extensions` entry that says why the presented
/// access token was ignored.
const AUTHENTICATION_KEY: &str = "authentication";

/// Tells the client why its token was ignored, in the response's
/// top-level `extensions` rather than in `errors`: the data is good (it is
/// what an anonymous client sees), and clients such as Apollo discard data
/// that comes with errors.
fn tell_token_rejection(response: &mut BatchResponse, rejection: TokenRejection) {
    for r in responses_mut(response).iter_mut() {
        let mut entry = async_graphql::indexmap::IndexMap::new();
        entry.insert(
            async_graphql::Name::new("code"),
            async_graphql::Value::from(rejection.code()),
        );
        entry.insert(
            async_graphql::Name::new("message"),
            async_graphql::Value::from(rejection.description()),
        );
        r.extensions.insert(
            AUTHENTICATION_KEY.to_owned(),
            async_graphql::Value::Object(entry),
        );
    }
}
