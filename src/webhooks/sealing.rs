//! Signing secrets at rest: sealed with AES-256-GCM when
//! `WEBHOOK_SECRETS_KEY` is set, so a copy of the database alone does not
//! let anyone sign webhooks in a user's name. Without the key they are
//! stored as they are (development).

use aes_gcm::{
    Aes256Gcm, KeyInit, Nonce,
    aead::{Aead, AeadCore, OsRng},
};
use base64::{Engine as _, engine::general_purpose::STANDARD};
use sha2::{Digest, Sha256};

const SEALED: &str = "sealed:v1:";
const NONCE_BYTES: usize = 12;

/// Seals and opens stored secrets. Cheap to clone.
#[derive(Clone)]
pub struct Sealer(Option<Aes256Gcm>);

impl Sealer {
    /// A sealer under the SHA-256 of `key`, or one that stores secrets as
    /// they are when there is no key.
    pub fn new(key: Option<&str>) -> Self {
        Self(key.map(|key| Aes256Gcm::new(&Sha256::digest(key.as_bytes()))))
    }

    /// What to store for `secret`.
    pub fn seal(&self, secret: &str) -> String {
        let Some(cipher) = &self.0 else {
            return secret.to_owned();
        };
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = cipher
            .encrypt(&nonce, secret.as_bytes())
            .expect("AES-GCM seals any secret of ours");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        format!("{SEALED}{}", STANDARD.encode(bytes))
    }

    /// The secret a stored value holds; `None` when it was sealed under
    /// another key (or there is no key now).
    pub fn open(&self, stored: &str) -> Option<String> {
        let Some(sealed) = stored.strip_prefix(SEALED) else {
            return Some(stored.to_owned());
        };
        let bytes = STANDARD.decode(sealed).ok()?;
        if bytes.len() <= NONCE_BYTES {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().ok()?;
        let opened = self.0.as_ref()?.decrypt(&Nonce::from(nonce), sealed).ok()?;
        String::from_utf8(opened).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_under_their_key() {
        let sealer = Sealer::new(Some("a key of the deployment"));
        let sealed = sealer.seal("whsec_abc");
        assert!(
            sealed.starts_with(SEALED) && !sealed.contains("abc"),
            "{sealed}"
        );
        assert_ne!(sealer.seal("whsec_abc"), sealed, "a fresh nonce each time");
        assert_eq!(sealer.open(&sealed).as_deref(), Some("whsec_abc"));
        assert_eq!(Sealer::new(Some("another key")).open(&sealed), None);
        assert_eq!(Sealer::new(None).open(&sealed), None);
    }

    #[test]
    fn without_a_key_secrets_are_kept_as_they_are() {
        let sealer = Sealer::new(None);
        assert_eq!(sealer.seal("whsec_abc"), "whsec_abc");
        assert_eq!(sealer.open("whsec_abc").as_deref(), Some("whsec_abc"));
        // Secrets stored before a key was set still open under it.
        assert_eq!(
            Sealer::new(Some("k")).open("whsec_abc").as_deref(),
            Some("whsec_abc")
        );
    }
}
