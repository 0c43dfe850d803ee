//! A kept response, as every transport sends it, and its bytes in Redis.

use std::time::Instant;

use async_graphql::{CacheControl, Response};
use bytes::Bytes;

use super::Tag;

/// A stored response, as every transport sends it.
#[derive(Debug)]
pub struct Stored {
    /// The response's data (a kept response has no errors).
    pub(super) data: async_graphql::Value,
    pub(super) hints: CacheControl,
    /// Its JSON, as HTTP sends it.
    pub body: Bytes,
    /// A strong validator of `body`.
    pub etag: String,
    /// The rate-limit cost of the operation, charged on every hit.
    pub cost: Option<usize>,
    pub(super) tags: Vec<Tag>,
    pub(super) expires: Instant,
}

impl Stored {
    pub fn cache_control(&self) -> CacheControl {
        self.hints
    }

    /// The response, for transports that send values rather than bytes.
    pub fn response(&self) -> Response {
        let mut response = Response::new(self.data.clone());
        response.cache_control = self.hints;
        response
    }

    /// The bytes kept in Redis: a header line, then the body.
    pub(super) fn encode(&self) -> Vec<u8> {
        let header = serde_json::json!({
            "etag": self.etag,
            "cost": self.cost,
            "public": self.hints.public,
            "maxAge": self.hints.max_age,
        });
        let mut bytes = serde_json::to_vec(&header).unwrap_or_default();
        bytes.push(b'\n');
        bytes.extend_from_slice(&self.body);
        bytes
    }

    pub(super) fn decode(bytes: &[u8]) -> Option<Self> {
        let split = bytes.iter().position(|b| *b == b'\n')?;
        let header: serde_json::Value = serde_json::from_slice(&bytes[..split]).ok()?;
        let body = Bytes::copy_from_slice(&bytes[split + 1..]);
        let mut response: serde_json::Value = serde_json::from_slice(&body).ok()?;
        let data = async_graphql::Value::from_json(response.get_mut("data")?.take()).ok()?;
        Some(Self {
            data,
            hints: CacheControl {
                public: header["public"].as_bool()?,
                max_age: i32::try_from(header["maxAge"].as_i64()?).ok()?,
            },
            body,
            etag: header["etag"].as_str()?.to_owned(),
            cost: header["cost"].as_u64().map(|c| c as usize),
            tags: Vec::new(),
            expires: Instant::now(),
        })
    }

    pub(super) fn size(&self) -> usize {
        // The body, the value tree beside it (about as large) and the tags.
        2 * self.body.len() + self.tags.iter().map(|t| t.len() + 48).sum::<usize>() + 256
    }
}
