//! Signing secrets at rest: sealed with AES-256-GCM when
//! `WEBHOOK_SECRETS_KEY` is set (production requires it), so a copy of the
//! database alone does not let anyone sign webhooks in a user's name.
//! Without the key they are stored as they are (development).
//!
//! A stored value says how it was made: `sealed:v2:` and the base64 of
//! nonce and ciphertext, or the secret itself. Version 2 seals under a key
//! derived from `WEBHOOK_SECRETS_KEY` with HKDF-SHA256 and binds the secret
//! to its endpoint (the endpoint's id is the associated data), so a sealed
//! value copied onto another endpoint's row does not open. Version 1 (the
//! plain SHA-256 of the key, bound to nothing) is recognised and refused,
//! never opened as version 2: such secrets are rotated.

use aes_gcm::{
    Aes256Gcm, KeyInit, Nonce,
    aead::{Aead, AeadCore, OsRng, Payload},
};
use base64::{Engine as _, engine::general_purpose::STANDARD};
use hkdf::Hkdf;
use sha2::Sha256;
use uuid::Uuid;

const SEALED: &str = "sealed:v2:";
/// What every sealed value starts with, whatever its version.
const ANY_SEALED: &str = "sealed:";
/// HKDF's `info`: the key it derives serves this purpose only.
const KEY_PURPOSE: &[u8] = b"conduit webhook endpoint signing secrets, sealed:v2";
const NONCE_BYTES: usize = 12;

/// Why a stored secret cannot be used. Shown in the server's log only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Stored unsealed, but a key is set: a value anyone with the database
    /// could have written is not trusted to sign.
    #[error(
        "the secret is stored unsealed (from before WEBHOOK_SECRETS_KEY was set); rotate it to seal it"
    )]
    Unsealed,
    /// Sealed, but no key is set.
    #[error("the secret is sealed but WEBHOOK_SECRETS_KEY is not set")]
    NoKey,
    /// Sealed in a format this version does not open (`sealed:v1:`).
    #[error("the secret is sealed in an older format; rotate it to seal it again")]
    OldFormat,
    /// Sealed under another key, for another endpoint, or damaged.
    #[error(
        "the secret does not open: sealed under another WEBHOOK_SECRETS_KEY, for another endpoint, or damaged"
    )]
    DoesNotOpen,
}

/// Seals and opens stored secrets. Cheap to clone.
#[derive(Clone)]
pub struct Sealer(Option<Aes256Gcm>);

impl Sealer {
    /// A sealer under the key HKDF-SHA256 derives from `key`, or one that
    /// stores secrets as they are when there is no key.
    pub fn new(key: Option<&str>) -> Self {
        Self(key.map(|key| {
            let mut derived = [0u8; 32];
            Hkdf::<Sha256>::new(None, key.as_bytes())
                .expand(KEY_PURPOSE, &mut derived)
                .expect("32 bytes is a valid HKDF-SHA256 output length");
            Aes256Gcm::new(&derived.into())
        }))
    }

    /// What to store for `secret`, the secret of endpoint `endpoint_id`.
    pub fn seal(&self, endpoint_id: Uuid, secret: &str) -> String {
        let Some(cipher) = &self.0 else {
            return secret.to_owned();
        };
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let payload = Payload {
            msg: secret.as_bytes(),
            aad: endpoint_id.as_bytes(),
        };
        let sealed = cipher
            .encrypt(&nonce, payload)
            .expect("AES-GCM seals any secret of ours");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        format!("{SEALED}{}", STANDARD.encode(bytes))
    }

    /// The secret `stored` holds for endpoint `endpoint_id`.
    pub fn open(&self, endpoint_id: Uuid, stored: &str) -> Result<String, OpenError> {
        let Some(sealed) = stored.strip_prefix(SEALED) else {
            return match (&self.0, stored.starts_with(ANY_SEALED)) {
                (_, true) => Err(OpenError::OldFormat),
                (Some(_), false) => Err(OpenError::Unsealed),
                (None, false) => Ok(stored.to_owned()),
            };
        };
        let cipher = self.0.as_ref().ok_or(OpenError::NoKey)?;
        let bytes = STANDARD
            .decode(sealed)
            .map_err(|_| OpenError::DoesNotOpen)?;
        if bytes.len() <= NONCE_BYTES {
            return Err(OpenError::DoesNotOpen);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(|_| OpenError::DoesNotOpen)?;
        let payload = Payload {
            msg: sealed,
            aad: endpoint_id.as_bytes(),
        };
        let opened = cipher
            .decrypt(&Nonce::from(nonce), payload)
            .map_err(|_| OpenError::DoesNotOpen)?;
        String::from_utf8(opened).map_err(|_| OpenError::DoesNotOpen)
    }
}

#[cfg(test)]
mod tests {
    use aes_gcm::aead::Aead;
    use sha2::Digest;

    use super::*;

    const KEY: &str = "a key of the deployment";

    #[test]
    fn sealed_secrets_open_only_under_their_key() {
        let sealer = Sealer::new(Some(KEY));
        let endpoint = Uuid::now_v7();
        let sealed = sealer.seal(endpoint, "whsec_abc");
        assert!(
            sealed.starts_with(SEALED) && !sealed.contains("abc"),
            "{sealed}"
        );
        assert_ne!(
            sealer.seal(endpoint, "whsec_abc"),
            sealed,
            "a fresh nonce each time"
        );
        assert_eq!(sealer.open(endpoint, &sealed).as_deref(), Ok("whsec_abc"));
        assert_eq!(
            Sealer::new(Some("another key")).open(endpoint, &sealed),
            Err(OpenError::DoesNotOpen)
        );
        assert_eq!(
            Sealer::new(None).open(endpoint, &sealed),
            Err(OpenError::NoKey)
        );
    }

    #[test]
    fn a_sealed_secret_opens_only_for_its_own_endpoint() {
        let sealer = Sealer::new(Some(KEY));
        let (mine, theirs) = (Uuid::now_v7(), Uuid::now_v7());
        let sealed = sealer.seal(mine, "whsec_abc");
        assert_eq!(
            sealer.open(theirs, &sealed),
            Err(OpenError::DoesNotOpen),
            "copied onto another endpoint's row"
        );
        assert_eq!(sealer.open(mine, &sealed).as_deref(), Ok("whsec_abc"));
    }

    #[test]
    fn the_sealing_key_is_derived_not_the_raw_or_hashed_value() {
        let endpoint = Uuid::now_v7();
        let sealed = Sealer::new(Some(KEY)).seal(endpoint, "whsec_abc");
        let bytes = STANDARD.decode(&sealed[SEALED.len()..]).unwrap();
        let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
        let nonce = Nonce::from(<[u8; NONCE_BYTES]>::try_from(nonce).unwrap());
        let opens_under = |key: &[u8]| {
            Aes256Gcm::new_from_slice(key)
                .unwrap()
                .decrypt(
                    &nonce,
                    Payload {
                        msg: ciphertext,
                        aad: endpoint.as_bytes(),
                    },
                )
                .is_ok()
        };
        assert!(!opens_under(&Sha256::digest(KEY.as_bytes())));
        let mut derived = [0u8; 32];
        Hkdf::<Sha256>::new(None, KEY.as_bytes())
            .expand(KEY_PURPOSE, &mut derived)
            .unwrap();
        assert!(opens_under(&derived));
    }

    #[test]
    fn with_a_key_an_unsealed_secret_is_refused() {
        let endpoint = Uuid::now_v7();
        assert_eq!(
            Sealer::new(Some(KEY)).open(endpoint, "whsec_abc"),
            Err(OpenError::Unsealed)
        );
    }

    #[test]
    fn a_secret_sealed_by_the_first_format_is_refused_as_old() {
        // How version 1 sealed: AES-256-GCM under the SHA-256 of the key,
        // no associated data.
        let cipher = Aes256Gcm::new(&Sha256::digest(KEY.as_bytes()));
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let mut bytes = nonce.to_vec();
        bytes.extend(cipher.encrypt(&nonce, b"whsec_abc".as_slice()).unwrap());
        let v1 = format!("sealed:v1:{}", STANDARD.encode(bytes));
        let endpoint = Uuid::now_v7();
        assert_eq!(
            Sealer::new(Some(KEY)).open(endpoint, &v1),
            Err(OpenError::OldFormat)
        );
        assert_eq!(
            Sealer::new(None).open(endpoint, &v1),
            Err(OpenError::OldFormat)
        );
    }

    #[test]
    fn damaged_values_do_not_open() {
        let sealer = Sealer::new(Some(KEY));
        let endpoint = Uuid::now_v7();
        for stored in ["sealed:v2:", "sealed:v2:not base64!", "sealed:v2:AAAA"] {
            assert_eq!(
                sealer.open(endpoint, stored),
                Err(OpenError::DoesNotOpen),
                "{stored}"
            );
        }
        // One character of the ciphertext changed.
        let mut sealed = sealer.seal(endpoint, "whsec_abc").into_bytes();
        let at = SEALED.len() + 24;
        sealed[at] = if sealed[at] == b'A' { b'B' } else { b'A' };
        let sealed = String::from_utf8(sealed).unwrap();
        assert_eq!(sealer.open(endpoint, &sealed), Err(OpenError::DoesNotOpen));
    }

    #[test]
    fn without_a_key_secrets_are_kept_as_they_are() {
        let sealer = Sealer::new(None);
        let endpoint = Uuid::now_v7();
        assert_eq!(sealer.seal(endpoint, "whsec_abc"), "whsec_abc");
        assert_eq!(
            sealer.open(endpoint, "whsec_abc").as_deref(),
            Ok("whsec_abc")
        );
    }
}
