//! What the GraphQL handlers take from a request before its body: who is
//! calling ([`HttpCaller`]) and which media type they read ([`Media`]).
//! Verifying the credentials is the executor's (every transport shares
//! it); reading them off HTTP is this module's.

use std::{
    convert::Infallible,
    net::{IpAddr, SocketAddr},
};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{HeaderMap, HeaderValue, header, request::Parts},
};

use super::{HttpState, error::Media, request_id::RequestId};
use crate::graphql::executor::Caller;

/// The caller as HTTP presents them: the `Authorization` header, the
/// client's address and the request id.
pub struct HttpCaller {
    authorization: Option<HeaderValue>,
    address: IpAddr,
    pub request_id: RequestId,
}

impl HttpCaller {
    /// Whether the request carries credentials (valid or not).
    pub fn has_credentials(&self) -> bool {
        self.authorization.is_some()
    }

    /// The caller, as the executor takes it.
    pub fn caller(&self) -> Caller<'_> {
        Caller {
            // A header that is not text is credentials nobody can verify.
            authorization: self
                .authorization
                .as_ref()
                .map(|v| v.to_str().unwrap_or_default()),
            address: self.address,
            request_id: &self.request_id.0,
        }
    }
}

impl FromRequestParts<HttpState> for HttpCaller {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &HttpState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| *peer)
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        Ok(Self {
            authorization: parts.headers.get(header::AUTHORIZATION).cloned(),
            address: client_address(state.trusted_proxy_hops, &parts.headers, peer),
            request_id: parts
                .extensions
                .get::<RequestId>()
                .cloned()
                .unwrap_or_else(|| RequestId(String::new())),
        })
    }
}

impl<S: Sync> FromRequestParts<S> for Media {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Media::negotiate(&parts.headers))
    }
}

/// The client's address: the connection's, unless proxies are trusted, in
/// which case the entry `hops` from the end of `X-Forwarded-For` (the one
/// the outermost trusted proxy saw).
fn client_address(hops: usize, headers: &HeaderMap, peer: SocketAddr) -> IpAddr {
    if hops == 0 {
        return peer.ip();
    }
    let chain: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    chain
        .len()
        .checked_sub(hops)
        .and_then(|i| chain[i].parse().ok())
        .unwrap_or_else(|| peer.ip())
}
