//! Session mutations: refresh a session, sign out of one or of all.

use async_graphql::{Context, InputObject, Object, SimpleObject};

use crate::{
    graphql::{
        ContextExt,
        guards::SignedIn,
        types::{
            session::SessionFields,
            user_error::{UserError, refusals},
        },
    },
    services::sessions,
};

#[derive(Default)]
pub struct SessionMutations;

#[derive(InputObject)]
pub struct RefreshSessionInput {
    /// The refresh token from `signInUser` or the previous `refreshSession`.
    pub refresh_token: String,
    /// A unique identifier for the client performing the mutation.
    pub client_mutation_id: Option<String>,
}

#[derive(SimpleObject)]
pub struct RefreshSessionPayload {
    /// New tokens; the refresh token presented is now spent.
    #[graphql(flatten)]
    pub session: SessionFields,
    pub errors: Vec<UserError>,
    /// A unique identifier for the client performing the mutation.
    pub client_mutation_id: Option<String>,
}

#[derive(InputObject)]
pub struct SignOutInput {
    /// A unique identifier for the client performing the mutation.
    pub client_mutation_id: Option<String>,
}

#[derive(SimpleObject)]
pub struct SignOutPayload {
    pub errors: Vec<UserError>,
    /// A unique identifier for the client performing the mutation.
    pub client_mutation_id: Option<String>,
}

#[derive(InputObject)]
pub struct SignOutEverywhereInput {
    /// A unique identifier for the client performing the mutation.
    pub client_mutation_id: Option<String>,
}

#[derive(SimpleObject)]
pub struct SignOutEverywherePayload {
    /// How many sessions ended, this one included.
    pub revoked_session_count: i32,
    pub errors: Vec<UserError>,
    /// A unique identifier for the client performing the mutation.
    pub client_mutation_id: Option<String>,
}

#[Object]
impl SessionMutations {
    /// Exchanges a refresh token for new tokens. Each refresh token works
    /// once; presenting a spent one ends its whole session.
    async fn refresh_session(
        &self,
        ctx: &Context<'_>,
        input: RefreshSessionInput,
    ) -> async_graphql::Result<Option<RefreshSessionPayload>> {
        let outcome = sessions::refresh(ctx.app(), &input.refresh_token).await;
        Ok(Some(match refusals(outcome)? {
            Ok(tokens) => RefreshSessionPayload {
                session: tokens.into(),
                errors: Vec::new(),
                client_mutation_id: input.client_mutation_id,
            },
            Err(errors) => RefreshSessionPayload {
                session: SessionFields::default(),
                errors,
                client_mutation_id: input.client_mutation_id,
            },
        }))
    }

    /// Ends the current session: its access and refresh tokens stop working.
    #[graphql(guard = "SignedIn")]
    async fn sign_out(
        &self,
        ctx: &Context<'_>,
        input: SignOutInput,
    ) -> async_graphql::Result<Option<SignOutPayload>> {
        sessions::sign_out(ctx.app(), ctx.signed_in()).await?;
        Ok(Some(SignOutPayload {
            errors: Vec::new(),
            client_mutation_id: input.client_mutation_id,
        }))
    }

    /// Ends every session of the viewer, on every device.
    #[graphql(guard = "SignedIn")]
    async fn sign_out_everywhere(
        &self,
        ctx: &Context<'_>,
        input: SignOutEverywhereInput,
    ) -> async_graphql::Result<Option<SignOutEverywherePayload>> {
        let revoked = sessions::sign_out_everywhere(ctx.app(), ctx.signed_in()).await?;
        Ok(Some(SignOutEverywherePayload {
            revoked_session_count: i32::try_from(revoked).unwrap_or(i32::MAX),
            errors: Vec::new(),
            client_mutation_id: input.client_mutation_id,
        }))
    }
}
