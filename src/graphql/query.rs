use async_graphql::{Context, Object};

use super::{
    ContextExt,
    types::{user::User, viewer::Viewer},
};
use crate::services::accounts;

pub struct QueryRoot;

#[Object]
impl QueryRoot {
    /// The signed-in user's view, or null for an anonymous request.
    async fn viewer(&self, ctx: &Context<'_>) -> Option<Viewer> {
        ctx.viewer().map(|v| Viewer { user_id: v.user_id })
    }

    /// A profile by username (any letter case).
    async fn user(
        &self,
        ctx: &Context<'_>,
        username: String,
    ) -> async_graphql::Result<Option<User>> {
        Ok(accounts::find_by_username(ctx.app(), &username)
            .await?
            .map(User::public))
    }
}
