//! Credentials: how a client presents them, password hashing, access
//! tokens (JWT) and refresh tokens.

pub mod credentials;
pub mod jwt;
pub mod password;
pub mod refresh;

use uuid::Uuid;

/// The signed-in user of a request, established from a verified access
/// token whose session is still live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Viewer {
    pub user_id: Uuid,
    pub session_id: Uuid,
    /// When the access token that named the viewer expires (Unix
    /// seconds): a long-lived connection ends there.
    pub token_expires_at: i64,
}

/// Why a presented access token names nobody. The request is served as
/// anonymous; the client is told this so it can refresh or sign in again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRejection {
    /// `TOKEN_EXPIRED`: a genuine token past its `exp`; refresh it.
    Expired,
    /// `SESSION_REVOKED`: a genuine token whose session has ended (signed
    /// out, revoked, password changed, account deleted); sign in again.
    SessionRevoked,
    /// `TOKEN_INVALID`: not a token this server issued (malformed, badly
    /// signed, signed with a retired key, wrong issuer or audience).
    Invalid,
}

impl TokenRejection {
    pub fn code(self) -> &'static str {
        match self {
            Self::Expired => "TOKEN_EXPIRED",
            Self::SessionRevoked => "SESSION_REVOKED",
            Self::Invalid => "TOKEN_INVALID",
        }
    }

    /// What the client is told, in `WWW-Authenticate` and the response's
    /// `extensions`.
    pub fn description(self) -> &'static str {
        match self {
            Self::Expired => "the access token has expired; refresh it or sign in again",
            Self::SessionRevoked => "the session of this access token has ended; sign in again",
            Self::Invalid => "the access token is not valid; sign in again",
        }
    }
}
