//! `Viewer`: the signed-in user's own view (their user, their feed, their
//! webhook endpoints), private to them and never cached.

use async_graphql::{Context, Object};
use uuid::Uuid;

use super::{
    article::{ArticleConnection, article_connection},
    user::User,
    webhook::{WebhookEndpoint, WebhookEndpointConnection},
};
use crate::{
    error::AppError,
    graphql::{ContextExt, connection::PageArgs, loaders::UserById},
    services::{articles, webhooks},
};

/// The signed-in user's own view of the API.
pub struct Viewer {
    pub user_id: Uuid,
}

// Everything under it is the viewer's own.
#[Object(cache_control(private))]
impl Viewer {
    async fn user(&self, ctx: &Context<'_>) -> async_graphql::Result<User> {
        ctx.loaders()
            .load_one(UserById(self.user_id))
            .await?
            .map(User::own)
            .ok_or_else(|| AppError::Unauthenticated("this account no longer exists").into())
    }

    /// Articles by the people the viewer follows, newest first.
    async fn feed(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<ArticleConnection> {
        let args = PageArgs::new(&ctx.app().pagination, first, after, last, before)?;
        let page = articles::feed(ctx.app(), self.user_id, &args.request).await?;
        article_connection(ctx, &args, page).await
    }

    /// The viewer's webhook endpoints, newest first.
    async fn webhook_endpoints(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<WebhookEndpointConnection> {
        let args = PageArgs::new(&ctx.app().pagination, first, after, last, before)?;
        let page = Box::pin(webhooks::endpoints(ctx.app(), self.user_id, &args.request)).await?;
        Ok(
            args.connection(page, async_graphql::connection::EmptyFields, |row| {
                let endpoint = WebhookEndpoint(row);
                (endpoint.keyset(), endpoint)
            }),
        )
    }
}
