use async_graphql::{Context, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

use crate::{
    graphql::{
        ContextExt,
        guards::SignedIn,
        types::{
            user_error::{UserError, refusals},
            viewer::Viewer,
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
    /// A new short-lived access token.
    pub token: Option<String>,
    /// The replacement refresh token; the one presented is now spent.
    pub refresh_token: Option<String>,
    /// When `token` expires.
    pub token_expires_at: Option<DateTime<Utc>>,
    pub viewer: Option<Viewer>,
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
    ) -> async_graphql::Result<RefreshSessionPayload> {
        let outcome = sessions::refresh(ctx.app(), &input.refresh_token).await;
        Ok(match refusals(outcome)? {
            Ok(tokens) => RefreshSessionPayload {
                token: Some(tokens.access_token),
                refresh_token: Some(tokens.refresh_token),
                token_expires_at: Some(tokens.access_token_expires_at),
                viewer: Some(Viewer {
                    user_id: tokens.user_id,
                }),
                errors: Vec::new(),
                client_mutation_id: input.client_mutation_id,
            },
            Err(errors) => RefreshSessionPayload {
                token: None,
                refresh_token: None,
                token_expires_at: None,
                viewer: None,
                errors,
                client_mutation_id: input.client_mutation_id,
            },
        })
    }

    /// Ends the current session: its access and refresh tokens stop working.
    #[graphql(guard = "SignedIn")]
    async fn sign_out(
        &self,
        ctx: &Context<'_>,
        input: SignOutInput,
    ) -> async_graphql::Result<SignOutPayload> {
        sessions::sign_out(ctx.app(), ctx.require_viewer()?).await?;
        Ok(SignOutPayload {
            errors: Vec::new(),
            client_mutation_id: input.client_mutation_id,
        })
    }

    /// Ends every session of the viewer, on every device.
    #[graphql(guard = "SignedIn")]
    async fn sign_out_everywhere(
        &self,
        ctx: &Context<'_>,
        input: SignOutEverywhereInput,
    ) -> async_graphql::Result<SignOutEverywherePayload> {
        let revoked = sessions::sign_out_everywhere(ctx.app(), ctx.require_viewer()?).await?;
        Ok(SignOutEverywherePayload {
            revoked_session_count: i32::try_from(revoked).unwrap_or(i32::MAX),
            errors: Vec::new(),
            client_mutation_id: input.client_mutation_id,
        })
    }
}
