//! Accounts: signing up, signing in, editing a profile, changing a password.

use diesel_async::AsyncConnection;
use uuid::Uuid;

use super::{
    sessions::{self, SessionTokens},
    validation,
};
use crate::{
    auth::Viewer,
    db::models::{
        session,
        user::{self, NewUser, User, UserChanges},
    },
    error::{AppError, AppResult, FieldError, UserErrorCode},
    state::AppState,
};

pub struct SignUp {
    pub username: String,
    pub email: String,
    pub password: String,
}

pub struct SignIn {
    pub email: String,
    pub password: String,
}

/// Profile edits. `None` keeps a field; for `bio` and `image`, `Some(None)`
/// (or an empty string) clears it. An empty password keeps the current one:
/// settings forms send the field blank when it is not being changed.
#[derive(Default)]
pub struct ProfileUpdate {
    pub username: Option<String>,
    pub email: Option<String>,
    pub bio: Option<Option<String>>,
    pub image: Option<Option<String>>,
    pub password: Option<String>,
}

pub struct ChangePassword {
    pub current_password: String,
    pub new_password: String,
}

fn taken(path: &'static str) -> FieldError {
    FieldError::new(
        path,
        UserErrorCode::Taken,
        format!("{path} is already taken"),
    )
}

fn taken_constraint(constraint: &str) -> Option<FieldError> {
    match constraint {
        user::USERNAME_KEY => Some(taken("username")),
        user::EMAIL_KEY => Some(taken("email")),
        _ => None,
    }
}

/// A patch to a nullable text column, where an empty string clears it.
fn empty_is_none(patch: &Option<Option<String>>) -> Option<Option<&str>> {
    patch
        .as_ref()
        .map(|inner| inner.as_deref().filter(|s| !s.trim().is_empty()))
}

fn invalid_unless_empty(errors: Vec<FieldError>) -> AppResult<()> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(AppError::Invalid(errors))
    }
}

/// Fails with every conflict at once; the unique indexes still catch a
/// sign-up that races this check.
async fn check_available(
    state: &AppState,
    username: &str,
    email: &str,
    except: Option<Uuid>,
    errors: &mut Vec<FieldError>,
) -> AppResult<()> {
    let mut conn = state.db.conn().await?;
    let found = user::taken(&mut conn, username, email, except).await?;
    if found.username {
        errors.push(taken("username"));
    }
    if found.email {
        errors.push(taken("email"));
    }
    Ok(())
}

pub async fn sign_up(state: &AppState, input: SignUp) -> AppResult<User> {
    let email = input.email.trim();
    let mut errors = Vec::new();
    validation::username(&input.username, &mut errors);
    validation::email(email, &mut errors);
    validation::password("password", &input.password, &mut errors);
    if errors.is_empty() {
        check_available(state, &input.username, email, None, &mut errors).await?;
    }
    invalid_unless_empty(errors)?;

    // Hash without holding a pooled connection.
    let password_hash = state.passwords.hash(input.password).await?;
    let mut conn = state.db.conn().await?;
    user::insert(
        &mut conn,
        &NewUser {
            username: &input.username,
            email,
            password_hash: &password_hash,
        },
    )
    .await
    .map_err(|e| AppError::on_constraint(e, taken_constraint))
    .inspect(|user| state.db.wrote_for(user.id))
}

/// Checks credentials and starts a session. An unknown email and a wrong
/// password give the same answer after the same amount of work.
pub async fn sign_in(state: &AppState, input: SignIn) -> AppResult<(User, SessionTokens)> {
    let email = input.email.trim();
    let mut errors = Vec::new();
    if email.is_empty() {
        errors.push(FieldError::new(
            "email",
            UserErrorCode::Blank,
            "email can't be blank",
        ));
    }
    if input.password.is_empty() {
        errors.push(FieldError::new(
            "password",
            UserErrorCode::Blank,
            "password can't be blank",
        ));
    }
    invalid_unless_empty(errors)?;

    let found = {
        let mut conn = state.db.conn().await?;
        user::find_with_password_by_email(&mut conn, email).await?
    };
    let (account, hash) = match found {
        Some((account, hash)) => (Some(account), Some(hash)),
        None => (None, None),
    };
    let verified = state.passwords.verify(input.password, hash).await?;
    let Some(account) = account.filter(|_| verified) else {
        return Err(AppError::Invalid(vec![FieldError {
            path: None,
            code: UserErrorCode::InvalidCredentials,
            message: "email or password is invalid".into(),
        }]));
    };

    let mut conn = state.db.conn().await?;
    let tokens = conn
        .transaction(async |conn| sessions::start(state, conn, account.id).await)
        .await?;
    Ok((account, tokens))
}

pub async fn find_many(state: &AppState, ids: &[Uuid]) -> AppResult<Vec<User>> {
    let mut conn = state.db.conn().await?;
    Ok(user::find_many(&mut conn, ids).await?)
}

pub async fn find_by_username(state: &AppState, username: &str) -> AppResult<Option<User>> {
    let mut conn = state.db.conn().await?;
    Ok(user::find_by_username(&mut conn, username).await?)
}

/// Applies profile edits. A new password ends the viewer's other sessions.
pub async fn update_profile(
    state: &AppState,
    viewer: &Viewer,
    update: ProfileUpdate,
) -> AppResult<User> {
    let email = update.email.as_deref().map(str::trim);
    let password = update.password.filter(|p| !p.is_empty());
    let bio = empty_is_none(&update.bio);
    let image = empty_is_none(&update.image);

    let mut errors = Vec::new();
    if let Some(username) = &update.username {
        validation::username(username, &mut errors);
    }
    if let Some(email) = email {
        validation::email(email, &mut errors);
    }
    if let Some(Some(bio)) = bio {
        validation::bio(bio, &mut errors);
    }
    if let Some(Some(image)) = image {
        validation::image(image, &mut errors);
    }
    if let Some(password) = &password {
        validation::password("password", password, &mut errors);
    }
    if errors.is_empty() && (update.username.is_some() || email.is_some()) {
        let username = update.username.as_deref().unwrap_or_default();
        check_available(
            state,
            username,
            email.unwrap_or_default(),
            Some(viewer.user_id),
            &mut errors,
        )
        .await?;
    }
    invalid_unless_empty(errors)?;

    let password_hash = match password {
        Some(password) => Some(state.passwords.hash(password).await?),
        None => None,
    };
    let changes = UserChanges {
        username: update.username.as_deref(),
        email,
        bio,
        image,
        password_hash: password_hash.as_deref(),
    };
    save(state, viewer, &changes).await
}

/// Replaces the password after checking the current one; the viewer's
/// other sessions end.
pub async fn change_password(
    state: &AppState,
    viewer: &Viewer,
    input: ChangePassword,
) -> AppResult<User> {
    let mut errors = Vec::new();
    validation::password("newPassword", &input.new_password, &mut errors);
    invalid_unless_empty(errors)?;

    let current_hash = {
        let mut conn = state.db.conn().await?;
        user::password_hash(&mut conn, viewer.user_id).await?
    };
    let Some(current_hash) = current_hash else {
        return Err(AppError::Unauthenticated("this account no longer exists"));
    };
    if !state
        .passwords
        .verify(input.current_password, Some(current_hash))
        .await?
    {
        return Err(AppError::Invalid(vec![FieldError::new(
            "currentPassword",
            UserErrorCode::InvalidCredentials,
            "current password is incorrect",
        )]));
    }
    let new_hash = state.passwords.hash(input.new_password).await?;
    let changes = UserChanges {
        password_hash: Some(&new_hash),
        ..Default::default()
    };
    save(state, viewer, &changes).await
}

async fn save(state: &AppState, viewer: &Viewer, changes: &UserChanges<'_>) -> AppResult<User> {
    let mut conn = state.db.conn().await?;
    if changes.is_empty() {
        return user::find(&mut conn, viewer.user_id)
            .await?
            .ok_or(AppError::Unauthenticated("this account no longer exists"));
    }
    conn.transaction(async |conn| {
        let saved = user::update(conn, viewer.user_id, changes)
            .await
            .map_err(|e| AppError::on_constraint(e, taken_constraint))?;
        if changes.password_hash.is_some() {
            session::revoke_all_for_user(conn, viewer.user_id, Some(viewer.session_id)).await?;
        }
        Ok(saved)
    })
    .await
}
