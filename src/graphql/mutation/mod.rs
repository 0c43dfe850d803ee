mod accounts;
mod sessions;

use async_graphql::MergedObject;

#[derive(MergedObject, Default)]
pub struct MutationRoot(accounts::AccountMutations, sessions::SessionMutations);
