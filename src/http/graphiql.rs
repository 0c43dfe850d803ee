//! GraphiQL for browsers at `GET /graphql`, from files embedded in the
//! binary (`assets/graphiql/`, vendored from pinned npm packages; see its
//! `SOURCES.md`). Nothing comes from a CDN, so the page works offline and
//! under a Content-Security-Policy that allows only this server.

use axum::{
    extract::Path,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

/// Scripts, styles and requests from this origin only; nothing inline.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self' data:; font-src 'self' data:; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        Asset {
            name: $name,
            content_type: $content_type,
            body: include_bytes!(concat!("../../assets/graphiql/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

const PAGE: Asset = asset!("index.html", "text/html; charset=utf-8");

const ASSETS: &[Asset] = &[
    asset!("graphiql.min.js", JS),
    asset!("graphiql.min.css", CSS),
    asset!("react.production.min.js", JS),
    asset!("react-dom.production.min.js", JS),
    asset!("graphql-ws.min.js", JS),
    asset!("init.js", JS),
    asset!("page.css", CSS),
    asset!("LICENSE.graphiql", TEXT),
    asset!("LICENSE.react", TEXT),
    asset!("LICENSE.react-dom", TEXT),
    asset!("LICENSE.graphql-ws", TEXT),
];

fn respond(asset: &Asset, cache_control: &'static str) -> Response {
    let mut response = (
        [
            (header::CONTENT_TYPE, asset.content_type),
            (header::CACHE_CONTROL, cache_control),
        ],
        asset.body,
    )
        .into_response();
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    response
}

/// The page itself: never cached, so a new release's assets are picked up.
pub fn page() -> Response {
    respond(&PAGE, "no-cache")
}

/// `GET /graphiql/{file}`.
pub async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(asset) => respond(asset, "public, max-age=3600"),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, TEXT)],
            "not found",
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_embedded_files() {
        let page = std::str::from_utf8(PAGE.body).unwrap();
        let referenced: Vec<&str> = page
            .split(['"', '\''])
            .filter_map(|part| part.strip_prefix("/graphiql/"))
            .collect();
        assert_eq!(referenced.len(), 7, "{referenced:?}");
        for name in referenced {
            assert!(
                ASSETS.iter().any(|a| a.name == name),
                "{name} is not embedded"
            );
        }
        assert!(!page.contains("<script>") && !page.contains("<style"));
        assert!(!page.contains("http://") && !page.contains("https://"));
        for asset in ASSETS {
            let expected = match asset.name.rsplit('.').next() {
                Some("js") => JS,
                Some("css") => CSS,
                _ => TEXT,
            };
            assert_eq!(asset.content_type, expected, "{}", asset.name);
        }
    }
}
