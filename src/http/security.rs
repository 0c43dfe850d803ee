//! CORS and the security headers every response carries.

use std::time::Duration;

use axum::{
    extract::Request,
    http::{HeaderName, HeaderValue, Method, header},
    middleware::Next,
    response::Response,
};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::request_id::X_REQUEST_ID;
use crate::config::CorsOrigins;

/// Browsers may call the API from the configured origins. Tokens travel in
/// the `Authorization` header, never in cookies, so no credentials mode.
pub fn cors(origins: &CorsOrigins) -> CorsLayer {
    let allow_origin = match origins {
        CorsOrigins::Any => AllowOrigin::any(),
        CorsOrigins::List(list) => AllowOrigin::list(
            list.iter()
                .filter_map(|origin| HeaderValue::from_str(origin).ok()),
        ),
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION, X_REQUEST_ID])
        // What a frontend on another origin acts on: why its token was
        // ignored, when to retry, what is left of its budget.
        .expose_headers([
            X_REQUEST_ID,
            header::WWW_AUTHENTICATE,
            header::RETRY_AFTER,
            HeaderName::from_static("x-ratelimit-limit"),
            HeaderName::from_static("x-ratelimit-remaining"),
            HeaderName::from_static("x-ratelimit-reset"),
        ])
        .max_age(Duration::from_secs(3600))
}

/// Whether a browser page at `origin` may open a WebSocket here. Browsers
/// do not apply CORS to WebSockets, so the upgrade checks the `Origin`
/// header itself against the same list: a page on another origin must be
/// one `CORS_ALLOWED_ORIGINS` allows. Clients that are not browsers send no
/// `Origin` and are not concerned; the server's own pages (GraphiQL) are
/// same-origin.
pub fn may_open_socket(origins: &CorsOrigins, origin: Option<&str>, host: Option<&str>) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    let same_origin = host.is_some_and(|host| {
        origin
            .split_once("://")
            .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host))
    });
    same_origin
        || match origins {
            CorsOrigins::Any => true,
            CorsOrigins::List(list) => list
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(origin)),
        }
}

/// Responses may not be framed, sniffed or run as a page: API responses
/// get a content policy that allows nothing; GraphiQL's files bring their
/// own (scripts and styles from this origin only).
pub async fn headers(production: bool, req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(
            "default-src 'none'; frame-ancestors 'none'",
        ));
    let mut set = |name: HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::X_FRAME_OPTIONS, "DENY");
    set(header::REFERRER_POLICY, "no-referrer");
    if production {
        set(
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=31536000; includeSubDomains",
        );
    }
    response
}
