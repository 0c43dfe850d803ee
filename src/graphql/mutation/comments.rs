//! Comment mutations: add and delete (the author only).

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};

use crate::{
    graphql::{
        ContextExt,
        guards::SignedIn,
        types::{
            article::Article,
            comment::Comment,
            global_id,
            user_error::{UserError, refusals},
        },
    },
    services::comments,
};

#[derive(Default)]
pub struct CommentMutations;

#[derive(InputObject)]
pub struct AddCommentInput {
    /// Global id of the article.
    pub article_id: ID,
    pub body: String,
    /// A unique identifier for the client performing the mutation.
    pub client_mutation_id: Option<String>,
}

#[derive(SimpleObject)]
pub struct AddCommentPayload {
    pub comment: Option<Comment>,
    pub errors: Vec<UserError>,
    /// A unique identifier for the client performing the mutation.
    pub client_mutation_id: Option<String>,
}

#[derive(InputObject)]
pub struct DeleteCommentInput {
    /// Global id of the comment.
    pub id: ID,
    /// A unique identifier for the client performing the mutation.
    pub client_mutation_id: Option<String>,
}

#[derive(SimpleObject)]
pub struct DeleteCommentPayload {
    /// The deleted comment, as it was.
    pub comment: Option<Comment>,
    /// A unique identifier for the client performing the mutation.
    pub client_mutation_id: Option<String>,
}

#[Object]
impl CommentMutations {
    #[graphql(guard = "SignedIn")]
    async fn add_comment(
        &self,
        ctx: &Context<'_>,
        input: AddCommentInput,
    ) -> async_graphql::Result<Option<AddCommentPayload>> {
        let article_id = global_id::decode_as::<Article>(&input.article_id)?;
        let outcome = comments::add(ctx.app(), ctx.signed_in(), article_id, input.body).await;
        let (comment, errors) = match refusals(outcome)? {
            Ok(comment) => (Some(Comment(comment)), Vec::new()),
            Err(errors) => (None, errors),
        };
        Ok(Some(AddCommentPayload {
            comment,
            errors,
            client_mutation_id: input.client_mutation_id,
        }))
    }

    /// Deletes one of the viewer's comments (`FORBIDDEN` for others').
    #[graphql(guard = "SignedIn")]
    async fn delete_comment(
        &self,
        ctx: &Context<'_>,
        input: DeleteCommentInput,
    ) -> async_graphql::Result<Option<DeleteCommentPayload>> {
        let id = global_id::decode_as::<Comment>(&input.id)?;
        let comment = comments::delete(ctx.app(), ctx.signed_in(), id).await?;
        Ok(Some(DeleteCommentPayload {
            comment: Some(Comment(comment)),
            client_mutation_id: input.client_mutation_id,
        }))
    }
}
