use async_graphql::{Context, Object};
use uuid::Uuid;

use super::user::User;
use crate::{
    error::AppError,
    graphql::{ContextExt, loaders::UserById},
};

/// The signed-in user's own view of the API.
pub struct Viewer {
    pub user_id: Uuid,
}

#[Object]
impl Viewer {
    async fn user(&self, ctx: &Context<'_>) -> async_graphql::Result<User> {
        ctx.loaders()
            .users
            .load_one(UserById(self.user_id))
            .await?
            .map(User::own)
            .ok_or_else(|| AppError::Unauthenticated("this account no longer exists").into())
    }
}
