//! Profiles and follows.

use diesel_async::AsyncConnection;
use uuid::Uuid;

use crate::{
    auth::Viewer,
    db::models::{
        follow,
        page::{Keyset, Page, PageRequest},
        user::{self, User},
    },
    error::{AppError, AppResult, FieldError, UserErrorCode},
    state::AppState,
};

async fn set(state: &AppState, viewer: &Viewer, user_id: Uuid, on: bool) -> AppResult<User> {
    if on && user_id == viewer.user_id {
        return Err(AppError::Invalid(vec![FieldError::new(
            "id",
            UserErrorCode::Invalid,
            "you cannot follow yourself",
        )]));
    }
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        user::find(conn, user_id)
            .await?
            .ok_or(AppError::NotFound("user"))?;
        if on {
            super::tag_request(conn).await?;
            follow::add(conn, viewer.user_id, user_id).await?;
        } else {
            follow::remove(conn, viewer.user_id, user_id).await?;
        }
        user::find(conn, user_id)
            .await?
            .ok_or(AppError::NotFound("user"))
    })
    .await
}

pub async fn follow(state: &AppState, viewer: &Viewer, user_id: Uuid) -> AppResult<User> {
    set(state, viewer, user_id, true).await
}

pub async fn unfollow(state: &AppState, viewer: &Viewer, user_id: Uuid) -> AppResult<User> {
    set(state, viewer, user_id, false).await
}

/// Which of `user_ids` the viewer follows.
pub async fn followed_among(
    state: &AppState,
    viewer: &Viewer,
    user_ids: &[Uuid],
) -> AppResult<foldhash::HashSet<Uuid>> {
    let mut conn = state.db.conn().await?;
    Ok(follow::followed_among(&mut conn, viewer.user_id, user_ids)
        .await?
        .into_iter()
        .collect())
}

pub async fn followers(
    state: &AppState,
    user_id: Uuid,
    page: &PageRequest,
) -> AppResult<Page<(User, Keyset)>> {
    let mut conn = state.db.conn().await?;
    Ok(follow::followers(&mut conn, user_id, page).await?)
}
