//! The Relay `Node` interface and the lookup of an object by its global id.

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
    let kind = kind.as_str();
    Ok(if global_id::names::<User>(kind) {
        loaders
            .load_one(UserById(uuid))
            .await?
            .map(|u| Node::User(User::public(u)))
    } else if global_id::names::<Article>(kind) {
        loaders
            .load_one(ArticleById(uuid))
            .await?
            .map(|a| Node::Article(Article::from(a)))
    } else if global_id::names::<Comment>(kind) {
        loaders
            .load_one(CommentById(uuid))
            .await?
            .map(|c| Node::Comment(Comment(c)))
    } else {
        return Err(AppError::BadUserInput(format!("`{}` is not a valid id", id.0)).into());
    })
}
