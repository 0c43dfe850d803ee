//! Health and metrics endpoints: `/healthz`, `/readyz`, `/metrics`.

use std::time::Duration;

use axum::{Json, extract::State, http::StatusCode, response::IntoResponse};
use serde_json::json;

use super::HttpState;

/// The process is up.
pub async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// The process can serve: a database connection answers a query.
pub async fn readyz(State(state): State<HttpState>) -> impl IntoResponse {
    if state.sockets.draining() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "reason": "shutting down" })),
        );
    }
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
