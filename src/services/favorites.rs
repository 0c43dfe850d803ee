//! Favorites. Idempotent both ways; counts stay exact because triggers
//! adjust them in the same statement as the row change.

use diesel_async::AsyncConnection;
use uuid::Uuid;

use crate::{
    auth::Viewer,
    db::models::{
        article::{self, Article},
        favorite,
    },
    error::{AppError, AppResult},
    state::AppState,
};

async fn set(state: &AppState, viewer: &Viewer, article_id: Uuid, on: bool) -> AppResult<Article> {
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        article::find(conn, article_id)
            .await?
            .ok_or(AppError::NotFound("article"))?;
        if on {
            super::tag_request(conn).await?;
            favorite::add(conn, viewer.user_id, article_id).await?;
        } else {
            favorite::remove(conn, viewer.user_id, article_id).await?;
        }
        article::find(conn, article_id)
            .await?
            .ok_or(AppError::NotFound("article"))
    })
    .await
}

pub async fn favorite(state: &AppState, viewer: &Viewer, article_id: Uuid) -> AppResult<Article> {
    set(state, viewer, article_id, true).await
}

pub async fn unfavorite(state: &AppState, viewer: &Viewer, article_id: Uuid) -> AppResult<Article> {
    set(state, viewer, article_id, false).await
}

/// Which of `article_ids` the viewer has favorited.
pub async fn favorited_among(
    state: &AppState,
    viewer: &Viewer,
    article_ids: &[Uuid],
) -> AppResult<foldhash::HashSet<Uuid>> {
    let mut conn = state.db.conn().await?;
    Ok(
        favorite::favorited_among(&mut conn, viewer.user_id, article_ids)
            .await?
            .into_iter()
            .collect(),
    )
}
