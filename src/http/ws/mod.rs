//! GraphQL over WebSocket, `graphql-transport-ws` (the `graphql-ws`
//! library's protocol), to the letter: `connection_init` within the init
//! timeout (else 4408), once (else 4429), answered `connection_ack` or, for
//! credentials that name nobody, 4403; `subscribe` only after the ack
//! (else 4401) and with an id not in use (else 4409); anything else that is
//! not a protocol message closes with 4400. Pings are answered with pongs,
//! and the server pings an idle socket.
//!
//! Every operation runs through the executor, as over HTTP: the same
//! persisted documents, limits, rate limits and error codes. Queries and
//! mutations answer once; subscriptions stream.
//!
//! A socket counts against its address from the upgrade (past the
//! address's share the upgrade is refused with 429), and against its user
//! instead once `connection_init` names one (past the user's share: 4429):
//! sockets that never initialise cannot outnumber an address's share, and
//! users behind one address each keep their own.
//!
//! The socket ends with 4403 when its access token expires, its session is
//! signed out or its account deleted (the client reconnects with fresh
//! credentials), with 1013 when the client reads too slowly for its queue,
//! and with 1001 when the server shuts down, after the operations in flight
//! have finished.

mod connection;
mod protocol;

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use axum::{
    extract::ws::WebSocketUpgrade,
    http::{
        HeaderMap, HeaderValue, StatusCode,
        header::{HOST, ORIGIN},
    },
    response::{IntoResponse, Response},
};
use tokio::sync::watch;

use self::connection::Connection;
use super::{HttpState, extract::HttpCaller};
use crate::{
    config::{CorsOrigins, Subscriptions},
    telemetry::metrics_export,
};

pub const PROTOCOL: &str = "graphql-transport-ws";

/// What a socket reads into at a time.
const SOCKET_BUFFER: usize = 4 * 1024;

/// The instance's open sockets: how many, and how many per client.
pub struct Sockets {
    open: AtomicUsize,
    per_client: Mutex<HashMap<Client, usize>>,
    settings: Subscriptions,
    /// The origins browser pages may open sockets from.
    origins: CorsOrigins,
    shutdown: watch::Receiver<Shutdown>,
}

/// Whose sockets count together: a signed-in user's, or an address's
/// (anonymous sockets, and those not initialised yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Client {
    User(uuid::Uuid),
    Address(IpAddr),
}

impl Sockets {
    /// `shutdown` says where the server is in its shutdown.
    pub fn new(
        settings: Subscriptions,
        origins: CorsOrigins,
        shutdown: watch::Receiver<Shutdown>,
    ) -> Self {
        Self {
            open: AtomicUsize::new(0),
            per_client: Mutex::new(HashMap::new()),
            settings,
            origins,
            shutdown,
        }
    }

    /// Sockets open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Counts a socket for `client`, unless it already has its share.
    fn admit(self: &Arc<Self>, client: Client) -> Option<Share> {
        let mut counts = self.per_client.lock().unwrap_or_else(|e| e.into_inner());
        let count = counts.entry(client).or_default();
        if *count >= self.settings.max_sockets_per_client {
            return None;
        }
        *count += 1;
        Some(Share {
            client,
            sockets: self.clone(),
        })
    }
}

/// A socket counted against its client; uncounted when dropped.
struct Share {
    client: Client,
    sockets: Arc<Sockets>,
}

impl Drop for Share {
    fn drop(&mut self) {
        let mut counts = self
            .sockets
            .per_client
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(count) = counts.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.client);
            }
        }
    }
}

impl Sockets {
    /// Whether the server is draining: no new sockets, and `/readyz` says
    /// so, so a load balancer sends new clients elsewhere.
    pub fn draining(&self) -> bool {
        *self.shutdown.borrow() != Shutdown::Running
    }
}

/// Where a server is in its shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    Running,
    /// `/readyz` answers 503 and new sockets are refused; the rest goes on.
    Draining,
    /// Sockets close (1001) once their queries and mutations are done.
    Closing,
}

/// `GET /graphql` with `Upgrade: websocket`.
pub fn upgrade(
    state: HttpState,
    caller: HttpCaller,
    headers: &HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let sockets = state.sockets.clone();
    let header = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if !super::security::may_open_socket(&sockets.origins, header(ORIGIN), header(HOST)) {
        return (
            StatusCode::FORBIDDEN,
            "this origin may not open a WebSocket here",
        )
            .into_response();
    }
    if sockets.draining() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    // Counted against the address from the upgrade, not from
    // `connection_init`: sockets that never initialise would otherwise
    // count only against MAX_WEBSOCKETS, and one address could hold them
    // all. Refused here, before the upgrade, as MAX_WEBSOCKETS is.
    let address = caller.caller().address;
    let Some(share) = sockets.admit(Client::Address(address)) else {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            "too many WebSockets are open from this address",
        )
            .into_response();
    };
    // Counted before the upgrade, so a flood of upgrades cannot pass the
    // limit between the check and the count.
    if sockets.open.fetch_add(1, Ordering::AcqRel) >= sockets.settings.max_sockets {
        sockets.open.fetch_sub(1, Ordering::AcqRel);
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(axum::http::header::RETRY_AFTER, "1")],
            "too many WebSockets are open; try again in a moment",
        )
            .into_response();
    }
    let opened = Opened(sockets.clone());
    let upgrade = upgrade.protocols([PROTOCOL]);
    let offered = upgrade.selected_protocol().is_some();
    upgrade
        // tungstenite's defaults (128 KiB to read into, 128 KiB to gather
        // writes in) cost 256 KiB a socket before it says anything; a
        // socket here mostly idles and then carries small messages, and
        // the writer flushes what it gathered at once anyway.
        .read_buffer_size(SOCKET_BUFFER)
        .write_buffer_size(SOCKET_BUFFER)
        .max_write_buffer_size(sockets.settings.max_message_bytes.max(SOCKET_BUFFER) * 4)
        .max_message_size(sockets.settings.max_message_bytes)
        .max_frame_size(sockets.settings.max_message_bytes)
        .on_upgrade(move |socket| async move {
            let _opened = opened;
            metrics_export::record_socket(1.0);
            let connection = Connection {
                executor: state.executor.clone(),
                sockets,
                address,
                request_id: caller.request_id.0.clone(),
            };
            connection.run(socket, offered, share).await;
            metrics_export::record_socket(-1.0);
        })
}

/// Uncounts a socket when its task ends, however it ends.
struct Opened(Arc<Sockets>);

impl Drop for Opened {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}
