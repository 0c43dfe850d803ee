use std::{any::Any, time::Duration};

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

use super::HttpState;

/// The process is up.
pub async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// The process can serve: a database connection answers a query.
pub async fn readyz(State(state): State<HttpState>) -> impl IntoResponse {
    let ready = tokio::time::timeout(Duration::from_secs(2), state.app.db.is_ready())
        .await
        .unwrap_or(false);
    if ready {
        (StatusCode::OK, Json(json!({ "status": "ready" })))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "reason": "database unreachable" })),
        )
    }
}

/// Prometheus text format.
pub async fn metrics(State(state): State<HttpState>) -> impl IntoResponse {
    let db = &state.app.db;
    crate::telemetry::metrics_export::record_database(&db.state(), db.statements_executed());
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::telemetry::metrics_export::handle().render(),
    )
}

/// Past `MAX_CONCURRENT_REQUESTS`: shed at once, with a hint to retry.
pub async fn overloaded(_: tower::BoxError) -> Response {
    tracing::warn!("request shed: too many requests in flight");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(axum::http::header::RETRY_AFTER, "1")],
        Json(json!({
            "errors": [{
                "message": "the server is busy; try again in a moment",
                "extensions": { "code": "TIMEOUT" }
            }]
        })),
    )
        .into_response()
}

/// A panic becomes a generic GraphQL-shaped 500; the panic is logged.
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = detail, "handler panicked");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({
            "errors": [{
                "message": crate::error::INTERNAL_MESSAGE,
                "extensions": { "code": "INTERNAL_SERVER_ERROR" }
            }]
        })),
    )
        .into_response()
}
