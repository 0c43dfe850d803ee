//! Follow and unfollow.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};

use crate::{
    graphql::{
        ContextExt,
        guards::SignedIn,
        types::{
            global_id,
            user::User,
            user_error::{UserError, refusals},
        },
    },
    services::profiles,
};

#[derive(Default)]
pub struct ProfileMutations;

#[derive(InputObject)]
pub struct FollowUserInput {
    /// Global id of the user to follow.
    pub id: ID,
    /// A unique identifier for the client performing the mutation.
    pub client_mutation_id: Option<String>,
}

#[derive(SimpleObject)]
pub struct FollowUserPayload {
    /// The followed user, with updated counts.
    pub user: Option<User>,
    pub errors: Vec<UserError>,
    /// A unique identifier for the client performing the mutation.
    pub client_mutation_id: Option<String>,
}

#[derive(InputObject)]
pub struct UnfollowUserInput {
    /// Global id of the user to unfollow.
    pub id: ID,
    /// A unique identifier for the client performing the mutation.
    pub client_mutation_id: Option<String>,
}

#[derive(SimpleObject)]
pub struct UnfollowUserPayload {
    /// The unfollowed user, with updated counts.
    pub user: Option<User>,
    /// A unique identifier for the client performing the mutation.
    pub client_mutation_id: Option<String>,
}

#[Object]
impl ProfileMutations {
    /// Follows a user; following twice is harmless. Following yourself is
    /// refused in `errors`.
    #[graphql(guard = "SignedIn")]
    async fn follow_user(
        &self,
        ctx: &Context<'_>,
        input: FollowUserInput,
    ) -> async_graphql::Result<Option<FollowUserPayload>> {
        let id = global_id::decode_as::<User>(&input.id)?;
        let outcome = profiles::follow(ctx.app(), ctx.signed_in(), id).await;
        let (user, errors) = match refusals(outcome)? {
            Ok(user) => (Some(User::public(user)), Vec::new()),
            Err(errors) => (None, errors),
        };
        Ok(Some(FollowUserPayload {
            user,
            errors,
            client_mutation_id: input.client_mutation_id,
        }))
    }

    /// Stops following a user; unfollowing twice is harmless.
    #[graphql(guard = "SignedIn")]
    async fn unfollow_user(
        &self,
        ctx: &Context<'_>,
        input: UnfollowUserInput,
    ) -> async_graphql::Result<Option<UnfollowUserPayload>> {
        let id = global_id::decode_as::<User>(&input.id)?;
        let user = profiles::unfollow(ctx.app(), ctx.signed_in(), id).await?;
        Ok(Some(UnfollowUserPayload {
            user: Some(User::public(user)),
            client_mutation_id: input.client_mutation_id,
        }))
    }
}
