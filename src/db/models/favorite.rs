//! The `favorites` table: who favorited which article.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::db::schema::favorites;

/// Favorites an article; `false` if it already was.
pub async fn add(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    article_id: Uuid,
) -> QueryResult<bool> {
    let inserted = diesel::insert_into(favorites::table)
        .values((
            favorites::user_id.eq(user_id),
            favorites::article_id.eq(article_id),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(inserted == 1)
}

/// Unfavorites an article; `false` if it was not a favorite.
pub async fn remove(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    article_id: Uuid,
) -> QueryResult<bool> {
    let deleted = diesel::delete(
        favorites::table
            .filter(favorites::user_id.eq(user_id))
            .filter(favorites::article_id.eq(article_id)),
    )
    .execute(conn)
    .await?;
    Ok(deleted == 1)
}

/// Which of `article_ids` the user has favorited.
pub async fn favorited_among(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    article_ids: &[Uuid],
) -> QueryResult<Vec<Uuid>> {
    if article_ids.is_empty() {
        return Ok(Vec::new());
    }
    favorites::table
        .filter(favorites::user_id.eq(user_id))
        .filter(favorites::article_id.eq_any(article_ids))
        .select(favorites::article_id)
        .load(conn)
        .await
}
