//! Comments: adding, deleting (author only), listing.

use diesel_async::AsyncConnection;
use uuid::Uuid;

use super::validation;
use crate::{
    auth::Viewer,
    config::schema_lists::MAX_PLAIN_COMMENTS,
    db::models::{
        article,
        comment::{self, Comment, NewComment},
        page::{Page, PageRequest},
    },
    error::{AppError, AppResult},
    state::AppState,
};

pub async fn add(
    state: &AppState,
    viewer: &Viewer,
    article_id: Uuid,
    body: String,
) -> AppResult<Comment> {
    let mut errors = Vec::new();
    validation::required_text("body", &body, validation::COMMENT_MAX, &mut errors);
    if !errors.is_empty() {
        return Err(AppError::Invalid(errors));
    }
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        article::find(conn, article_id)
            .await?
            .ok_or(AppError::NotFound("article"))?;
        super::tag_request(conn).await?;
        Ok(comment::insert(
            conn,
            &NewComment {
                article_id,
                author_id: viewer.user_id,
                body: &body,
            },
        )
        .await?)
    })
    .await
}

/// Soft-deletes the viewer's comment and returns it as it was.
pub async fn delete(state: &AppState, viewer: &Viewer, id: Uuid) -> AppResult<Comment> {
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        let found = comment::find(conn, id)
            .await?
            .ok_or(AppError::NotFound("comment"))?;
        if found.author_id != viewer.user_id {
            return Err(AppError::Forbidden(
                "only the author may delete this comment",
            ));
        }
        comment::soft_delete(conn, id)
            .await?
            .ok_or(AppError::NotFound("comment"))
    })
    .await
}

pub async fn find_many(state: &AppState, ids: &[Uuid]) -> AppResult<Vec<Comment>> {
    let mut conn = state.db.conn().await?;
    Ok(comment::find_many(&mut conn, ids).await?)
}

pub async fn list(
    state: &AppState,
    article_id: Uuid,
    page: &PageRequest,
) -> AppResult<Page<Comment>> {
    let mut conn = state.db.conn().await?;
    Ok(comment::list(&mut conn, article_id, page).await?)
}

/// The newest comments of each article, newest first.
pub async fn newest_of_articles(
    state: &AppState,
    article_ids: &[Uuid],
) -> AppResult<foldhash::HashMap<Uuid, Vec<Comment>>> {
    let mut conn = state.db.conn().await?;
    let mut by_article = foldhash::HashMap::<Uuid, Vec<Comment>>::default();
    for c in comment::newest_of_articles(&mut conn, article_ids, MAX_PLAIN_COMMENTS).await? {
        by_article.entry(c.article_id).or_default().push(c);
    }
    Ok(by_article)
}
