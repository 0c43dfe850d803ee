//! `User` (a public profile) and its connections: followers, articles,
//! favorites, with the viewer-relative `followedByViewer` through a loader.

use async_graphql::{
    Context, ID, Object, SimpleObject,
    connection::{Connection, ConnectionNameType, EdgeNameType, EmptyFields},
};

use super::{
    article::{ArticleConnection, article_connection},
    global_id,
};
use crate::{
    db::models::user::User as UserRow,
    graphql::{ContextExt, connection::PageArgs, loaders::FollowedByViewer},
    services::{articles, profiles},
};

/// Extra fields of a followers connection.
#[derive(SimpleObject)]
pub struct FollowersFields {
    /// How many live users follow this user.
    pub total_count: i32,
}

pub struct FollowersConnectionName;
impl ConnectionNameType for FollowersConnectionName {
    fn type_name<T: async_graphql::OutputType>() -> String {
        "FollowersConnection".into()
    }
}

pub struct UserEdgeName;
impl EdgeNameType for UserEdgeName {
    fn type_name<T: async_graphql::OutputType>() -> String {
        "UserEdge".into()
    }
}

pub type FollowersConnection =
    Connection<String, User, FollowersFields, EmptyFields, FollowersConnectionName, UserEdgeName>;

/// A Conduit account.
pub struct User {
    /// Shared with the request's loader cache: a page of articles by a
    /// few authors does not copy each author per row.
    row: std::sync::Arc<UserRow>,
    /// Reached through the owner's own view (`Viewer.user`, the payload of
    /// the owner's mutation), where private fields show even before the
    /// request carries a token, e.g. right after `signInUser`.
    own_view: bool,
}

impl User {
    /// The account as seen by anyone.
    pub fn public(row: impl Into<std::sync::Arc<UserRow>>) -> Self {
        Self {
            row: row.into(),
            own_view: false,
        }
    }

    /// The account as seen by its owner.
    pub fn own(row: impl Into<std::sync::Arc<UserRow>>) -> Self {
        Self {
            row: row.into(),
            own_view: true,
        }
    }
}

#[Object(cache_control(max_age = 60))]
impl User {
    /// Opaque global id.
    pub async fn id(&self) -> ID {
        global_id::of::<Self>(self.row.id)
    }

    async fn username(&self) -> &str {
        &self.row.username
    }

    /// The account's email, visible only to its owner; `null` for everyone else.
    #[graphql(cache_control(private))]
    async fn email(&self, ctx: &Context<'_>) -> Option<&str> {
        let owner = self.own_view || ctx.viewer().is_some_and(|v| v.user_id == self.row.id);
        owner.then_some(self.row.email.as_str())
    }

    async fn bio(&self) -> Option<&str> {
        self.row.bio.as_deref()
    }

    /// URL of the avatar.
    async fn image(&self) -> Option<&str> {
        self.row.image.as_deref()
    }

    /// False for anonymous viewers.
    #[graphql(cache_control(private))]
    async fn followed_by_viewer(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        if ctx.viewer().is_none() {
            return Ok(false);
        }
        Ok(ctx
            .loaders()
            .load_one(FollowedByViewer(self.row.id))
            .await?
            .unwrap_or(false))
    }

    /// Who follows this user, most recent first. `totalCount` alone costs
    /// no query.
    async fn followers(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<FollowersConnection> {
        let args = PageArgs::new(&ctx.app().pagination, first, after, last, before)?;
        let fields = FollowersFields {
            total_count: self.row.followers_count,
        };
        let look_ahead = ctx.look_ahead();
        let wants_list = ["edges", "nodes", "pageInfo"]
            .iter()
            .any(|f| look_ahead.field(f).exists());
        if !wants_list {
            return Ok(Connection::with_additional_fields(false, false, fields));
        }
        let page = Box::pin(profiles::followers(ctx.app(), self.row.id, &args.request)).await?;
        Ok(args.connection(page, fields, |(user, keyset)| (keyset, User::public(user))))
    }

    // The database futures below are boxed: async-graphql allocates and
    // moves every field's future at the size of the type's largest
    // resolver, so an unboxed connection would make `username` as costly.

    /// Articles this user wrote, newest first.
    async fn articles(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<ArticleConnection> {
        let args = PageArgs::new(&ctx.app().pagination, first, after, last, before)?;
        let page = Box::pin(articles::by_author(ctx.app(), self.row.id, &args.request)).await?;
        Box::pin(article_connection(ctx, &args, page)).await
    }

    /// Articles this user favorited, newest article first.
    async fn favorite_articles(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<ArticleConnection> {
        let args = PageArgs::new(&ctx.app().pagination, first, after, last, before)?;
        let page = Box::pin(articles::favorited_by(
            ctx.app(),
            self.row.id,
            &args.request,
        ))
        .await?;
        Box::pin(article_connection(ctx, &args, page)).await
    }
}
