//! Sessions: signing in creates one, refreshing rotates its token, signing
//! out revokes it. An access token is honoured only while its session lives.

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use uuid::Uuid;

use crate::{
    auth::{TokenRejection, Viewer, refresh},
    db::models::session::{self, NewRefreshToken, NewSession, RefreshTokenState},
    error::{AppError, AppResult, FieldError, UserErrorCode},
    state::AppState,
};

/// What a client keeps after signing in or refreshing.
#[derive(Debug, Clone)]
pub struct SessionTokens {
    pub user_id: Uuid,
    pub access_token: String,
    pub access_token_expires_at: DateTime<Utc>,
    pub refresh_token: String,
}

/// Starts a session for `user_id` on `conn` (inside the caller's transaction).
pub(crate) async fn start(
    state: &AppState,
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
) -> AppResult<SessionTokens> {
    let now = Utc::now();
    let expires_at = now + state.refresh_token_ttl;
    let session_id = session::insert_session(
        conn,
        &NewSession {
            user_id,
            expires_at,
        },
    )
    .await?;
    issue(state, conn, user_id, session_id, now, expires_at).await
}

async fn issue(
    state: &AppState,
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    session_id: Uuid,
    now: DateTime<Utc>,
    refresh_expires_at: DateTime<Utc>,
) -> AppResult<SessionTokens> {
    // The account's next reads carry this session's token.
    state.db.wrote_for(user_id);
    let refresh_token = refresh::generate_token();
    session::insert_refresh_token(
        conn,
        &NewRefreshToken {
            session_id,
            token_hash: &refresh::digest(&refresh_token),
            expires_at: refresh_expires_at,
        },
    )
    .await?;
    let (access_token, access_token_expires_at) = state.jwt.issue(user_id, session_id, now)?;
    Ok(SessionTokens {
        user_id,
        access_token,
        access_token_expires_at,
        refresh_token,
    })
}

fn refused() -> AppError {
    AppError::Invalid(vec![FieldError::new(
        "refreshToken",
        UserErrorCode::Invalid,
        "refresh token is invalid or expired; sign in again",
    )])
}

enum RefreshOutcome {
    Issued(SessionTokens),
    Refused,
    Reused(Uuid),
}

/// Exchanges a refresh token for a new access token and a new refresh
/// token. The presented token is spent; presenting a spent token again
/// revokes its whole session, since only a thief would do that.
pub async fn refresh(state: &AppState, refresh_token: &str) -> AppResult<SessionTokens> {
    let digest = refresh::digest(refresh_token);
    let now = Utc::now();
    let mut conn = state.db.conn().await?;
    let outcome = conn
        .transaction(async |conn| -> AppResult<RefreshOutcome> {
            match session::claim_refresh_token(conn, &digest).await? {
                RefreshTokenState::Unknown => Ok(RefreshOutcome::Refused),
                RefreshTokenState::AlreadyUsed { session_id } => {
                    session::revoke(conn, session_id).await?;
                    Ok(RefreshOutcome::Reused(session_id))
                }
                RefreshTokenState::Claimed {
                    session_id,
                    expires_at,
                } => {
                    if expires_at <= now {
                        return Ok(RefreshOutcome::Refused);
                    }
                    let new_expiry = now + state.refresh_token_ttl;
                    let Some(user_id) =
                        session::extend_live_session(conn, session_id, new_expiry).await?
                    else {
                        return Ok(RefreshOutcome::Refused);
                    };
                    let tokens = issue(state, conn, user_id, session_id, now, new_expiry).await?;
                    Ok(RefreshOutcome::Issued(tokens))
                }
            }
        })
        .await?;
    match outcome {
        RefreshOutcome::Issued(tokens) => Ok(tokens),
        RefreshOutcome::Refused => Err(refused()),
        RefreshOutcome::Reused(session_id) => {
            tracing::warn!(%session_id, "spent refresh token presented again; session revoked");
            Err(refused())
        }
    }
}

/// The viewer named by a bearer access token, if the token verifies and its
/// session and user are still live; otherwise why not. Only a database
/// failure is an error: a bad token makes an anonymous request.
pub async fn authenticate(
    state: &AppState,
    access_token: &str,
) -> AppResult<Result<Viewer, TokenRejection>> {
    let claims = match state.jwt.verify(access_token) {
        Ok(claims) => claims,
        Err(reason) if reason.is_expired() => {
            tracing::debug!(%reason, "expired access token");
            return Ok(Err(TokenRejection::Expired));
        }
        Err(reason) if reason.is_forgery() => {
            tracing::warn!(
                %reason,
                "access token refused: not signed by a current key, or with claims never issued"
            );
            return Ok(Err(TokenRejection::Invalid));
        }
        Err(reason) => {
            tracing::debug!(%reason, "malformed access token refused");
            return Ok(Err(TokenRejection::Invalid));
        }
    };
    let mut conn = state.db.conn().await?;
    if !session::is_live(&mut conn, claims.sid, claims.sub).await? {
        tracing::debug!(session_id = %claims.sid, "access token of an ended session");
        return Ok(Err(TokenRejection::SessionRevoked));
    }
    Ok(Ok(Viewer {
        user_id: claims.sub,
        session_id: claims.sid,
        token_expires_at: claims.exp,
    }))
}

/// Ends the viewer's current session.
pub async fn sign_out(state: &AppState, viewer: &Viewer) -> AppResult<()> {
    let mut conn = state.db.conn().await?;
    session::revoke(&mut conn, viewer.session_id).await?;
    Ok(())
}

/// Ends every session of the viewer, this one included.
pub async fn sign_out_everywhere(state: &AppState, viewer: &Viewer) -> AppResult<usize> {
    let mut conn = state.db.conn().await?;
    Ok(session::revoke_all_for_user(&mut conn, viewer.user_id, None).await?)
}
