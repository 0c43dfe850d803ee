//! `/graphql`: POST for any operation, GET for queries (GraphQL over HTTP)
//! and for GraphiQL in a browser. Only transport lives here: media types,
//! decoding, status codes and headers; the pipeline is `graphql::executor`.

use async_graphql_axum::{GraphQLBatchRequest, rejection::GraphQLRejection};
use axum::{
    extract::{
        RawQuery, State,
        ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection},
    },
    http::{HeaderMap, HeaderValue, header},
    response::Response,
};

use super::{
    HttpState,
    error::{Media, TransportError, error_response, render_for, transport_error},
    extract::HttpCaller,
    request_id::RequestId,
};
use crate::{
    error::ErrorCode,
    graphql::executor::{Executed, Operations},
};

pub async fn post(
    State(state): State<HttpState>,
    caller: HttpCaller,
    media: Media,
    headers: HeaderMap,
    batch: Result<GraphQLBatchRequest, GraphQLRejection>,
) -> Response {
    let request_id = &caller.request_id;
    if !is_json(&headers) {
        return transport_error(&TransportError::NotJson, request_id, media);
    }
    let batch = match batch {
        Ok(batch) => batch.into_inner(),
        // Size is `body_limit`'s business, before this runs.
        Err(rejection) => {
            let error = TransportError::NotGraphQL(rejection.0.to_string());
            return transport_error(&error, request_id, media);
        }
    };
    let executor = &state.executor;
    match executor.prepare_all(batch).await {
        Ok(operations) => respond(
            executor.execute(operations, caller.caller()).await,
            request_id,
            media,
        ),
        Err(e) => error_response(&e, request_id, media),
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
    caller: HttpCaller,
    media: Media,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    RawQuery(query): RawQuery,
) -> Response {
    if let Ok(upgrade) = upgrade {
        return super::ws::upgrade(state, caller, &headers, upgrade);
    }
    let request_id = &caller.request_id;
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
            let error = TransportError::BadQueryString(e.to_string());
            return transport_error(&error, request_id, media);
        }
    };
    let operation = match state.executor.prepare(request).await {
        Ok(operation) => operation,
        Err(e) => return error_response(&e, request_id, media),
    };
    if !operation.is_query() {
        return transport_error(&TransportError::MutationOverGet, request_id, media);
    }
    let executed = state
        .executor
        .execute(Operations::Single(operation), caller.caller())
        .await;
    respond(executed, request_id, media)
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
        Err(e) => error_response(&e, request_id, media),
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

fn accepts_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}
