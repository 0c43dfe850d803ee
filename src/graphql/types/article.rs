//! `Article` and the article and comment connections: fields read from the
//! row, relations through loaders, pages built with what their nodes ask for
//! fetched in one go.

use async_graphql::{
    Context, ID, Object,
    connection::{Connection, EmptyFields},
};
use chrono::{DateTime, Utc};

use super::{comment::Comment, global_id, user::User};
use crate::{
    db::models::{
        article::{Article as ArticleRow, ArticleListing},
        page::Keyset,
    },
    error::AppError,
    graphql::{
        ContextExt,
        connection::PageArgs,
        loaders::{
            self, ArticleBody, FavoritedByViewer, FollowedByViewer, NewestComments, UserById,
        },
    },
    services::comments,
};

pub type ArticleConnection = Connection<String, Article, EmptyFields, EmptyFields>;
pub type CommentConnection = Connection<String, Comment, EmptyFields, EmptyFields>;

pub struct Article {
    row: ArticleListing,
    /// `None` when a list fetched the article: the body is then loaded,
    /// for the whole list at once, only if the selection asks for it.
    body: Option<String>,
}

impl From<ArticleRow> for Article {
    fn from(row: ArticleRow) -> Self {
        Self {
            row: row.listing,
            body: Some(row.body),
        }
    }
}

impl From<ArticleListing> for Article {
    fn from(row: ArticleListing) -> Self {
        Self { row, body: None }
    }
}

impl Article {
    pub fn keyset(&self) -> Keyset {
        Keyset {
            created_at: self.row.created_at,
            id: self.row.id,
        }
    }
}

/// Builds an article connection from a fetched page, prefetching what its
/// nodes ask for.
pub async fn article_connection(
    ctx: &Context<'_>,
    args: &PageArgs,
    page: crate::db::models::page::Page<ArticleListing>,
) -> async_graphql::Result<ArticleConnection> {
    prefetch(ctx, &page.rows).await?;
    Ok(args.connection(page, EmptyFields, |row| {
        let article = Article::from(row);
        (article.keyset(), article)
    }))
}

/// Loads, for all `rows` at once, each relationship the selection asks of
/// them (bodies, favorite state, authors and whether the viewer follows
/// them; tags come with the rows): one query per relationship, however many rows.
async fn prefetch(ctx: &Context<'_>, rows: &[ArticleListing]) -> async_graphql::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let look_ahead = ctx.look_ahead();
    let selections = [
        look_ahead.field("edges").field("node"),
        look_ahead.field("nodes"),
    ];
    let wants = |field: &str| selections.iter().any(|s| s.field(field).exists());
    let wants_author = |field: &str| {
        selections
            .iter()
            .any(|s| s.field("author").field(field).exists())
    };
    let signed_in = ctx.viewer().is_some();
    let loaders = ctx.loaders();
    let article_ids = || rows.iter().map(|r| r.id);
    let author_ids = || rows.iter().map(|r| r.author_id);
    let bodies = async {
        if wants("body") {
            loaders::prime(loaders, article_ids().map(ArticleBody)).await?;
        }
        Ok::<_, async_graphql::Error>(())
    };
    let favorited = async {
        if signed_in && wants("viewerHasFavorited") {
            loaders::prime(loaders, article_ids().map(FavoritedByViewer)).await?;
        }
        Ok(())
    };
    let authors = async {
        if wants("author") {
            loaders::prime(loaders, author_ids().map(UserById)).await?;
        }
        Ok(())
    };
    let followed = async {
        if signed_in && wants_author("followedByViewer") {
            loaders::prime(loaders, author_ids().map(FollowedByViewer)).await?;
        }
        Ok(())
    };
    futures_util::try_join!(bodies, favorited, authors, followed)?;
    Ok(())
}

// Public: shared by every viewer, for a minute in HTTP caches.
#[Object(cache_control(max_age = 60))]
impl Article {
    /// Opaque global id.
    pub async fn id(&self) -> ID {
        global_id::of::<Self>(self.row.id)
    }

    /// URL-safe, unique; changes when the title changes.
    async fn slug(&self) -> &str {
        &self.row.slug
    }

    async fn title(&self) -> &str {
        &self.row.title
    }

    async fn description(&self) -> &str {
        &self.row.description
    }

    async fn body(&self, ctx: &Context<'_>) -> async_graphql::Result<String> {
        if let Some(body) = &self.body {
            return Ok(body.clone());
        }
        ctx.loaders()
            .load_one(ArticleBody(self.row.id))
            .await?
            .ok_or_else(|| AppError::NotFound("article").into())
    }

    /// Lower-case tags in the author's order.
    async fn tag_list(&self) -> &[String] {
        &self.row.tag_list
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.row.created_at
    }

    async fn updated_at(&self) -> DateTime<Utc> {
        self.row.updated_at
    }

    async fn favorites_count(&self) -> i32 {
        self.row.favorites_count
    }

    /// False for anonymous viewers.
    #[graphql(cache_control(private))]
    async fn viewer_has_favorited(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        if ctx.viewer().is_none() {
            return Ok(false);
        }
        Ok(ctx
            .loaders()
            .load_one(FavoritedByViewer(self.row.id))
            .await?
            .unwrap_or(false))
    }

    async fn author(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        Ok(ctx
            .loaders()
            .load_one(UserById(self.row.author_id))
            .await?
            .map(User::public))
    }

    /// The newest comments, newest first, at most 100; page through all of
    /// them with `commentsConnection`.
    async fn comments(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Comment>> {
        Ok(ctx
            .loaders()
            .load_one(NewestComments(self.row.id))
            .await?
            .unwrap_or_default()
            .into_iter()
            .map(Comment)
            .collect())
    }

    /// All comments, newest first, as a connection.
    async fn comments_connection(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<CommentConnection> {
        let args = PageArgs::new(&ctx.app().pagination, first, after, last, before)?;
        // Boxed to keep every field's future small (see `User::articles`).
        let page = Box::pin(comments::list(ctx.app(), self.row.id, &args.request)).await?;
        Ok(args.connection(page, EmptyFields, |row| {
            let comment = Comment(row);
            (comment.keyset(), comment)
        }))
    }
}
