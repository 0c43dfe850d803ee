//! A request id on every response and every log line of the request.

use std::time::Instant;

use axum::{
    extract::Request,
    http::{HeaderName, HeaderValue},
    middleware::Next,
    response::Response,
};
use tracing::Instrument;

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the current request, in request extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// An incoming id is kept when it is short and plain; anything else is
/// replaced, so ids are safe to log and to echo.
fn is_acceptable(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

pub async fn request_id(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_acceptable(v))
        .map(String::from)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let header = HeaderValue::from_str(&id).expect("request ids are plain ASCII");
    req.headers_mut().insert(&X_REQUEST_ID, header.clone());
    req.extensions_mut().insert(RequestId(id.clone()));

    // The GraphQL handler fills in the operation, the user and the cost.
    let span = tracing::info_span!(
        "request",
        otel.name = %format_args!("{} {}", req.method(), req.uri().path()),
        otel.kind = "server",
        request_id = %id,
        method = %req.method(),
        path = %req.uri().path(),
        operation = tracing::field::Empty,
        user_id = tracing::field::Empty,
        cost = tracing::field::Empty,
    );
    crate::telemetry::traces::continue_trace(&span, req.headers());
    let started = Instant::now();
    let mut response = next.run(req).instrument(span.clone()).await;
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            duration_ms = started.elapsed().as_secs_f64() * 1000.0,
            "request finished"
        );
    });
    response.headers_mut().insert(&X_REQUEST_ID, header);
    response
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_plain_ids_are_kept() {
        assert!(super::is_acceptable("0192f7a0-4c1e-7d2a-9a5b-1f2e3d4c5b6a"));
        assert!(super::is_acceptable("trace:abc.def_1"));
        assert!(!super::is_acceptable(""));
        assert!(!super::is_acceptable("has space"));
        assert!(!super::is_acceptable("line\nbreak"));
        assert!(!super::is_acceptable(&"a".repeat(129)));
    }
}
