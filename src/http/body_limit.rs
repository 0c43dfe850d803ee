//! The request body limit (`MAX_BODY_BYTES`), enforced so that the client
//! reads its 413.
//!
//! Answering before the body is read and then closing the connection leaves
//! unread bytes behind, and the kernel answers those with a reset: a client
//! still sending (Node's `fetch`, most HTTP libraries on a kept-alive
//! connection) gets a broken pipe instead of the 413. So an oversized body
//! is read and thrown away, up to a bound, and the 413 goes out on a
//! connection that stays usable. Past the bound, or when the client sent
//! `Expect: 100-continue` (and so waits for a go-ahead before sending the
//! body), the 413 goes out at once and the connection is closed after it.

use std::time::Duration;

use axum::{
    body::{Body, Bytes},
    extract::{Request, State},
    http::{HeaderValue, header},
    middleware::Next,
    response::Response,
};
use http_body_util::BodyExt as _;

use super::{
    error::{Media, TransportError, transport_error},
    request_id::RequestId,
};

/// At most this much of an oversized body is read and discarded.
const DRAIN_AT_LEAST: u64 = 64 * 1024 * 1024;
/// And for at most this long, so a slow sender cannot hold a task.
const DRAIN_FOR: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy)]
pub struct BodyLimit {
    max: u64,
    drain: u64,
}

impl BodyLimit {
    pub fn new(max_body_bytes: usize) -> Self {
        let max = max_body_bytes as u64;
        Self {
            max,
            drain: DRAIN_AT_LEAST.max(max.saturating_mul(4)),
        }
    }
}

pub async fn limit(State(limit): State<BodyLimit>, request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        // The server reads no more than the declared length: nothing to do.
        Some(length) if length <= limit.max => next.run(request).await,
        Some(length) => {
            let (parts, body) = request.into_parts();
            let expects_continue = parts
                .headers
                .get(header::EXPECT)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
            let drained =
                !expects_continue && length <= limit.drain && drain_rest(body, limit.drain).await;
            too_large(limit, &Context::of(&parts), drained)
        }
        // Chunked: read up to the limit, then decide.
        None => {
            let (parts, body) = request.into_parts();
            match read_within(body, limit).await {
                Read::Whole(bytes) => {
                    next.run(Request::from_parts(parts, Body::from(bytes)))
                        .await
                }
                Read::TooLarge { drained } => too_large(limit, &Context::of(&parts), drained),
            }
        }
    }
}

/// What the 413 needs of the request.
struct Context {
    request_id: Option<RequestId>,
    media: Media,
}

impl Context {
    fn of(parts: &axum::http::request::Parts) -> Self {
        Self {
            request_id: parts.extensions.get::<RequestId>().cloned(),
            media: Media::negotiate(&parts.headers),
        }
    }
}

enum Read {
    Whole(Bytes),
    /// Over the limit; `drained` when the rest was read to its end.
    TooLarge {
        drained: bool,
    },
}

async fn read_within(mut body: Body, limit: BodyLimit) -> Read {
    let mut buffer = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            // The client went away; nobody will read the answer.
            return Read::TooLarge { drained: false };
        };
        if let Ok(data) = frame.into_data() {
            let read = (buffer.len() + data.len()) as u64;
            if read > limit.max {
                let drained = drain_rest(body, limit.drain.saturating_sub(read)).await;
                return Read::TooLarge { drained };
            }
            buffer.extend_from_slice(&data);
        }
    }
    Read::Whole(Bytes::from(buffer))
}

/// Reads and discards `body` to its end: true if it ended within `budget`
/// bytes and [`DRAIN_FOR`].
async fn drain_rest(mut body: Body, mut budget: u64) -> bool {
    let read_to_end = async {
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { return false };
            if let Ok(data) = frame.into_data() {
                let Some(left) = budget.checked_sub(data.len() as u64) else {
                    return false;
                };
                budget = left;
            }
        }
        true
    };
    tokio::time::timeout(DRAIN_FOR, read_to_end)
        .await
        .unwrap_or(false)
}

fn too_large(limit: BodyLimit, context: &Context, drained: bool) -> Response {
    let error = TransportError::TooLarge { limit: limit.max };
    let request_id = context
        .request_id
        .clone()
        .unwrap_or_else(|| RequestId(String::new()));
    let mut response = transport_error(&error, &request_id, context.media);
    if !drained {
        // Unread bytes are left: this connection cannot carry another request.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}
