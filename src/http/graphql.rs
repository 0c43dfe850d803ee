//! `/graphql`: POST for any operation, GET for queries (GraphQL over HTTP)
//! and for GraphiQL in a browser. Only transport lives here: media types,
//! decoding, status codes and headers; the pipeline is `graphql::executor`.

use async_graphql::{BatchResponse, CacheControl};
use async_graphql_axum::{GraphQLBatchRequest, rejection::GraphQLRejection};
use axum::{
    body::Body,
    extract::{
        RawQuery, State,
        ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection},
    },
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use super::{
    HttpState,
    error::{Media, TransportError, error_response, render_for, transport_error},
    extract::HttpCaller,
    request_id::RequestId,
};
use crate::{
    error::ErrorCode,
    graphql::executor::{Answer, Executed, Operations},
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
        Ok(operations) => {
            let executed = executor.execute(operations, caller.caller()).await;
            let (mut http, _, for_caller) = respond(executed, request_id, media);
            http.headers_mut().extend(for_caller);
            no_store(http)
        }
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
    // A document named by its hash alone: a URL a CDN can cache.
    let by_hash = !query.split('&').any(|pair| pair.starts_with("query="));
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
    let shared = by_hash && !caller.has_credentials();
    let (http, hints, for_caller) = respond(executed, request_id, media);
    http_cache(http, hints, shared, for_caller, &headers).await
}

/// What a GET's answer may be cached for, per its hints: `public` for an
/// anonymous request by persisted hash of public data (a CDN may keep
/// it); `private, no-cache` for other successful queries (the browser
/// revalidates with the `ETag`, which a `304` answers); `no-store` for
/// anything else. Every cacheable answer has an `ETag`. Only an answer
/// that is not public carries the headers `for_caller`: a shared cache
/// would hand them to everyone.
async fn http_cache(
    mut http: Response,
    hints: Option<CacheControl>,
    shared: bool,
    for_caller: HeaderMap,
    request: &HeaderMap,
) -> Response {
    let Some(hints) = hints.filter(|_| http.status() == StatusCode::OK) else {
        http.headers_mut().extend(for_caller);
        return no_store(http);
    };
    let policy = if shared && hints.public && hints.max_age > 0 {
        format!("public, max-age={}", hints.max_age)
    } else {
        http.headers_mut().extend(for_caller);
        "private, no-cache".to_owned()
    };
    let (mut parts, body) = http.into_parts();
    let etag = match parts.headers.get(header::ETAG) {
        Some(etag) => etag.clone(),
        None => {
            let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
                return no_store(StatusCode::INTERNAL_SERVER_ERROR.into_response());
            };
            let etag = etag_of(&bytes);
            parts.headers.insert(header::ETAG, etag.clone());
            return finish(
                Response::from_parts(parts, Body::from(bytes)),
                &policy,
                &etag,
                request,
            );
        }
    };
    finish(Response::from_parts(parts, body), &policy, &etag, request)
}

fn finish(mut http: Response, policy: &str, etag: &HeaderValue, request: &HeaderMap) -> Response {
    let headers = http.headers_mut();
    if let Ok(value) = HeaderValue::from_str(policy) {
        headers.insert(header::CACHE_CONTROL, value);
    }
    // The answer differs with the credentials and the media type.
    headers.append(
        header::VARY,
        HeaderValue::from_static("Authorization, Accept"),
    );
    if !matches_etag(request, etag) {
        return http;
    }
    let mut not_modified = StatusCode::NOT_MODIFIED.into_response();
    for name in [header::CACHE_CONTROL, header::ETAG, header::VARY] {
        for value in http.headers().get_all(&name) {
            not_modified
                .headers_mut()
                .append(name.clone(), value.clone());
        }
    }
    not_modified
}

/// Whether `If-None-Match` names `etag` (or is `*`); weak tags compare by
/// their value, as RFC 9110 says for this header.
fn matches_etag(request: &HeaderMap, etag: &HeaderValue) -> bool {
    let etag = etag.as_bytes();
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim())
        .any(|tag| tag == "*" || tag.trim_start_matches("W/").as_bytes() == etag)
}

fn etag_of(body: &[u8]) -> HeaderValue {
    HeaderValue::from_str(&crate::graphql::cache::etag(body)).expect("hex is a valid header value")
}

fn no_store(mut http: Response) -> Response {
    http.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    http
}

/// The HTTP answer to what the pipeline made of a request, the cache
/// hints of a successful query's answer, and the headers for its caller
/// alone (its budget, why its token was ignored), kept apart so that a
/// public answer goes without them.
fn respond(
    executed: Executed,
    request_id: &RequestId,
    media: Media,
) -> (Response, Option<CacheControl>, HeaderMap) {
    let Executed {
        result,
        codes,
        rejected,
        charge,
    } = executed;
    let mut hints = None;
    let http = match result {
        Ok(Answer::Stored(stored)) => {
            hints = Some(stored.cache_control());
            let mut http = (
                [(header::CONTENT_TYPE, media.content_type())],
                stored.body.clone(),
            )
                .into_response();
            if let Ok(etag) = HeaderValue::from_str(&stored.etag) {
                http.headers_mut().insert(header::ETAG, etag);
            }
            http
        }
        // Of a request that ran, only a retryable fault or a spent budget
        // shows in the status line; other errors sit beside their data.
        Ok(Answer::Responses(response)) => {
            if let BatchResponse::Single(r) = &response
                && codes.is_empty()
            {
                hints = Some(r.cache_control);
            }
            let code = [ErrorCode::ServiceUnavailable, ErrorCode::RateLimited]
                .into_iter()
                .find(|code| codes.iter().any(|c| c == code.as_str()));
            render_for(&response, media, code)
        }
        Err(e) => error_response(&e, request_id, media),
    };
    let mut for_caller = HeaderMap::new();
    if let Some(charge) = charge {
        let mut set = |name: &'static str, value: String| {
            if let Ok(value) = HeaderValue::from_str(&value) {
                for_caller.insert(name, value);
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
            for_caller.insert(header::WWW_AUTHENTICATE, value);
        }
    }
    (http, hints, for_caller)
}

fn accepts_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}
