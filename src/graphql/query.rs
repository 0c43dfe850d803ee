//! The query root: the viewer, a profile, articles and an article, tags, the
//! caller's rate limit, and `node`/`nodes`.

use async_graphql::{Context, ID, Object};

use super::{
    ContextExt,
    connection::PageArgs,
    types::{
        article::{Article, ArticleConnection, article_connection},
        node::{self, Node},
        user::User,
        viewer::Viewer,
    },
};
use crate::{
    config::schema_lists::{MAX_NODES, MAX_TAGS},
    error::AppError,
    services::{
        accounts,
        articles::{self, ArticleQuery},
    },
};

pub struct QueryRoot;

#[Object(name = "Query")]
impl QueryRoot {
    /// The signed-in user's view, or null for an anonymous request.
    #[graphql(cache_control(private))]
    async fn viewer(&self, ctx: &Context<'_>) -> Option<Viewer> {
        ctx.viewer().map(|v| Viewer { user_id: v.user_id })
    }

    /// A profile by username (any letter case).
    #[graphql(cache_control(max_age = 60))]
    async fn user(
        &self,
        ctx: &Context<'_>,
        username: String,
    ) -> async_graphql::Result<Option<User>> {
        Ok(accounts::find_by_username(ctx.app(), &username)
            .await?
            .map(User::public))
    }

    /// Live articles, newest first. Filters combine: `tag` (any letter
    /// case), `author` and `favoritedBy` (usernames).
    #[allow(clippy::too_many_arguments)]
    #[graphql(cache_control(max_age = 60))]
    async fn articles(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        tag: Option<String>,
        author: Option<String>,
        favorited_by: Option<String>,
    ) -> async_graphql::Result<ArticleConnection> {
        let args = PageArgs::new(&ctx.app().pagination, first, after, last, before)?;
        let query = ArticleQuery {
            tag,
            author,
            favorited_by,
        };
        let page = articles::list(ctx.app(), &query, &args.request).await?;
        article_connection(ctx, &args, page).await
    }

    /// An article by slug, or null.
    #[graphql(cache_control(max_age = 60))]
    async fn article(
        &self,
        ctx: &Context<'_>,
        slug: String,
    ) -> async_graphql::Result<Option<Article>> {
        Ok(articles::find_by_slug(ctx.app(), &slug)
            .await?
            .map(Article::from))
    }

    /// Tags of live articles, most used first (at most 100).
    #[graphql(cache_control(max_age = 60))]
    async fn tags(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 100)] first: i32,
    ) -> async_graphql::Result<Vec<String>> {
        if !(0..=MAX_TAGS).contains(&first) {
            return Err(AppError::BadUserInput(format!(
                "`first` must be between 0 and {MAX_TAGS}"
            ))
            .into());
        }
        Ok(articles::most_used_tags(ctx.app(), i64::from(first)).await?)
    }

    /// The caller's rate-limit budget after this request was charged; null
    /// when rate limiting is off.
    #[graphql(cache_control(no_cache))]
    async fn rate_limit(&self, ctx: &Context<'_>) -> Option<super::rate_limit::RateLimit> {
        super::rate_limit::current(ctx)
    }

    /// The object with this global id, or null if it is unknown or deleted.
    #[graphql(cache_control(private))]
    async fn node(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Node>> {
        node::resolve(ctx, &id).await
    }

    /// The objects with these global ids (at most 100), null for each
    /// unknown or deleted one.
    #[graphql(cache_control(private))]
    async fn nodes(
        &self,
        ctx: &Context<'_>,
        ids: Vec<ID>,
    ) -> async_graphql::Result<Vec<Option<Node>>> {
        if ids.len() > MAX_NODES {
            return Err(AppError::BadUserInput(format!("at most {MAX_NODES} ids at once")).into());
        }
        let resolved = ids.iter().map(|id| node::resolve(ctx, id));
        futures_util::future::try_join_all(resolved).await
    }
}
