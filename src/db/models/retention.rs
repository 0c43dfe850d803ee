//! What the retention jobs remove, a small batch per statement: each
//! statement is its own short transaction and locks only the rows it
//! deletes (and what they cascade to).

use chrono::{DateTime, Utc};
use diesel::{
    QueryResult,
    sql_types::{BigInt, Timestamptz},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

/// Tables whose rows are soft-deleted first (`deleted_at`) and removed for
/// good later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SoftDeleted {
    Comments,
    Articles,
    Users,
}

impl SoftDeleted {
    pub const ALL: [Self; 3] = [Self::Comments, Self::Articles, Self::Users];

    pub fn table(self) -> &'static str {
        match self {
            Self::Comments => "comments",
            Self::Articles => "articles",
            Self::Users => "users",
        }
    }
}

/// Removes up to `limit` rows of `table` soft-deleted before `before`.
pub async fn purge_soft_deleted(
    conn: &mut AsyncPgConnection,
    table: SoftDeleted,
    before: DateTime<Utc>,
    limit: i64,
) -> QueryResult<usize> {
    let table = table.table();
    diesel::sql_query(format!(
        "DELETE FROM {table} WHERE id IN ( \
             SELECT id FROM {table} WHERE deleted_at < $1 \
             ORDER BY deleted_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
    ))
    .bind::<Timestamptz, _>(before)
    .bind::<BigInt, _>(limit)
    .execute(conn)
    .await
}

/// Removes up to `limit` sessions that expired or were revoked (their
/// refresh tokens go with them).
pub async fn purge_ended_sessions(conn: &mut AsyncPgConnection, limit: i64) -> QueryResult<usize> {
    diesel::sql_query(
        "DELETE FROM sessions WHERE id IN ( \
             (SELECT id FROM sessions WHERE expires_at < now() LIMIT $1) \
             UNION ALL \
             (SELECT id FROM sessions WHERE revoked_at IS NOT NULL LIMIT $1) \
             LIMIT $1)",
    )
    .bind::<BigInt, _>(limit)
    .execute(conn)
    .await
}

/// Removes up to `limit` expired refresh tokens of sessions still live
/// (a used one is kept until it expires: presenting it again is reuse).
pub async fn purge_expired_refresh_tokens(
    conn: &mut AsyncPgConnection,
    limit: i64,
) -> QueryResult<usize> {
    diesel::sql_query(
        "DELETE FROM refresh_tokens WHERE id IN ( \
             SELECT id FROM refresh_tokens WHERE expires_at < now() LIMIT $1)",
    )
    .bind::<BigInt, _>(limit)
    .execute(conn)
    .await
}
