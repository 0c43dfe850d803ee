//! What happened, in commit order (see the events migration): the rows
//! subscriptions replay and go live from, and the closed set of their
//! kinds.
//!
//! Events of a kind this build does not know (a newer migration's, while
//! instances of two versions run side by side) are not read: no query
//! here returns them, so what follows the events skips them rather than
//! stopping at them.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::text_enum::text_enum;
use crate::db::schema::{events, follows};

text_enum! {
    /// What an event records, as the triggers write it (`events.kind`;
    /// the `events_kind_known` constraint lists the same names, and a test
    /// compares the two).
    pub enum EventKind {
        CommentAdded = "comment_added",
        /// Soft-deleted or removed for good.
        CommentDeleted = "comment_deleted",
        ArticlePublished = "article_published",
        /// An edit: its title, slug, description, body or tags.
        ArticleUpdated = "article_updated",
        /// Soft-deleted or removed for good.
        ArticleDeleted = "article_deleted",
        /// A new favorite (`actor_id` favorited it).
        ArticleFavorited = "article_favorited",
        /// A removed favorite (`actor_id` had favorited it).
        ArticleUnfavorited = "article_unfavorited",
        /// A new favorites count, nothing else.
        ArticleFavoritesChanged = "article_favorites_changed",
        UserCreated = "user_created",
        /// Username, bio, image, or deletion.
        UserUpdated = "user_updated",
        /// `actor_id` followed `user_id`.
        UserFollowed = "user_followed",
        /// `actor_id` no longer follows `user_id`.
        UserUnfollowed = "user_unfollowed",
        /// A session signed out (`session_id`).
        SessionRevoked = "session_revoked",
    }
}

/// One recorded event. Which ids are set depends on `kind`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = events, check_for_backend(diesel::pg::Pg))]
pub struct Event {
    pub id: i64,
    pub kind: EventKind,
    pub article_id: Option<Uuid>,
    pub comment_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    pub session_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    /// Who did it, where that is not `user_id` (favorites, follows).
    pub actor_id: Option<Uuid>,
}

pub async fn find(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<Option<Event>> {
    events::table
        .find(id)
        .filter(events::kind.eq_any(EventKind::ALL))
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
        .filter(events::kind.eq_any(EventKind::ALL))
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
        .filter(events::kind.eq_any(EventKind::ALL))
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
        .filter(events::kind.eq(EventKind::ArticlePublished))
        .filter(events::user_id.eq_any(followed))
        .filter(events::id.gt(after))
        .order(events::id.asc())
        .limit(limit)
        .select(Event::as_select())
        .load(conn)
        .await
}
