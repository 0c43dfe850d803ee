//! Field and mutation guards: who may call what.

use async_graphql::{Context, Guard};

use super::ContextExt;
use crate::error::AppError;

/// Admits only requests with a signed-in viewer; others get `UNAUTHENTICATED`.
pub struct SignedIn;

impl Guard for SignedIn {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        match ctx.viewer() {
            Some(_) => Ok(()),
            None => Err(AppError::Unauthenticated("sign in to do this").into()),
        }
    }
}
