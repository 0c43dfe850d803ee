//! Persisted documents: a client names a document by its SHA-256 instead of
//! sending its text.
//!
//! - Automatic persisted queries (Apollo's protocol, the default): a hash the
//!   server has not seen gets `PERSISTED_QUERY_NOT_FOUND`; the client then
//!   sends the text with the hash, the server checks the hash and, once the
//!   pipeline has parsed the text within the limits and charged the caller
//!   for it, keeps it (in this process, or in Redis so every instance knows
//!   it). Anyone may register, so nothing is kept that could not run, and
//!   keeping is paid for like running.
//! - Trusted documents (`TRUSTED_DOCUMENTS`, for production first-party
//!   clients): only the documents of a manifest made at build time run,
//!   named by hash or sent verbatim; anything else is refused.
//!
//! Either way the text is put back on the request before anything else sees
//! it, so limits, rate limits and logging treat both forms alike.
//!
//! The automatic store is a [`DocumentStore`]: [`memory::MemoryDocuments`]
//! for one instance, [`redis::RedisDocuments`] for many, picked from the
//! [`Backend`] (`PERSISTED_QUERIES`) once at start-up.

pub mod memory;
pub mod redis;

use std::{collections::HashMap, path::Path, sync::Arc};

use anyhow::Context;
use async_graphql::Request;
use sha2::{Digest, Sha256};

use crate::{error::ErrorCode, graphql::error::ClientError, redis::Backend};

/// Longest document the automatic cache keeps; longer ones still run, the
/// client just keeps sending their text.
const MAX_STORED_BYTES: usize = 16 * 1024;
/// Keeping a document costs one rate-limit point per this many bytes of
/// it, on top of running it, so what a caller can keep per window is
/// bounded by its budget (a 16 KiB document, the longest kept, costs 1024).
const BYTES_PER_POINT: usize = 16;

/// Why a persisted document cannot be run: errors of the persisted-query
/// protocol, raised here and nowhere else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersistedQueryError {
    /// `PERSISTED_QUERY_NOT_FOUND` ("PersistedQueryNotFound", as Apollo
    /// clients expect): no document is known by that hash; automatic
    /// persisted query clients resend with the text.
    NotFound,
    /// `PERSISTED_QUERY_NOT_SUPPORTED`: persisted queries are turned off.
    NotSupported,
    /// `PERSISTED_QUERY_NOT_TRUSTED`: the server runs only trusted documents
    /// and this is not one of them.
    NotTrusted,
    /// `BAD_USER_INPUT`: the extension or its hash is malformed, or the
    /// hash is not the text's.
    Malformed(&'static str),
}

impl ClientError for PersistedQueryError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::NotFound => ErrorCode::PersistedQueryNotFound,
            Self::NotSupported => ErrorCode::PersistedQueryNotSupported,
            Self::NotTrusted => ErrorCode::PersistedQueryNotTrusted,
            Self::Malformed(_) => ErrorCode::BadUserInput,
        }
    }

    fn client_message(&self) -> String {
        match self {
            Self::NotFound => "PersistedQueryNotFound",
            Self::NotSupported => "PersistedQueryNotSupported",
            Self::NotTrusted => {
                "this server runs only trusted documents, and this is not one of them"
            }
            Self::Malformed(message) => message,
        }
        .to_owned()
    }
}

/// A document sent with its hash for the automatic store to keep: kept by
/// [`PersistedDocuments::keep`] once it parsed, is within the limits and
/// its [`Registration::cost`] was charged.
#[derive(Debug)]
pub struct Registration {
    hash: String,
    cost: usize,
}

impl Registration {
    /// Rate-limit points keeping the document costs.
    pub fn cost(&self) -> usize {
        self.cost
    }
}

/// Where automatically persisted documents are kept, by hash.
#[async_trait::async_trait]
pub trait DocumentStore: Send + Sync {
    /// The document kept under `hash`. A store that cannot answer finds
    /// nothing: it costs the client a round trip with the text, not the
    /// request.
    async fn get(&self, hash: &str) -> Option<Arc<str>>;

    /// Keeps `document` under `hash`; a store that cannot keep it logs
    /// why, and the client keeps sending the text.
    async fn set(&self, hash: String, document: &str);
}

pub enum PersistedDocuments {
    /// Hash-only requests are refused with `PERSISTED_QUERY_NOT_SUPPORTED`.
    Off,
    Automatic(Arc<dyn DocumentStore>),
    /// Hash → document, from the manifest.
    Trusted(HashMap<String, Arc<str>>),
}

impl PersistedDocuments {
    /// Trusted documents when a manifest is given; else automatic
    /// persisted queries kept in `backend`, or none when that is `None`
    /// (`PERSISTED_QUERIES=off`).
    pub fn new(backend: Option<&Backend>, trusted: Option<&Path>) -> anyhow::Result<Self> {
        if let Some(path) = trusted {
            return Self::trusted_from_file(path);
        }
        Ok(match backend {
            None => Self::Off,
            Some(Backend::Memory) => Self::Automatic(Arc::new(memory::MemoryDocuments::default())),
            Some(Backend::Redis(connection)) => {
                Self::Automatic(Arc::new(redis::RedisDocuments::new(connection.clone())))
            }
        })
    }

    /// Reads a manifest: a JSON object from hash (hex SHA-256, optionally
    /// prefixed `sha256:`) to document text, as GraphQL Code Generator's
    /// `persistedDocuments` writes it. Every entry's hash is checked.
    pub fn trusted_from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read TRUSTED_DOCUMENTS `{}`", path.display()))?;
        let manifest: HashMap<String, String> = serde_json::from_str(&text).with_context(|| {
            format!(
                "TRUSTED_DOCUMENTS `{}` is not a JSON object of hash to document",
                path.display()
            )
        })?;
        let mut documents = HashMap::with_capacity(manifest.len());
        for (hash, document) in manifest {
            let hash = normalise(&hash);
            anyhow::ensure!(
                sha256_hex(&document) == hash,
                "TRUSTED_DOCUMENTS `{}`: the document under {hash} does not have that SHA-256",
                path.display()
            );
            documents.insert(hash, Arc::from(document));
        }
        anyhow::ensure!(
            !documents.is_empty(),
            "TRUSTED_DOCUMENTS `{}` holds no documents",
            path.display()
        );
        Ok(Self::Trusted(documents))
    }

    /// Puts the document's text on `request`, from the hash in its
    /// `persistedQuery` extension, or refuses it. A text sent with its hash
    /// comes back as a registration, which keeps nothing yet.
    pub async fn resolve(
        &self,
        request: &mut Request,
    ) -> Result<Option<Registration>, PersistedQueryError> {
        let hash = take_persisted_query(request)?;
        if let Some(hash) = &hash
            && !is_sha256_hex(hash)
        {
            return Err(PersistedQueryError::Malformed(
                "a persisted document's hash must be a hex SHA-256",
            ));
        }
        match self {
            Self::Off => match hash {
                Some(_) if request.query.is_empty() => Err(PersistedQueryError::NotSupported),
                _ => Ok(None),
            },
            Self::Automatic(store) => {
                let Some(hash) = hash else { return Ok(None) };
                if request.query.is_empty() {
                    return match store.get(&hash).await {
                        Some(text) => {
                            request.query = text.to_string();
                            Ok(None)
                        }
                        None => Err(PersistedQueryError::NotFound),
                    };
                }
                if sha256_hex(&request.query) != hash {
                    return Err(PersistedQueryError::Malformed(
                        "the persistedQuery sha256Hash is not the SHA-256 of the query",
                    ));
                }
                let length = request.query.len();
                Ok((length <= MAX_STORED_BYTES).then(|| Registration {
                    hash,
                    cost: length.div_ceil(BYTES_PER_POINT),
                }))
            }
            Self::Trusted(documents) => {
                let trusted = match hash {
                    Some(hash) => {
                        let Some(document) = documents.get(&hash) else {
                            return Err(if request.query.is_empty() {
                                PersistedQueryError::NotFound
                            } else {
                                PersistedQueryError::NotTrusted
                            });
                        };
                        if request.query.is_empty() {
                            request.query = document.to_string();
                        }
                        request.query == **document
                    }
                    None => documents.contains_key(&sha256_hex(&request.query)),
                };
                if trusted {
                    Ok(None)
                } else {
                    Err(PersistedQueryError::NotTrusted)
                }
            }
        }
    }

    /// Keeps `document`, the text `registration` came with.
    pub async fn keep(&self, registration: Registration, document: &str) {
        if let Self::Automatic(store) = self {
            store.set(registration.hash, document).await;
        }
    }
}

/// Removes Apollo's `persistedQuery` extension from `request` and returns
/// its hash.
fn take_persisted_query(request: &mut Request) -> Result<Option<String>, PersistedQueryError> {
    let Some(value) = request.extensions.remove("persistedQuery") else {
        return Ok(None);
    };
    #[derive(serde::Deserialize)]
    struct PersistedQuery {
        version: i32,
        #[serde(rename = "sha256Hash")]
        sha256_hash: String,
    }
    let invalid = || {
        PersistedQueryError::Malformed(
            "extensions.persistedQuery must be {\"version\": 1, \"sha256Hash\": \"<hex>\"}",
        )
    };
    let extension: PersistedQuery = value
        .into_json()
        .map_err(|_| invalid())
        .and_then(|json| serde_json::from_value(json).map_err(|_| invalid()))?;
    if extension.version != 1 {
        return Err(invalid());
    }
    Ok(Some(normalise(&extension.sha256_hash)))
}

fn normalise(hash: &str) -> String {
    hash.strip_prefix("sha256:")
        .unwrap_or(hash)
        .to_ascii_lowercase()
}

fn is_sha256_hex(hash: &str) -> bool {
    hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit())
}

pub fn sha256_hex(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in digest {
        use std::fmt::Write as _;
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    fn automatic() -> PersistedDocuments {
        PersistedDocuments::Automatic(Arc::new(memory::MemoryDocuments::with_capacity(2)))
    }

    fn by_hash(hash: &str) -> Request {
        let mut request = Request::new("");
        request.extensions.insert(
            "persistedQuery".into(),
            async_graphql::Value::from_json(
                serde_json::json!({ "version": 1, "sha256Hash": hash }),
            )
            .unwrap(),
        );
        request
    }

    fn code<T>(result: Result<T, PersistedQueryError>) -> &'static str {
        result.err().map(|e| e.code().as_str()).unwrap_or("OK")
    }

    #[test]
    fn hashes_are_lowercase_hex_sha256() {
        assert_eq!(
            sha256_hex("{ __typename }"),
            "7f56e67dd21ab3f30d1ff8b7bed08893f0a0db86449836189b361dd1e56ddb4b"
        );
    }

    #[tokio::test]
    async fn automatic_queries_register_then_run_by_hash() {
        let documents = automatic();
        let text = "{ __typename }";
        let hash = sha256_hex(text);

        let mut unknown = by_hash(&hash);
        assert_eq!(
            code(documents.resolve(&mut unknown).await),
            "PERSISTED_QUERY_NOT_FOUND"
        );

        let mut wrong = by_hash(&sha256_hex("{ other }"));
        wrong.query = text.into();
        assert_eq!(code(documents.resolve(&mut wrong).await), "BAD_USER_INPUT");

        let mut register = by_hash(&hash);
        register.query = text.into();
        let registration = documents.resolve(&mut register).await.unwrap();
        let registration = registration.expect("a text with its hash registers");
        assert_eq!(registration.cost(), 1);
        // Nothing is kept until the pipeline has checked and charged it.
        assert_eq!(
            code(documents.resolve(&mut by_hash(&hash)).await),
            "PERSISTED_QUERY_NOT_FOUND"
        );
        documents.keep(registration, text).await;

        let mut known = by_hash(&hash.to_uppercase());
        assert_eq!(code(documents.resolve(&mut known).await), "OK");
        assert_eq!(known.query, text);
        assert!(known.extensions.get("persistedQuery").is_none());
    }

    #[tokio::test]
    async fn trusted_documents_run_only_what_the_manifest_holds() {
        let text = "query Me { viewer { user { username } } }";
        let hash = sha256_hex(text);
        let documents =
            PersistedDocuments::Trusted(HashMap::from([(hash.clone(), Arc::from(text))]));

        let mut by_id = by_hash(&format!("sha256:{hash}"));
        assert_eq!(code(documents.resolve(&mut by_id).await), "OK");
        assert_eq!(by_id.query, text);

        let mut verbatim = Request::new(text);
        assert_eq!(code(documents.resolve(&mut verbatim).await), "OK");

        let mut other = Request::new("{ __typename }");
        assert_eq!(
            code(documents.resolve(&mut other).await),
            "PERSISTED_QUERY_NOT_TRUSTED"
        );

        let mut register = by_hash(&sha256_hex("{ __typename }"));
        register.query = "{ __typename }".into();
        assert_eq!(
            code(documents.resolve(&mut register).await),
            "PERSISTED_QUERY_NOT_TRUSTED"
        );

        let mut swapped = by_hash(&hash);
        swapped.query = "{ __typename }".into();
        assert_eq!(
            code(documents.resolve(&mut swapped).await),
            "PERSISTED_QUERY_NOT_TRUSTED"
        );

        let mut unknown = by_hash(&sha256_hex("{ nope }"));
        assert_eq!(
            code(documents.resolve(&mut unknown).await),
            "PERSISTED_QUERY_NOT_FOUND"
        );
    }

    #[tokio::test]
    async fn hash_only_requests_are_refused_when_turned_off() {
        let mut request = by_hash(&sha256_hex("{ __typename }"));
        assert_eq!(
            code(PersistedDocuments::Off.resolve(&mut request).await),
            "PERSISTED_QUERY_NOT_SUPPORTED"
        );
    }
}
