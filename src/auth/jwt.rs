//! Short-lived access tokens: HS256 JWTs with `iss`, `aud`, `exp`, `iat`
//! and `sub` required, and a `kid` naming the key so keys can rotate.

use std::{collections::HashMap, time::Duration};

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub const ISSUER: &str = "conduit";
pub const AUDIENCE: &str = "conduit";
const ALGORITHM: Algorithm = Algorithm::HS256;
/// Clock skew tolerated between instances.
const LEEWAY_SECS: u64 = 30;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    /// The user id.
    pub sub: Uuid,
    /// The session (refresh-token family) the token was issued for.
    pub sid: Uuid,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
}

/// Why a presented token was refused. Clients see only whether it expired
/// (see [`super::TokenRejection`]); the reason goes to the log.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token header has no known key id")]
    UnknownKey,
    #[error("token issued in the future")]
    IssuedInFuture,
    #[error(transparent)]
    Invalid(#[from] jsonwebtoken::errors::Error),
}

impl TokenError {
    /// A genuine token of ours whose time is up.
    pub fn is_expired(&self) -> bool {
        matches!(self, Self::Invalid(e) if *e.kind() == jsonwebtoken::errors::ErrorKind::ExpiredSignature)
    }

    /// Well-formed but not made by us: a bad signature, a key id or
    /// algorithm we never use, or claims we never issue on a signature that
    /// verified. Worth an operator's attention, unlike a truncated or
    /// expired token.
    pub fn is_forgery(&self) -> bool {
        use jsonwebtoken::errors::ErrorKind;
        match self {
            Self::UnknownKey | Self::IssuedInFuture => true,
            Self::Invalid(e) => matches!(
                e.kind(),
                ErrorKind::InvalidSignature
                    | ErrorKind::InvalidAlgorithm
                    | ErrorKind::InvalidIssuer
                    | ErrorKind::InvalidAudience
                    | ErrorKind::InvalidSubject
                    | ErrorKind::ImmatureSignature
                    | ErrorKind::MissingRequiredClaim(_)
            ),
        }
    }
}

pub struct JwtKeys {
    current_kid: String,
    encoding: EncodingKey,
    decoding: HashMap<String, DecodingKey>,
    validation: Validation,
    ttl: Duration,
}

/// A key id derived from the secret: stable across instances, reveals nothing.
pub fn key_id(secret: &str) -> String {
    let digest = Sha256::digest(format!("conduit-jwt-kid:{secret}").as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

impl JwtKeys {
    pub fn new(secret: &str, previous: &[String], ttl: Duration) -> Self {
        let mut decoding = HashMap::new();
        for s in previous.iter().map(String::as_str).chain([secret]) {
            decoding.insert(key_id(s), DecodingKey::from_secret(s.as_bytes()));
        }
        let mut validation = Validation::new(ALGORITHM);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iat", "sub", "iss", "aud"]);
        validation.leeway = LEEWAY_SECS;
        Self {
            current_kid: key_id(secret),
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding,
            validation,
            ttl,
        }
    }

    /// Signs a token for `user_id` in `session_id`; returns it and its expiry.
    pub fn issue(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        now: DateTime<Utc>,
    ) -> anyhow::Result<(String, DateTime<Utc>)> {
        let expires_at = now + self.ttl;
        let claims = AccessClaims {
            sub: user_id,
            sid: session_id,
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
        };
        let mut header = Header::new(ALGORITHM);
        header.kid = Some(self.current_kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.encoding)?;
        Ok((token, expires_at))
    }

    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let header = jsonwebtoken::decode_header(token)?;
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.decoding.get(kid))
            .ok_or(TokenError::UnknownKey)?;
        let claims = jsonwebtoken::decode::<AccessClaims>(token, key, &self.validation)?.claims;
        if claims.iat > Utc::now().timestamp() + LEEWAY_SECS as i64 {
            return Err(TokenError::IssuedInFuture);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};

    fn keys() -> JwtKeys {
        JwtKeys::new("a-test-secret", &[], Duration::from_secs(900))
    }

    #[test]
    fn round_trip_carries_user_and_session() {
        let (user, session) = (Uuid::new_v4(), Uuid::new_v4());
        let (token, exp) = keys().issue(user, session, Utc::now()).unwrap();
        let claims = keys().verify(&token).unwrap();
        assert_eq!((claims.sub, claims.sid), (user, session));
        assert_eq!(claims.exp, exp.timestamp());
    }

    #[test]
    fn rotated_keys_still_verify_and_unknown_keys_do_not() {
        let old = JwtKeys::new("old-secret", &[], Duration::from_secs(900));
        let (token, _) = old
            .issue(Uuid::new_v4(), Uuid::new_v4(), Utc::now())
            .unwrap();
        let rotated = JwtKeys::new(
            "new-secret",
            &["old-secret".into()],
            Duration::from_secs(900),
        );
        assert!(rotated.verify(&token).is_ok());
        assert!(matches!(keys().verify(&token), Err(TokenError::UnknownKey)));
    }

    #[test]
    fn refusals_are_told_apart() {
        let long_ago = Utc::now() - chrono::Duration::hours(2);
        let (expired, _) = keys()
            .issue(Uuid::new_v4(), Uuid::new_v4(), long_ago)
            .unwrap();
        let expired = keys().verify(&expired).unwrap_err();
        assert!(expired.is_expired() && !expired.is_forgery());

        let other = JwtKeys::new("another-secret", &[], Duration::from_secs(900));
        let (foreign, _) = other
            .issue(Uuid::new_v4(), Uuid::new_v4(), Utc::now())
            .unwrap();
        let unknown_key = keys().verify(&foreign).unwrap_err();
        assert!(unknown_key.is_forgery() && !unknown_key.is_expired());

        let (genuine, _) = keys()
            .issue(Uuid::new_v4(), Uuid::new_v4(), Utc::now())
            .unwrap();
        let (head, _) = genuine.rsplit_once('.').unwrap();
        let resigned = keys().verify(&format!("{head}.AAAA")).unwrap_err();
        assert!(resigned.is_forgery());

        let garbage = keys().verify("not.a.jwt").unwrap_err();
        assert!(!garbage.is_forgery() && !garbage.is_expired());
    }

    #[test]
    fn expired_and_unsigned_tokens_are_refused() {
        let long_ago = Utc::now() - chrono::Duration::hours(2);
        let (token, _) = keys()
            .issue(Uuid::new_v4(), Uuid::new_v4(), long_ago)
            .unwrap();
        assert!(keys().verify(&token).is_err());

        let (token, _) = keys()
            .issue(Uuid::new_v4(), Uuid::new_v4(), Utc::now())
            .unwrap();
        let payload = token.split('.').nth(1).unwrap();
        let kid = key_id("a-test-secret");
        let header =
            URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"none","typ":"JWT","kid":"{kid}"}}"#));
        assert!(keys().verify(&format!("{header}.{payload}.")).is_err());
    }
}
