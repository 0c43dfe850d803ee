//! What a sign-in or a refresh gives a client to keep: tokens and their expiry.

use async_graphql::SimpleObject;
use chrono::{DateTime, Utc};

use super::viewer::Viewer;
use crate::services::sessions::SessionTokens;

/// What a client keeps after signing in or refreshing; all null when refused.
#[derive(SimpleObject, Default)]
pub struct SessionFields {
    /// Short-lived access token: send it as `Authorization: Token <token>`.
    pub token: Option<String>,
    /// Long-lived, single-use token for `refreshSession`.
    pub refresh_token: Option<String>,
    /// When `token` expires.
    pub token_expires_at: Option<DateTime<Utc>>,
    pub viewer: Option<Viewer>,
}

impl From<SessionTokens> for SessionFields {
    fn from(tokens: SessionTokens) -> Self {
        Self {
            token: Some(tokens.access_token),
            refresh_token: Some(tokens.refresh_token),
            token_expires_at: Some(tokens.access_token_expires_at),
            viewer: Some(Viewer {
                user_id: tokens.user_id,
            }),
        }
    }
}
