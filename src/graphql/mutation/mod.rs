//! The mutation root, merged from one object per area.

mod accounts;
mod articles;
mod comments;
mod profiles;
mod sessions;
mod webhooks;

use async_graphql::MergedObject;

#[derive(MergedObject, Default)]
#[graphql(name = "Mutation")]
pub struct MutationRoot(
    accounts::AccountMutations,
    sessions::SessionMutations,
    profiles::ProfileMutations,
    articles::ArticleMutations,
    comments::CommentMutations,
    webhooks::WebhookMutations,
);
