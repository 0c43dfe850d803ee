//! Axum routes and middleware.

mod body_limit;
mod error;
mod extract;
mod graphiql;
mod graphql;
mod health;
pub mod request_id;
mod security;
pub mod ws;

use axum::{Router, error_handling::HandleErrorLayer, middleware, routing::get};
use tower::{ServiceBuilder, limit::GlobalConcurrencyLimitLayer};
use tower_http::catch_panic::CatchPanicLayer;

use crate::{config::Config, graphql::executor::Executor, state::AppState};

#[derive(Clone)]
pub struct HttpState {
    pub app: AppState,
    pub executor: std::sync::Arc<Executor>,
    pub sockets: std::sync::Arc<ws::Sockets>,
    pub graphiql: bool,
    pub trusted_proxy_hops: usize,
}

/// The routes. `sockets` is shared with the server, which waits for them
/// to close when it shuts down.
pub fn router(
    app: AppState,
    executor: Executor,
    sockets: std::sync::Arc<ws::Sockets>,
    config: &Config,
) -> Router {
    let state = HttpState {
        app,
        executor: std::sync::Arc::new(executor),
        sockets,
        graphiql: config.graphiql(),
        trusted_proxy_hops: config.trusted_proxy_hops,
    };
    let production = config.is_production();
    let mut routes = Router::new().route("/graphql", get(graphql::get).post(graphql::post));
    if config.graphiql() {
        routes = routes.route("/graphiql/{file}", get(graphiql::asset));
    }
    routes
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .with_state(state)
        .layer(middleware::from_fn_with_state(
            body_limit::BodyLimit::new(config.max_body_bytes),
            body_limit::limit,
        ))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(error::overloaded))
                .load_shed()
                // Global: `Router::layer` applies per route, and a plain
                // concurrency limit would count each route on its own.
                .layer(GlobalConcurrencyLimitLayer::new(
                    config.max_concurrent_requests,
                )),
        )
        .layer(security::cors(&config.cors_allowed_origins()))
        .layer(middleware::from_fn(move |req, next| {
            security::headers(production, req, next)
        }))
        .layer(CatchPanicLayer::custom(error::panic_response))
        .layer(middleware::from_fn(request_id::request_id))
}
