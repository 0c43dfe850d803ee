use async_graphql::{Context, ID, Interface};

use super::{article::Article, comment::Comment, global_id, user::User};
use crate::{
    error::AppError,
    graphql::{
        ContextExt,
        loaders::{ArticleById, CommentById, UserById},
    },
};

/// An object with a global id (Relay).
#[derive(Interface)]
#[graphql(field(name = "id", ty = "ID"))]
pub enum Node {
    User(User),
    Article(Article),
    Comment(Comment),
}

/// The object a global id names: `BAD_USER_INPUT` for a malformed id,
/// `None` for an unknown or deleted one.
pub async fn resolve(ctx: &Context<'_>, id: &ID) -> async_graphql::Result<Option<Node>> {
    let (kind, uuid) = global_id::decode_any(id)?;
    let loaders = ctx.loaders();
    Ok(match kind.as_str() {
        "User" => loaders
            .load_one(UserById(uuid))
            .await?
            .map(|u| Node::User(User::public(u))),
        "Article" => loaders
            .load_one(ArticleById(uuid))
            .await?
            .map(|a| Node::Article(Article::from(a))),
        "Comment" => loaders
            .load_one(CommentById(uuid))
            .await?
            .map(|c| Node::Comment(Comment(c))),
        _ => return Err(AppError::BadUserInput(format!("`{}` is not a valid id", id.0)).into()),
    })
}
