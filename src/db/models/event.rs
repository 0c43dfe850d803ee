//! What happened, in commit order (see the events migration): the rows
//! subscriptions replay and go live from.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::db::schema::{events, follows};

/// One recorded event. Which ids are set depends on `kind`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = events, check_for_backend(diesel::pg::Pg))]
pub struct Event {
    pub id: i64,
    pub kind: String,
    pub article_id: Option<Uuid>,
    pub comment_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    pub session_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    /// Who did it, where that is not `user_id` (favorites, follows).
    pub actor_id: Option<Uuid>,
}

/// The event kinds, as the triggers write them.
pub mod kind {
    pub const COMMENT_ADDED: &str = "comment_added";
    pub const COMMENT_DELETED: &str = "comment_deleted";
    pub const ARTICLE_PUBLISHED: &str = "article_published";
    pub const ARTICLE_UPDATED: &str = "article_updated";
    pub const ARTICLE_DELETED: &str = "article_deleted";
    pub const SESSION_REVOKED: &str = "session_revoked";
    pub const ARTICLE_FAVORITED: &str = "article_favorited";
    pub const USER_FOLLOWED: &str = "user_followed";
    pub const USER_UNFOLLOWED: &str = "user_unfollowed";
    pub const USER_CREATED: &str = "user_created";
    pub const USER_UPDATED: &str = "user_updated";
    pub const ARTICLE_UNFAVORITED: &str = "article_unfavorited";
    pub const ARTICLE_FAVORITES_CHANGED: &str = "article_favorites_changed";
}

pub async fn find(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<Option<Event>> {
    events::table
        .find(id)
        .select(Event::as_select())
        .first(conn)
        .await
        .optional()
}

/// Removes up to `limit` events recorded before `before`; returns how many.
pub async fn purge_before(
    conn: &mut AsyncPgConnection,
    before: DateTime<Utc>,
    limit: i64,
) -> QueryResult<usize> {
    diesel::sql_query(
        "DELETE FROM events WHERE id IN ( \
             SELECT id FROM events WHERE created_at < $1 ORDER BY id LIMIT $2)",
    )
    .bind::<diesel::sql_types::Timestamptz, _>(before)
    .bind::<diesel::sql_types::BigInt, _>(limit)
    .execute(conn)
    .await
}

/// Events after `after`, oldest first, at most `limit`.
pub async fn after(
    conn: &mut AsyncPgConnection,
    after: i64,
    limit: i64,
) -> QueryResult<Vec<Event>> {
    events::table
        .filter(events::id.gt(after))
        .order(events::id.asc())
        .limit(limit)
        .select(Event::as_select())
        .load(conn)
        .await
}

/// The newest event's id (0 when there is none).
pub async fn last_id(conn: &mut AsyncPgConnection) -> QueryResult<i64> {
    events::table
        .select(diesel::dsl::max(events::id))
        .first::<Option<i64>>(conn)
        .await
        .map(Option::unwrap_or_default)
}

/// One article's events after `after`, oldest first, at most `limit`.
pub async fn of_article_after(
    conn: &mut AsyncPgConnection,
    article_id: Uuid,
    after: i64,
    limit: i64,
) -> QueryResult<Vec<Event>> {
    events::table
        .filter(events::article_id.eq(article_id))
        .filter(events::id.gt(after))
        .order(events::id.asc())
        .limit(limit)
        .select(Event::as_select())
        .load(conn)
        .await
}

/// Articles published after `after` by authors `follower_id` follows,
/// oldest first, at most `limit`.
pub async fn published_for_follower_after(
    conn: &mut AsyncPgConnection,
    follower_id: Uuid,
    after: i64,
    limit: i64,
) -> QueryResult<Vec<Event>> {
    let followed = follows::table
        .filter(follows::follower_id.eq(follower_id))
        .select(follows::followee_id.nullable());
    events::table
        .filter(events::kind.eq(kind::ARTICLE_PUBLISHED))
        .filter(events::user_id.eq_any(followed))
        .filter(events::id.gt(after))
        .order(events::id.asc())
        .limit(limit)
        .select(Event::as_select())
        .load(conn)
        .await
}
