//! Account mutations: sign up, sign in, update the profile, change the
//! password.

use async_graphql::{Context, InputObject, MaybeUndefined, Object, SimpleObject};

use crate::{
    graphql::{
        ContextExt,
        guards::SignedIn,
        rate_limit::ClientAddress,
        types::{
            session::SessionFields,
            user::User,
            user_error::{UserError, refusals},
        },
    },
    services::accounts::{self, ChangePassword, ProfileUpdate, SignIn, SignUp},
};

#[derive(Default)]
pub struct AccountMutations;

#[derive(InputObject)]
pub struct CreateUserInput {
    pub username: String,
    pub email: String,
    pub password: String,
    /// A unique identifier for the client performing the mutation.
    pub client_mutation_id: Option<String>,
}

#[derive(SimpleObject)]
pub struct CreateUserPayload {
    pub user: Option<User>,
    pub errors: Vec<UserError>,
    /// A unique identifier for the client performing the mutation.
    pub client_mutation_id: Option<String>,
}

#[derive(InputObject)]
pub struct SignInUserInput {
    pub email: String,
    pub password: String,
    /// A unique identifier for the client performing the mutation.
    pub client_mutation_id: Option<String>,
}

#[derive(SimpleObject)]
pub struct SignInUserPayload {
    #[graphql(flatten)]
    pub session: SessionFields,
    pub errors: Vec<UserError>,
    /// A unique identifier for the client performing the mutation.
    pub client_mutation_id: Option<String>,
}

/// Omitted fields keep their value; `bio` or `image` set to null or "" clear it.
#[derive(InputObject)]
pub struct UpdateUserInput {
    pub username: Option<String>,
    pub email: Option<String>,
    pub bio: MaybeUndefined<String>,
    pub image: MaybeUndefined<String>,
    /// A new password; the viewer's other sessions end. Omitted, null or
    /// blank keeps the current password.
    pub password: Option<String>,
    /// A unique identifier for the client performing the mutation.
    pub client_mutation_id: Option<String>,
}

#[derive(SimpleObject)]
pub struct UpdateUserPayload {
    pub user: Option<User>,
    pub errors: Vec<UserError>,
    /// A unique identifier for the client performing the mutation.
    pub client_mutation_id: Option<String>,
}

#[derive(InputObject)]
pub struct ChangePasswordInput {
    pub current_password: String,
    pub new_password: String,
    /// A unique identifier for the client performing the mutation.
    pub client_mutation_id: Option<String>,
}

#[derive(SimpleObject)]
pub struct ChangePasswordPayload {
    pub user: Option<User>,
    pub errors: Vec<UserError>,
    /// A unique identifier for the client performing the mutation.
    pub client_mutation_id: Option<String>,
}

fn patch(value: MaybeUndefined<String>) -> Option<Option<String>> {
    match value {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(v) => Some(Some(v)),
    }
}

#[Object]
impl AccountMutations {
    /// Registers an account. Sign in afterwards to get tokens.
    async fn create_user(
        &self,
        ctx: &Context<'_>,
        input: CreateUserInput,
    ) -> async_graphql::Result<Option<CreateUserPayload>> {
        ctx.app()
            .limiter
            .sign_up_attempt(ClientAddress::of(ctx)?)
            .await?;
        let outcome = accounts::sign_up(
            ctx.app(),
            SignUp {
                username: input.username,
                email: input.email,
                password: input.password,
            },
        )
        .await;
        let (user, errors) = match refusals(outcome)? {
            Ok(user) => (Some(User::own(user)), Vec::new()),
            Err(errors) => (None, errors),
        };
        Ok(Some(CreateUserPayload {
            user,
            errors,
            client_mutation_id: input.client_mutation_id,
        }))
    }

    /// Checks credentials and starts a session.
    async fn sign_in_user(
        &self,
        ctx: &Context<'_>,
        input: SignInUserInput,
    ) -> async_graphql::Result<Option<SignInUserPayload>> {
        ctx.app()
            .limiter
            .sign_in_attempt(ClientAddress::of(ctx)?, &input.email)
            .await?;
        let outcome = accounts::sign_in(
            ctx.app(),
            SignIn {
                email: input.email,
                password: input.password,
            },
        )
        .await;
        Ok(Some(match refusals(outcome)? {
            Ok((_, tokens)) => SignInUserPayload {
                session: tokens.into(),
                errors: Vec::new(),
                client_mutation_id: input.client_mutation_id,
            },
            Err(errors) => SignInUserPayload {
                session: SessionFields::default(),
                errors,
                client_mutation_id: input.client_mutation_id,
            },
        }))
    }

    /// Edits the viewer's profile.
    #[graphql(guard = "SignedIn")]
    async fn update_user(
        &self,
        ctx: &Context<'_>,
        input: UpdateUserInput,
    ) -> async_graphql::Result<Option<UpdateUserPayload>> {
        let update = ProfileUpdate {
            username: input.username,
            email: input.email,
            bio: patch(input.bio),
            image: patch(input.image),
            password: input.password,
        };
        let outcome = accounts::update_profile(ctx.app(), ctx.signed_in(), update).await;
        let (user, errors) = match refusals(outcome)? {
            Ok(user) => (Some(User::own(user)), Vec::new()),
            Err(errors) => (None, errors),
        };
        Ok(Some(UpdateUserPayload {
            user,
            errors,
            client_mutation_id: input.client_mutation_id,
        }))
    }

    /// Replaces the viewer's password; every other session of the viewer ends.
    #[graphql(guard = "SignedIn")]
    async fn change_password(
        &self,
        ctx: &Context<'_>,
        input: ChangePasswordInput,
    ) -> async_graphql::Result<Option<ChangePasswordPayload>> {
        let outcome = accounts::change_password(
            ctx.app(),
            ctx.signed_in(),
            ChangePassword {
                current_password: input.current_password,
                new_password: input.new_password,
            },
        )
        .await;
        let (user, errors) = match refusals(outcome)? {
            Ok(user) => (Some(User::own(user)), Vec::new()),
            Err(errors) => (None, errors),
        };
        Ok(Some(ChangePasswordPayload {
            user,
            errors,
            client_mutation_id: input.client_mutation_id,
        }))
    }
}
