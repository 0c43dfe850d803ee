//! Credentials: password hashing, access tokens (JWT) and refresh tokens.

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
}
