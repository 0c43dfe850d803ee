//! The `follows` table: who follows whom.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::{
    page::{Keyset, Page, PageRequest},
    user::User,
};
use crate::{
    db::schema::{follows, users},
    paginate,
};

/// Follows a user; `false` if already following.
pub async fn add(
    conn: &mut AsyncPgConnection,
    follower_id: Uuid,
    followee_id: Uuid,
) -> QueryResult<bool> {
    let inserted = diesel::insert_into(follows::table)
        .values((
            follows::follower_id.eq(follower_id),
            follows::followee_id.eq(followee_id),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(inserted == 1)
}

/// Unfollows a user; `false` if not following.
pub async fn remove(
    conn: &mut AsyncPgConnection,
    follower_id: Uuid,
    followee_id: Uuid,
) -> QueryResult<bool> {
    let deleted = diesel::delete(
        follows::table
            .filter(follows::follower_id.eq(follower_id))
            .filter(follows::followee_id.eq(followee_id)),
    )
    .execute(conn)
    .await?;
    Ok(deleted == 1)
}

/// Which of `user_ids` the follower follows.
pub async fn followed_among(
    conn: &mut AsyncPgConnection,
    follower_id: Uuid,
    user_ids: &[Uuid],
) -> QueryResult<Vec<Uuid>> {
    if user_ids.is_empty() {
        return Ok(Vec::new());
    }
    follows::table
        .filter(follows::follower_id.eq(follower_id))
        .filter(follows::followee_id.eq_any(user_ids))
        .select(follows::followee_id)
        .load(conn)
        .await
}

/// Which of `follower_ids` follow `followee_id`.
pub async fn followers_among(
    conn: &mut AsyncPgConnection,
    followee_id: Uuid,
    follower_ids: &[Uuid],
) -> QueryResult<Vec<Uuid>> {
    if follower_ids.is_empty() {
        return Ok(Vec::new());
    }
    follows::table
        .filter(follows::followee_id.eq(followee_id))
        .filter(follows::follower_id.eq_any(follower_ids))
        .select(follows::follower_id)
        .load(conn)
        .await
}

/// One page of a user's live followers, most recent follow first; each
/// with the keyset of its follow.
pub async fn followers(
    conn: &mut AsyncPgConnection,
    followee_id: Uuid,
    page: &PageRequest,
) -> QueryResult<Page<(User, Keyset)>> {
    let query = follows::table
        .inner_join(users::table.on(users::id.eq(follows::follower_id)))
        .filter(follows::followee_id.eq(followee_id))
        .filter(users::deleted_at.is_null())
        .select((User::as_select(), follows::created_at))
        .into_boxed();
    let rows: Vec<(User, DateTime<Utc>)> =
        paginate!(query, page, follows::created_at, follows::follower_id)
            .load(conn)
            .await?;
    let page = page.finish(rows);
    Ok(Page {
        has_more: page.has_more,
        rows: page
            .rows
            .into_iter()
            .map(|(user, created_at)| {
                let id = user.id;
                (user, Keyset { created_at, id })
            })
            .collect(),
    })
}
