//! `Comment`: a public comment; its author and its article come through loaders.

use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};

use super::{article::Article, global_id, user::User};
use crate::{
    db::models::{comment::Comment as CommentRow, page::Keyset},
    graphql::{
        ContextExt,
        loaders::{ArticleById, UserById},
    },
};

pub struct Comment(pub CommentRow);

impl Comment {
    pub fn keyset(&self) -> Keyset {
        Keyset {
            created_at: self.0.created_at,
            id: self.0.id,
        }
    }
}

#[Object(cache_control(max_age = 60))]
impl Comment {
    /// Opaque global id.
    pub async fn id(&self) -> ID {
        global_id::of::<Self>(self.0.id)
    }

    async fn body(&self) -> &str {
        &self.0.body
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }

    async fn author(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        Ok(ctx
            .loaders()
            .load_one(UserById(self.0.author_id))
            .await?
            .map(User::public))
    }

    /// Null once the article is deleted.
    async fn article(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Article>> {
        Ok(ctx
            .loaders()
            .load_one(ArticleById(self.0.article_id))
            .await?
            .map(Article::from))
    }
}
