//! `/graphql`: POST for any operation, GET for queries (GraphQL over HTTP)
//! and for GraphiQL in a browser. Only transport lives here: media types,
//! decoding, status codes and headers; the pipeline is `graphql::executor`.

use async_graphql::BatchResponse;
use async_graphql_axum::{GraphQLBatchRequest, rejection::GraphQLRejection};
use axum::{
    Extension,
    extract::{ConnectInfo, RawQuery, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use std::net::{IpAddr, SocketAddr};

use super::{HttpState, request_id::RequestId};
use crate::{
    error::{AppError, ErrorCode},
    graphql::executor::{self, Caller, Executed, Operations},
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
    let batch = match batch {
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
    let executor = &state.executor;
    match executor.prepare_all(batch).await {
        Ok(operations) => {
            let caller = caller(&state, &headers, peer, &request_id);
            respond(
                executor.execute(operations, caller).await,
                &request_id,
                media,
            )
        }
        Err(e) => error_response(e, &request_id, media),
    }
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
    let request = match async_graphql::http::parse_query_string(&query) {
        Ok(request) => request,
        Err(e) => {
            return error_response(
                AppError::BadUserInput(format!("invalid GraphQL GET request: {e}")),
                &request_id,
                media,
            );
        }
    };
    let operation = match state.executor.prepare(request).await {
        Ok(operation) => operation,
        Err(e) => return error_response(e, &request_id, media),
    };
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
    let caller = caller(&state, &headers, peer, &request_id);
    let executed = state
        .executor
        .execute(Operations::Single(operation), caller)
        .await;
    respond(executed, &request_id, media)
}

fn caller<'a>(
    state: &HttpState,
    headers: &'a HeaderMap,
    peer: SocketAddr,
    request_id: &'a RequestId,
) -> Caller<'a> {
    Caller {
        // A header that is not text is credentials nobody can verify.
        authorization: headers
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap_or_default()),
        address: client_address(state.trusted_proxy_hops, headers, peer),
        request_id: &request_id.0,
    }
}

/// The HTTP answer to what the pipeline made of a request.
fn respond(executed: Executed, request_id: &RequestId, media: Media) -> Response {
    let Executed {
        result,
        codes,
        rejected,
        charge,
    } = executed;
    let mut http = match result {
        // Of a request that ran, only a retryable fault or a spent budget
        // shows in the status line; other errors sit beside their data.
        Ok(response) => {
            let code = [ErrorCode::ServiceUnavailable, ErrorCode::RateLimited]
                .into_iter()
                .find(|code| codes.iter().any(|c| c == code.as_str()));
            render_for(&response, media, code)
        }
        Err(e) => error_response(e, request_id, media),
    };
    let headers = http.headers_mut();
    if let Some(charge) = charge {
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
    if let Some(rejection) = rejected {
        let challenge = format!(
            "Bearer error=\"invalid_token\", error_description=\"{}\"",
            rejection.description()
        );
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
    }
    http
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

fn accepts_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

/// A response for an error raised before (or instead of) execution.
pub(super) fn error_response(error: AppError, request_id: &RequestId, media: Media) -> Response {
    let code = error.code();
    let mut response = BatchResponse::Single(async_graphql::Response::from_errors(vec![
        error.into_server_error(),
    ]));
    executor::tag_errors(&mut response, &request_id.0);
    render_for(&response, media, Some(code))
}

/// The status an error code gives a response, and the headers that go
/// with it; `None` leaves the status to `render`.
fn render_for(response: &BatchResponse, media: Media, code: Option<ErrorCode>) -> Response {
    let status = code.and_then(|code| match code {
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
    });
    let mut http = render(response, media, status);
    let headers = http.headers_mut();
    match code {
        Some(ErrorCode::Unauthenticated) => {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Token"));
        }
        Some(ErrorCode::ServiceUnavailable) => {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(crate::error::UNAVAILABLE_RETRY_AFTER_SECS),
            );
        }
        _ => {}
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
