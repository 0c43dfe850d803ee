//! What every service needs, built once at start-up and shared.

use std::{sync::Arc, time::Duration};

use crate::{
    auth::{jwt::JwtKeys, password::PasswordHasher},
    config::Pagination,
    db::{Database, replicas::ReadRouter},
    events::EventBus,
    rate_limit::RateLimiter,
    webhook_transport::WebhookTransport,
};

#[derive(Clone)]
pub struct AppState {
    pub db: Database,
    /// Where queries read: a replica when one fits, else `db`.
    pub reads: ReadRouter,
    pub passwords: PasswordHasher,
    pub jwt: Arc<JwtKeys>,
    pub refresh_token_ttl: Duration,
    pub pagination: Pagination,
    pub limiter: RateLimiter,
    pub events: EventBus,
    pub webhooks: WebhookTransport,
}

impl AppState {
    /// The same state on `db`: a replica, or the pool's view for one
    /// request.
    pub fn with_db(&self, db: Database) -> Self {
        Self { db, ..self.clone() }
    }
}
