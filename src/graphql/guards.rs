use async_graphql::{Context, Guard};

use super::ContextExt;

/// Admits only requests with a signed-in viewer; others get `UNAUTHENTICATED`.
pub struct SignedIn;

impl Guard for SignedIn {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        ctx.require_viewer().map(drop)
    }
}
