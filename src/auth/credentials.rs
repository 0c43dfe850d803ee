//! What a client presents as credentials, and what they come to.

use super::{TokenRejection, Viewer};

/// The access token of an `Authorization` value: `Token <jwt>` (the
/// RealWorld convention) or `Bearer <jwt>`, the scheme in any case. A
/// value of any other shape is an invalid token, not an absent one: the
/// client meant to sign in and is told it did not.
pub fn access_token(authorization: &str) -> Result<&str, TokenRejection> {
    authorization
        .trim()
        .split_once(' ')
        .filter(|(scheme, _)| {
            scheme.eq_ignore_ascii_case("token") || scheme.eq_ignore_ascii_case("bearer")
        })
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty())
        .ok_or_else(|| {
            tracing::debug!("credentials are neither `Token <jwt>` nor `Bearer <jwt>`");
            TokenRejection::Invalid
        })
}

/// Who the credentials name.
#[derive(Debug, Clone, Copy)]
pub struct Credentials {
    pub viewer: Option<Viewer>,
    /// Why presented credentials name nobody; the request is then anonymous.
    pub rejected: Option<TokenRejection>,
}

impl Credentials {
    /// No credentials, or ones that name nobody (`rejected` says why).
    pub fn anonymous(rejected: Option<TokenRejection>) -> Self {
        Self {
            viewer: None,
            rejected,
        }
    }

    pub fn of(viewer: Viewer) -> Self {
        Self {
            viewer: Some(viewer),
            rejected: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_token_and_bearer_schemes() {
        assert_eq!(access_token("Token abc"), Ok("abc"));
        assert_eq!(access_token("bearer  abc "), Ok("abc"));
        assert_eq!(access_token("BEARER abc"), Ok("abc"));
        assert_eq!(access_token("Basic abc"), Err(TokenRejection::Invalid));
        assert_eq!(access_token("Token "), Err(TokenRejection::Invalid));
        assert_eq!(access_token("abc"), Err(TokenRejection::Invalid));
        assert_eq!(access_token(""), Err(TokenRejection::Invalid));
    }
}
