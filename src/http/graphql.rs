//! `/graphql`: POST for any operation, GET for queries (GraphQL over HTTP)
//! and for GraphiQL in a browser.

use async_graphql::{
    BatchRequest, BatchResponse, Request, ServerError,
    parser::types::{ExecutableDocument, OperationType},
};
use async_graphql_axum::{GraphQLBatchRequest, rejection::GraphQLRejection};
use axum::{
    Extension,
    extract::{ConnectInfo, RawQuery, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use futures_util::{StreamExt, stream::FuturesOrdered};
use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Instant,
};

use tracing::Instrument;

use super::{HttpState, request_id::RequestId};
use crate::{
    auth::{TokenRejection, Viewer},
    error::{AppError, ErrorCode},
    graphql::{
        limits, loaders,
        rate_limit::{self, ClientAddress, RateLimitTicket},
    },
    rate_limit::Spender,
    services::sessions,
    telemetry::metrics_export,
};

pub async fn post(
    State(state): State<HttpState>,
    Extension(request_id): Extension<RequestId>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    batch: Result<GraphQLBatchRequest, GraphQLRejection>,
) -> Response {
    let media = Media::negotiate(&headers);
    // Only JSON: a browser sends `text/plain` or form bodies cross-site
    // without a CORS preflight, which would let any page run mutations.
    if !is_json(&headers) {
        let mut response = error_response(
            AppError::BadUserInput("send the request as `Content-Type: application/json`".into()),
            &request_id,
            media,
        );
        *response.status_mut() = StatusCode::UNSUPPORTED_MEDIA_TYPE;
        return response;
    }
    let mut batch = match batch {
        Ok(batch) => batch.into_inner(),
        // Size is `body_limit`'s business, before this runs.
        Err(rejection) => {
            return error_response(
                AppError::BadUserInput(format!(
                    "the request body is not a GraphQL request: {}",
                    rejection.0
                )),
                &request_id,
                media,
            );
        }
    };
    if let BatchRequest::Batch(requests) = &batch
        && requests.len() > state.max_batch_size
    {
        return error_response(
            AppError::QueryTooComplex {
                rule: "batchSize",
                measured: requests.len(),
                limit: state.max_batch_size,
            },
            &request_id,
            media,
        );
    }
    let requests: Vec<&mut Request> = match &mut batch {
        BatchRequest::Single(request) => vec![request],
        BatchRequest::Batch(requests) => requests.iter_mut().collect(),
    };
    // A batch is refused whole when one of its documents is.
    for request in requests {
        if let Err(e) = state.documents.resolve(request).await {
            return error_response(e, &request_id, media);
        }
    }
    let operations = match batch {
        BatchRequest::Single(request) => Operations::Single(Prepared::new(&state, request)),
        BatchRequest::Batch(requests) => Operations::Batch(
            requests
                .into_iter()
                .map(|request| Prepared::new(&state, request))
                .collect(),
        ),
    };
    execute(&state, &request_id, peer, &headers, media, operations).await
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

pub async fn get(
    State(state): State<HttpState>,
    Extension(request_id): Extension<RequestId>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let media = Media::negotiate(&headers);
    let query = query.unwrap_or_default();
    let has_document = query.split('&').any(|pair| {
        ["query=", "extensions="]
            .iter()
            .any(|key| pair.starts_with(key))
    });
    if !has_document && state.graphiql && accepts_html(&headers) {
        return super::graphiql::page();
    }
    let mut request = match async_graphql::http::parse_query_string(&query) {
        Ok(request) => request,
        Err(e) => {
            return error_response(
                AppError::BadUserInput(format!("invalid GraphQL GET request: {e}")),
                &request_id,
                media,
            );
        }
    };
    if let Err(e) = state.documents.resolve(&mut request).await {
        return error_response(e, &request_id, media);
    }
    let operation = Prepared::new(&state, request);
    if !operation.is_query() {
        let mut response = error_response(
            AppError::BadUserInput("only queries may be sent with GET; use POST".into()),
            &request_id,
            media,
        );
        *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    let operations = Operations::Single(operation);
    execute(&state, &request_id, peer, &headers, media, operations).await
}

async fn execute(
    state: &HttpState,
    request_id: &RequestId,
    peer: SocketAddr,
    headers: &HeaderMap,
    media: Media,
    operations: Operations,
) -> Response {
    let started = Instant::now();
    let credentials = match credentials(state, headers).await {
        Ok(credentials) => credentials,
        Err(e) => return error_response(e, request_id, media),
    };
    let viewer = credentials.viewer;
    let address = client_address(state.trusted_proxy_hops, headers, peer);
    let spender = match viewer {
        Some(viewer) => Spender::User(viewer.user_id),
        None => Spender::Address(address),
    };
    let ticket = RateLimitTicket::new(spender);
    let names: Vec<String> = match &operations {
        Operations::Single(operation) => std::slice::from_ref(operation),
        Operations::Batch(operations) => operations.as_slice(),
    }
    .iter()
    .map(|p| p.request.operation_name.clone().unwrap_or_default())
    .collect();
    let span = tracing::Span::current();
    span.record("operation", names.join(",").as_str());
    if let Some(viewer) = viewer {
        span.record("user_id", viewer.user_id.to_string().as_str());
    }

    let operations_context = Operation {
        state,
        viewer,
        address: ClientAddress(address),
        ticket: &ticket,
        span: span.clone(),
    };
    let run = async {
        match operations {
            Operations::Single(operation) => {
                BatchResponse::Single(operations_context.run(operation).await)
            }
            Operations::Batch(operations) => BatchResponse::Batch(
                operations
                    .into_iter()
                    .map(|operation| operations_context.run(operation))
                    .collect::<FuturesOrdered<_>>()
                    .collect()
                    .await,
            ),
        }
    };
    let mut http = match tokio::time::timeout(state.request_timeout, run).await {
        Ok(mut response) => {
            tag_errors(&mut response, request_id);
            if let Some(rejection) = credentials.rejected {
                tell_token_rejection(&mut response, rejection);
            }
            let codes = error_codes(&response);
            for name in &names {
                metrics_export::record_operation(
                    Some(name).filter(|n| !n.is_empty()).map(String::as_str),
                    started.elapsed(),
                    &codes,
                );
            }
            let has = |code: ErrorCode| codes.iter().any(|c| c == code.as_str());
            let status = if has(ErrorCode::ServiceUnavailable) {
                Some(StatusCode::SERVICE_UNAVAILABLE)
            } else if has(ErrorCode::RateLimited) {
                Some(StatusCode::TOO_MANY_REQUESTS)
            } else {
                None
            };
            let mut http = render(&response, media, status);
            if status == Some(StatusCode::SERVICE_UNAVAILABLE) {
                set_retry_after(&mut http, crate::error::UNAVAILABLE_RETRY_AFTER_SECS);
            }
            http
        }
        Err(_) => error_response(
            AppError::Timeout("the request took too long and was cancelled"),
            request_id,
            media,
        ),
    };
    if let Some(charge) = ticket.last_charge() {
        span.record("cost", charge.cost);
        let headers = http.headers_mut();
        let mut set = |name: &'static str, value: String| {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        };
        set("x-ratelimit-limit", charge.limit.to_string());
        set("x-ratelimit-remaining", charge.remaining().to_string());
        set("x-ratelimit-reset", charge.reset_at.timestamp().to_string());
        if charge.exceeded() {
            set(
                "retry-after",
                crate::error::retry_after_secs(charge.reset_at).to_string(),
            );
        }
    }
    if let Some(rejection) = credentials.rejected {
        let challenge = format!(
            "Bearer error=\"invalid_token\", error_description=\"{}\"",
            rejection.description()
        );
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            http.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
    }
    http
}

fn set_retry_after(response: &mut Response, seconds: u64) {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
}

/// Key of the top-level `extensions` entry that says why the presented
/// access token was ignored.
const AUTHENTICATION_KEY: &str = "authentication";

/// Tells the client why its token was ignored, in the response's
/// top-level `extensions` rather than in `errors`: the data is good (it is
/// what an anonymous client sees), and clients such as Apollo discard data
/// that comes with errors.
fn tell_token_rejection(response: &mut BatchResponse, rejection: TokenRejection) {
    let responses: Vec<&mut async_graphql::Response> = match response {
        BatchResponse::Single(r) => vec![r],
        BatchResponse::Batch(rs) => rs.iter_mut().collect(),
    };
    for r in responses {
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

/// The client's address: the connection's, unless proxies are trusted, in
/// which case the entry `hops` from the end of `X-Forwarded-For` (the one
/// the outermost trusted proxy saw).
fn client_address(hops: usize, headers: &HeaderMap, peer: SocketAddr) -> IpAddr {
    if hops == 0 {
        return peer.ip();
    }
    let chain: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    chain
        .len()
        .checked_sub(hops)
        .and_then(|i| chain[i].parse().ok())
        .unwrap_or_else(|| peer.ip())
}

fn error_codes(response: &BatchResponse) -> Vec<String> {
    let responses: Vec<&async_graphql::Response> = match response {
        BatchResponse::Single(r) => vec![r],
        BatchResponse::Batch(rs) => rs.iter().collect(),
    };
    responses
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

/// What every operation of a request shares.
struct Operation<'a> {
    state: &'a HttpState,
    viewer: Option<Viewer>,
    address: ClientAddress,
    ticket: &'a Arc<RateLimitTicket>,
    span: tracing::Span,
}

impl Operation<'_> {
    /// Runs one operation: the static limits, the rate-limit charge, then
    /// the schema, with what resolvers need attached: the viewer, the
    /// client's address, the rate-limit ticket and a fresh set of loaders
    /// (they cache per operation and know the viewer).
    async fn run(&self, operation: Prepared) -> async_graphql::Response {
        let refuse = |e: ServerError| async_graphql::Response::from_errors(vec![e]);
        let limits = &self.state.limits;
        let Prepared {
            mut request,
            document,
        } = operation;
        let document = match document {
            Ok(document) => document,
            Err(e) => return refuse(e),
        };
        let measure = match limits.measure(
            &document,
            request.operation_name.as_deref(),
            &request.variables,
        ) {
            Ok(measure) => measure,
            Err(e) => return refuse(e),
        };
        let span = self.span.clone();
        let loaders = loaders::for_request(&self.state.app, self.viewer, move |batch| {
            tokio::spawn(batch.instrument(span.clone()))
        });
        if let Some(measure) = measure {
            if measure.mutation {
                // Mutations run in turn and change what later ones read:
                // no answer is cached across them.
                loaders.enable_all_cache(false);
            }
            if let Err(e) = rate_limit::charge(&self.state.app, self.ticket, measure.cost).await {
                return refuse(e);
            }
        }
        request.set_parsed_query(ExecutableDocument::clone(&document));
        request = request
            .data(self.address)
            .data(self.ticket.clone())
            .data(loaders);
        request = match self.viewer {
            Some(viewer) => request.data(viewer),
            // Production hides the schema from anonymous clients.
            None if self.state.production => request.disable_introspection(),
            None => request,
        };
        self.state.schema.execute(request).await
    }
}

/// Who the `Authorization` header names.
struct Credentials {
    viewer: Option<Viewer>,
    /// Why a presented token names nobody; the request is then anonymous.
    rejected: Option<TokenRejection>,
}

/// The caller, per the `Authorization` header: no header is anonymous, and
/// so is a header that does not verify, but then the client is told why.
/// Only a database failure is an error.
async fn credentials(state: &HttpState, headers: &HeaderMap) -> Result<Credentials, AppError> {
    let anonymous = |rejected| Credentials {
        viewer: None,
        rejected,
    };
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(anonymous(None));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|value| value.trim().split_once(' '))
        .filter(|(scheme, _)| {
            scheme.eq_ignore_ascii_case("token") || scheme.eq_ignore_ascii_case("bearer")
        })
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty());
    let Some(token) = token else {
        tracing::debug!("Authorization is neither `Token <jwt>` nor `Bearer <jwt>`");
        return Ok(anonymous(Some(TokenRejection::Invalid)));
    };
    Ok(match sessions::authenticate(&state.app, token).await? {
        Ok(viewer) => Credentials {
            viewer: Some(viewer),
            rejected: None,
        },
        Err(rejection) => anonymous(Some(rejection)),
    })
}

fn accepts_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

/// What a request asks to run: one operation, or a JSON-array batch.
/// Built once per request and moved, never copied: the single case stays
/// inline, as in async-graphql's own `BatchRequest`.
#[allow(clippy::large_enum_variant)]
enum Operations {
    Single(Prepared),
    Batch(Vec<Prepared>),
}

/// A request and its document, parsed and within the static limits (or
/// why not), looked up once.
struct Prepared {
    request: Request,
    document: Result<Arc<ExecutableDocument>, ServerError>,
}

impl Prepared {
    fn new(state: &HttpState, request: Request) -> Self {
        let document = state.limits.document(&request.query);
        Self { request, document }
    }

    /// Whether the operation is a query, as a GET must be. A document that
    /// does not parse or pass the limits is left to `run`, which reports why.
    fn is_query(&self) -> bool {
        let Ok(document) = &self.document else {
            return true;
        };
        limits::operation(document, self.request.operation_name.as_deref())
            .is_none_or(|op| op.ty == OperationType::Query)
    }
}

const REQUEST_ID_KEY: &str = "requestId";

/// Every error gets a code; internal errors carry only the request id,
/// which finds the logged cause.
fn tag_errors(response: &mut BatchResponse, request_id: &RequestId) {
    let responses: Vec<&mut async_graphql::Response> = match response {
        BatchResponse::Single(r) => vec![r],
        BatchResponse::Batch(rs) => rs.iter_mut().collect(),
    };
    for error in responses.into_iter().flat_map(|r| r.errors.iter_mut()) {
        crate::error::fill_error_code(error);
        let extensions = error.extensions.get_or_insert_with(Default::default);
        let internal = matches!(
            extensions.get("code"),
            Some(async_graphql::Value::String(code)) if code == ErrorCode::InternalServerError.as_str()
        );
        if internal {
            extensions.set(REQUEST_ID_KEY, request_id.0.as_str());
        }
    }
}

/// A response for an error raised before (or instead of) execution.
pub(super) fn error_response(error: AppError, request_id: &RequestId, media: Media) -> Response {
    let code = error.code();
    let status = match code {
        ErrorCode::Unauthenticated => Some(StatusCode::UNAUTHORIZED),
        ErrorCode::Forbidden => Some(StatusCode::FORBIDDEN),
        ErrorCode::NotFound => Some(StatusCode::NOT_FOUND),
        ErrorCode::BadUserInput => Some(StatusCode::BAD_REQUEST),
        ErrorCode::Timeout | ErrorCode::ServiceUnavailable => Some(StatusCode::SERVICE_UNAVAILABLE),
        ErrorCode::GraphQLParseFailed | ErrorCode::GraphQLValidationFailed => None,
        ErrorCode::QueryTooComplex => Some(StatusCode::BAD_REQUEST),
        ErrorCode::RateLimited => Some(StatusCode::TOO_MANY_REQUESTS),
        // Plain request errors: `render` answers them as GraphQL over HTTP
        // says for the media type (200 under `application/json`, which
        // Apollo's persisted-query link expects; 400 under the new one).
        ErrorCode::PersistedQueryNotFound
        | ErrorCode::PersistedQueryNotSupported
        | ErrorCode::PersistedQueryNotTrusted => None,
        ErrorCode::InternalServerError => Some(StatusCode::INTERNAL_SERVER_ERROR),
    };
    let mut response = BatchResponse::Single(async_graphql::Response::from_errors(vec![
        error.into_server_error(),
    ]));
    tag_errors(&mut response, request_id);
    let mut http = render(&response, media, status);
    if status == Some(StatusCode::UNAUTHORIZED) {
        http.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Token"));
    }
    if code == ErrorCode::ServiceUnavailable {
        set_retry_after(&mut http, crate::error::UNAVAILABLE_RETRY_AFTER_SECS);
    }
    http
}

const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";

/// The response media type, per GraphQL over HTTP: clients that accept
/// `application/graphql-response+json` get it, with status codes that
/// tell request errors apart; everyone else gets `application/json`, where
/// a well-formed request is always answered 200.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Media {
    GraphQLResponseJson,
    Json,
}

impl Media {
    pub(super) fn negotiate(headers: &HeaderMap) -> Self {
        let accepts_graphql_response = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|item| {
                let mut parts = item.split(';').map(str::trim);
                let mime = parts.next().unwrap_or_default();
                let refused = parts.any(|p| p.replace(' ', "") == "q=0");
                mime.eq_ignore_ascii_case(GRAPHQL_RESPONSE_JSON) && !refused
            });
        if accepts_graphql_response {
            Self::GraphQLResponseJson
        } else {
            Self::Json
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::GraphQLResponseJson => "application/graphql-response+json; charset=utf-8",
            Self::Json => "application/json; charset=utf-8",
        }
    }
}

/// A request error: nothing executed (the document did not parse or
/// validate, a variable did not coerce, or a limit refused it).
fn is_request_error(response: &BatchResponse) -> bool {
    match response {
        BatchResponse::Single(r) => {
            r.data == async_graphql::Value::Null
                && !r.errors.is_empty()
                && r.errors.iter().all(|e| e.path.is_empty())
        }
        BatchResponse::Batch(_) => false,
    }
}

/// Serialises a response for `media`, with `status` or the one GraphQL
/// over HTTP prescribes.
fn render(response: &BatchResponse, media: Media, status: Option<StatusCode>) -> Response {
    let mut status = status.unwrap_or(StatusCode::OK);
    let request_error = media == Media::GraphQLResponseJson && is_request_error(response);
    if request_error && status == StatusCode::OK {
        status = StatusCode::BAD_REQUEST;
    }
    // A request error has no `data` entry at all under the new media type.
    // Sized for a page of results up front, rather than grown by doubling.
    let mut body = Vec::with_capacity(16 * 1024);
    let written = match response {
        BatchResponse::Single(r) if request_error => {
            serde_json::to_writer(&mut body, &serde_json::json!({ "errors": r.errors }))
        }
        _ => serde_json::to_writer(&mut body, response),
    };
    let body = written.map(|()| body);
    let body = body.unwrap_or_else(|e| {
        tracing::error!(error = %e, "failed to serialise a response");
        serde_json::json!({ "errors": [{ "message": crate::error::INTERNAL_MESSAGE }] })
            .to_string()
            .into_bytes()
    });
    (status, [(header::CONTENT_TYPE, media.content_type())], body).into_response()
}
