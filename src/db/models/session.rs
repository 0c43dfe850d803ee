//! Sessions (refresh-token families) and their refresh tokens.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::db::schema::{refresh_tokens, sessions, users};

#[derive(Debug, Insertable)]
#[diesel(table_name = sessions)]
pub struct NewSession {
    pub user_id: Uuid,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = refresh_tokens)]
pub struct NewRefreshToken<'a> {
    pub session_id: Uuid,
    pub token_hash: &'a [u8],
    pub expires_at: DateTime<Utc>,
}

/// What a presented refresh token turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshTokenState {
    /// Never seen (or pruned).
    Unknown,
    /// Fresh: it has now been marked used and may be exchanged once.
    Claimed {
        session_id: Uuid,
        expires_at: DateTime<Utc>,
    },
    /// Already rotated: presenting it again is reuse.
    AlreadyUsed { session_id: Uuid },
}

pub async fn insert_session(conn: &mut AsyncPgConnection, new: &NewSession) -> QueryResult<Uuid> {
    diesel::insert_into(sessions::table)
        .values(new)
        .returning(sessions::id)
        .get_result(conn)
        .await
}

pub async fn insert_refresh_token(
    conn: &mut AsyncPgConnection,
    new: &NewRefreshToken<'_>,
) -> QueryResult<()> {
    diesel::insert_into(refresh_tokens::table)
        .values(new)
        .execute(conn)
        .await
        .map(drop)
}

/// Marks the token with this digest used, atomically: of two concurrent
/// exchanges of one token, exactly one claims it and the other sees reuse.
pub async fn claim_refresh_token(
    conn: &mut AsyncPgConnection,
    digest: &[u8],
) -> QueryResult<RefreshTokenState> {
    let claimed: Option<(Uuid, DateTime<Utc>)> = diesel::update(refresh_tokens::table)
        .filter(refresh_tokens::token_hash.eq(digest))
        .filter(refresh_tokens::used_at.is_null())
        .set(refresh_tokens::used_at.eq(diesel::dsl::now))
        .returning((refresh_tokens::session_id, refresh_tokens::expires_at))
        .get_result(conn)
        .await
        .optional()?;
    if let Some((session_id, expires_at)) = claimed {
        return Ok(RefreshTokenState::Claimed {
            session_id,
            expires_at,
        });
    }
    let used: Option<Uuid> = refresh_tokens::table
        .filter(refresh_tokens::token_hash.eq(digest))
        .select(refresh_tokens::session_id)
        .first(conn)
        .await
        .optional()?;
    Ok(match used {
        Some(session_id) => RefreshTokenState::AlreadyUsed { session_id },
        None => RefreshTokenState::Unknown,
    })
}

/// Extends a live session to `expires_at` and returns its user, or `None`
/// when the session is revoked, expired, or its user deleted.
pub async fn extend_live_session(
    conn: &mut AsyncPgConnection,
    session_id: Uuid,
    expires_at: DateTime<Utc>,
) -> QueryResult<Option<Uuid>> {
    let user_id: Option<Uuid> = diesel::update(sessions::table)
        .filter(sessions::id.eq(session_id))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(diesel::dsl::now))
        .filter(diesel::dsl::exists(
            users::table
                .filter(users::id.eq(sessions::user_id))
                .filter(users::deleted_at.is_null()),
        ))
        .set(sessions::expires_at.eq(expires_at))
        .returning(sessions::user_id)
        .get_result(conn)
        .await
        .optional()?;
    Ok(user_id)
}

/// True when the session is live and belongs to a live `user_id`.
pub async fn is_live(
    conn: &mut AsyncPgConnection,
    session_id: Uuid,
    user_id: Uuid,
) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        sessions::table
            .inner_join(users::table)
            .filter(sessions::id.eq(session_id))
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::revoked_at.is_null())
            .filter(sessions::expires_at.gt(diesel::dsl::now))
            .filter(users::deleted_at.is_null()),
    ))
    .get_result(conn)
    .await
}

pub async fn revoke(conn: &mut AsyncPgConnection, session_id: Uuid) -> QueryResult<usize> {
    diesel::update(sessions::table)
        .filter(sessions::id.eq(session_id))
        .filter(sessions::revoked_at.is_null())
        .set(sessions::revoked_at.eq(diesel::dsl::now))
        .execute(conn)
        .await
}

/// Revokes every live session of `user_id` except `keep`.
pub async fn revoke_all_for_user(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    keep: Option<Uuid>,
) -> QueryResult<usize> {
    let mut query = diesel::update(sessions::table)
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::revoked_at.is_null())
        .into_boxed();
    if let Some(keep) = keep {
        query = query.filter(sessions::id.ne(keep));
    }
    query
        .set(sessions::revoked_at.eq(diesel::dsl::now))
        .execute(conn)
        .await
}
