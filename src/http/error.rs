//! What the HTTP layer answers: its own transport errors, the one mapping
//! of an error code to a status and headers, and the rendering of every
//! GraphQL body (errors, and responses of requests that ran), per GraphQL
//! over HTTP. Error bodies are built nowhere else.

use std::any::Any;

use async_graphql::BatchResponse;
use axum::{
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use super::request_id::RequestId;
use crate::{
    error::{AppError, ErrorCode},
    graphql::error::{ClientError, server_error},
    graphql::executor,
};

/// A request HTTP could not carry to the pipeline. Each is
/// `BAD_USER_INPUT`, with a status of its own.
#[derive(Debug)]
pub enum TransportError {
    /// A POST body that is not `application/json` (415): a browser sends
    /// `text/plain` or form bodies cross-site without a CORS preflight,
    /// which would let any page run mutations.
    NotJson,
    /// A JSON body that is not a GraphQL request (400).
    NotGraphQL(String),
    /// A GET whose query string is not a GraphQL request (400).
    BadQueryString(String),
    /// A mutation sent with GET (405, `Allow: POST`).
    MutationOverGet,
    /// A body past the limit (413).
    TooLarge { limit: u64 },
}

impl TransportError {
    fn status(&self) -> StatusCode {
        match self {
            Self::NotJson => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::NotGraphQL(_) | Self::BadQueryString(_) => StatusCode::BAD_REQUEST,
            Self::MutationOverGet => StatusCode::METHOD_NOT_ALLOWED,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }
}

impl ClientError for TransportError {
    fn code(&self) -> ErrorCode {
        ErrorCode::BadUserInput
    }

    fn client_message(&self) -> String {
        match self {
            Self::NotJson => "send the request as `Content-Type: application/json`".to_owned(),
            Self::NotGraphQL(why) => format!("the request body is not a GraphQL request: {why}"),
            Self::BadQueryString(why) => format!("invalid GraphQL GET request: {why}"),
            Self::MutationOverGet => "only queries may be sent with GET; use POST".to_owned(),
            Self::TooLarge { limit } => {
                format!("the request body is too large: the limit is {limit} bytes")
            }
        }
    }
}

/// A transport error's response.
pub fn transport_error(error: &TransportError, request_id: &RequestId, media: Media) -> Response {
    let mut response = error_response(error, request_id, media);
    *response.status_mut() = error.status();
    if let TransportError::MutationOverGet = error {
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
    }
    response
}

/// A response for an error raised before (or instead of) execution.
pub fn error_response(error: &dyn ClientError, request_id: &RequestId, media: Media) -> Response {
    let code = error.code();
    let mut response = async_graphql::Response::from_errors(vec![server_error(error)]);
    executor::tag_errors(std::slice::from_mut(&mut response), &request_id.0);
    render_for(&BatchResponse::Single(response), media, Some(code))
}

/// Past `MAX_CONCURRENT_REQUESTS`: shed at once, with a hint to retry.
pub async fn overloaded(_: tower::BoxError) -> Response {
    tracing::warn!("request shed: too many requests in flight");
    let error = AppError::Timeout("the server is busy; try again in a moment");
    error_response(&error, &RequestId(String::new()), Media::Json)
}

/// A panic becomes a generic GraphQL-shaped 500; the panic is logged.
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = detail, "handler panicked");
    let error = AppError::Internal(anyhow::anyhow!("handler panicked"));
    error_response(&error, &RequestId(String::new()), Media::Json)
}

/// The status an error code gives a response, and the headers that go
/// with it; `None` leaves the status to `render`.
pub fn render_for(response: &BatchResponse, media: Media, code: Option<ErrorCode>) -> Response {
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
        // A fault of this instance or the database: retrying soon is safe.
        Some(ErrorCode::ServiceUnavailable | ErrorCode::Timeout) => {
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
    pub fn negotiate(headers: &HeaderMap) -> Self {
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

    pub(super) fn content_type(self) -> &'static str {
        match self {
            Self::GraphQLResponseJson => "application/graphql-response+json; charset=utf-8",
            Self::Json => "application/json; charset=utf-8",
        }
    }
}

/// Serialises a response for `media`, with `status` or the one GraphQL
/// over HTTP prescribes.
fn render(response: &BatchResponse, media: Media, status: Option<StatusCode>) -> Response {
    let mut status = status.unwrap_or(StatusCode::OK);
    let request_error = media == Media::GraphQLResponseJson
        && matches!(response, BatchResponse::Single(r) if executor::nothing_ran(r));
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
