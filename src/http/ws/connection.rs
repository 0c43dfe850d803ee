//! One socket: the protocol's state machine, its operations and its
//! writer.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_graphql::Request;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::{SinkExt, StreamExt, stream::SplitSink};
use serde_json::{Value, json};
use tokio::{
    sync::{broadcast, mpsc, watch},
    task::JoinHandle,
};

use super::{
    Client, Share, Shutdown, Sockets,
    protocol::{Close, Incoming, close, forbidden, request_of},
};
use crate::{
    auth::Viewer,
    graphql::error::server_error,
    graphql::executor::{self, Executor},
    telemetry::metrics_export,
};

/// A socket past its upgrade.
pub(super) struct Connection {
    pub executor: Arc<Executor>,
    pub sockets: Arc<Sockets>,
    pub address: IpAddr,
    pub request_id: String,
}

/// What the connection's tasks tell its loop.
enum Signal {
    /// An operation finished (or failed before it streamed); its id is free.
    Done(String),
    /// The client reads too slowly: its queue is full.
    Overflow,
}

/// The connection's writer: a bounded queue drained into the socket.
#[derive(Clone)]
struct Outbox {
    queue: mpsc::Sender<Message>,
    signals: mpsc::UnboundedSender<Signal>,
}

impl Outbox {
    /// Queues `message`; a full queue means a slow reader.
    fn send(&self, message: Value) -> bool {
        let text = Message::Text(Utf8Bytes::from(message.to_string()));
        match self.queue.try_send(text) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                let _ = self.signals.send(Signal::Overflow);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

impl Connection {
    /// Speaks the protocol over `socket` (`offered`: the client offered
    /// it), counted in `share` until it is initialised.
    pub(super) async fn run(self, socket: WebSocket, offered: bool, share: Share) {
        let (sink, mut incoming) = socket.split();
        let (queue, outgoing) = mpsc::channel(self.sockets.settings.send_queue.max(1));
        let (signals, mut signal_rx) = mpsc::unbounded_channel();
        let outbox = Outbox { queue, signals };
        let writer = tokio::spawn(write(sink, outgoing));
        let close = if offered {
            let session = Session::new(share);
            self.serve(&mut incoming, &outbox, &mut signal_rx, session)
                .await
        } else {
            Close::new(
                close::SUBPROTOCOL_NOT_ACCEPTABLE,
                "Subprotocol not acceptable",
            )
        };
        let _ = outbox
            .queue
            .send(Message::Close(Some(CloseFrame {
                code: close.0,
                reason: Utf8Bytes::from(close.1),
            })))
            .await;
        drop(outbox);
        let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    }

    /// Speaks the protocol until the connection ends; returns how.
    async fn serve(
        &self,
        incoming: &mut futures_util::stream::SplitStream<WebSocket>,
        outbox: &Outbox,
        signals: &mut mpsc::UnboundedReceiver<Signal>,
        mut session: Session,
    ) -> Close {
        let settings = self.sockets.settings;
        let mut shutdown = self.sockets.shutdown.clone();
        let init_deadline = tokio::time::sleep(settings.init_timeout);
        tokio::pin!(init_deadline);
        let mut ping = tokio::time::interval(settings.ping_every);
        ping.tick().await;
        let mut operations: HashMap<String, Operation> = HashMap::new();
        let close = loop {
            let expiry = session.viewer.map(|v| v.token_expires_at);
            let own_session = session.viewer.map(|v| v.session_id);
            tokio::select! {
                message = incoming.next() => {
                    let text = match message {
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(Message::Binary(_))) => {
                            break Close::new(close::INVALID_MESSAGE, "messages are JSON text");
                        }
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                        Some(Ok(Message::Close(_))) | None => break Close::new(1000, "closed"),
                        Some(Err(e)) => {
                            let reason = e.to_string();
                            if reason.contains("too long") || reason.contains("Message too long") {
                                break Close::new(1009, "message too big");
                            }
                            tracing::debug!(error = %e, "WebSocket read failed");
                            break Close::new(close::INVALID_MESSAGE, "unreadable message");
                        }
                    };
                    let message: Incoming = match serde_json::from_str(&text) {
                        Ok(message) => message,
                        Err(e) => break Close::new(close::INVALID_MESSAGE, format!("invalid message: {e}")),
                    };
                    // Boxed: an idle socket's task then holds a pointer, not
                    // room for the largest message handling (authentication
                    // included) for as long as it lives.
                    let handled = Box::pin(self.handle(message, &mut session, &mut operations, outbox));
                    if let Some(close) = handled.await {
                        break close;
                    }
                }
                () = &mut init_deadline, if !session.initialised => {
                    break Close::new(close::INIT_TIMEOUT, "Connection initialisation timeout");
                }
                _ = ping.tick() => {
                    outbox.send(json!({ "type": "ping" }));
                }
                signal = signals.recv() => match signal {
                    Some(Signal::Done(id)) => {
                        operations.remove(&id);
                        metrics_export::record_subscription(-1.0);
                    }
                    Some(Signal::Overflow) => {
                        break Close::new(close::TRY_AGAIN_LATER, "the client reads too slowly");
                    }
                    None => break Close::new(close::INTERNAL, "internal error"),
                },
                () = sleep_until_unix(expiry), if expiry.is_some() => {
                    break Close::new(close::FORBIDDEN, "Forbidden: the access token expired");
                }
                revoked = signed_out(&mut session.revocations, own_session), if session.revocations.is_some() => {
                    if revoked {
                        break Close::new(close::FORBIDDEN, "Forbidden: the session was signed out");
                    }
                }
                _ = closing(&mut shutdown) => {
                    // Queries and mutations in flight finish; streams end.
                    let grace = self.executor.request_timeout();
                    let in_flight = operations
                        .values_mut()
                        .filter(|o| !o.streaming.load(Ordering::Acquire))
                        .map(|o| &mut o.task);
                    let _ = tokio::time::timeout(grace, futures_util::future::join_all(in_flight)).await;
                    break Close::new(close::GOING_AWAY, "the server is shutting down");
                }
            }
        };
        for (_, operation) in operations.drain() {
            operation.task.abort();
            metrics_export::record_subscription(-1.0);
        }
        close
    }

    /// Handles one message; `Some` closes the connection.
    async fn handle(
        &self,
        message: Incoming,
        session: &mut Session,
        operations: &mut HashMap<String, Operation>,
        outbox: &Outbox,
    ) -> Option<Close> {
        match message {
            Incoming::ConnectionInit { payload } => {
                if session.initialised {
                    return Some(Close::new(
                        close::TOO_MANY,
                        "Too many initialisation requests",
                    ));
                }
                session.initialised = true;
                // Listening before the session is checked: a sign-out that
                // commits after the check is then heard, not lost between
                // the check and the listening.
                let revocations = self.executor.events().revocations();
                let authorization = payload
                    .as_ref()
                    .and_then(|p| p.get("authorization").or_else(|| p.get("Authorization")))
                    .map(|v| v.as_str().unwrap_or_default().to_owned());
                let credentials = match self.executor.authenticate(authorization.as_deref()).await {
                    Ok(credentials) => credentials,
                    Err(e) => {
                        return Some(Close::new(close::TRY_AGAIN_LATER, e.client_message()));
                    }
                };
                if let Some(rejection) = credentials.rejected {
                    return Some(Close::new(close::FORBIDDEN, forbidden(rejection)));
                }
                if let Some(viewer) = credentials.viewer {
                    // Counted against the user from now on, no longer
                    // against the address (an anonymous socket stays there).
                    let Some(share) = self.sockets.admit(Client::User(viewer.user_id)) else {
                        return Some(Close::new(
                            close::TOO_MANY,
                            "Too many connections for this client",
                        ));
                    };
                    session.share = share;
                    session.revocations = Some(revocations);
                }
                session.acked = true;
                session.viewer = credentials.viewer;
                outbox.send(json!({ "type": "connection_ack" }));
                None
            }
            Incoming::Ping { payload } => {
                let mut pong = json!({ "type": "pong" });
                if let Some(payload) = payload {
                    pong["payload"] = payload;
                }
                outbox.send(pong);
                None
            }
            Incoming::Pong {} => None,
            Incoming::Subscribe { id, payload } => {
                if !session.acked {
                    return Some(Close::new(close::UNAUTHORIZED, "Unauthorized"));
                }
                if operations.contains_key(&id) {
                    return Some(Close::new(
                        close::DUPLICATE_ID,
                        format!("Subscriber for {id} already exists"),
                    ));
                }
                if operations.len() >= self.sockets.settings.max_per_socket {
                    let error = crate::error::AppError::QueryTooComplex {
                        rule: "subscriptionsPerSocket",
                        measured: operations.len() + 1,
                        limit: self.sockets.settings.max_per_socket,
                    };
                    outbox.send(
                        json!({ "id": id, "type": "error", "payload": [server_error(&error)] }),
                    );
                    return None;
                }
                let request = request_of(payload);
                let operation = self.operate(id.clone(), request, session.viewer, outbox.clone());
                operations.insert(id, operation);
                metrics_export::record_subscription(1.0);
                None
            }
            Incoming::Complete { id } => {
                if let Some(operation) = operations.remove(&id) {
                    operation.task.abort();
                    metrics_export::record_subscription(-1.0);
                }
                None
            }
        }
    }

    /// Runs one operation, sending its results under `id`.
    fn operate(
        &self,
        id: String,
        request: Request,
        viewer: Option<Viewer>,
        outbox: Outbox,
    ) -> Operation {
        let executor = self.executor.clone();
        let (address, request_id) = (self.address, self.request_id.clone());
        let streaming = Arc::new(AtomicBool::new(false));
        let streams = streaming.clone();
        let task = tokio::spawn(async move {
            // Boxed, so a subscription's task keeps only its stream while
            // it idles, not room for preparing and starting one.
            let prepared = match Box::pin(executor.prepare(request)).await {
                Ok(prepared) => prepared,
                Err(refusal) => {
                    outbox.send(
                        json!({ "id": id, "type": "error", "payload": [server_error(&refusal)] }),
                    );
                    let _ = outbox.signals.send(Signal::Done(id));
                    return;
                }
            };
            streams.store(prepared.is_subscription(), Ordering::Release);
            let mut results =
                Box::pin(executor.stream(prepared, viewer, address, &request_id)).await;
            let mut first = true;
            while let Some(response) = results.next().await {
                let refused = first && executor::nothing_ran(&response);
                first = false;
                let message = if refused {
                    json!({ "id": id, "type": "error", "payload": response.errors })
                } else {
                    json!({ "id": id, "type": "next", "payload": response })
                };
                if !outbox.send(message) {
                    return;
                }
                if refused {
                    let _ = outbox.signals.send(Signal::Done(id));
                    return;
                }
            }
            outbox.send(json!({ "id": id, "type": "complete" }));
            let _ = outbox.signals.send(Signal::Done(id));
        });
        Operation { task, streaming }
    }
}

/// An operation of the connection.
struct Operation {
    task: JoinHandle<()>,
    /// A subscription (it streams until stopped), not a query or mutation.
    streaming: Arc<AtomicBool>,
}

/// Waits for the next signed-out session; `true` when it is `own`.
async fn signed_out(
    revocations: &mut Option<broadcast::Receiver<uuid::Uuid>>,
    own: Option<uuid::Uuid>,
) -> bool {
    let Some(receiver) = revocations.as_mut() else {
        return std::future::pending().await;
    };
    match receiver.recv().await {
        Ok(session) => Some(session) == own,
        // Fell behind: whether the session lives is unknown; the client
        // reconnects with its credentials, which are checked again.
        Err(broadcast::error::RecvError::Lagged(_)) => true,
        Err(broadcast::error::RecvError::Closed) => {
            *revocations = None;
            false
        }
    }
}

/// What the connection knows of its client.
struct Session {
    /// `connection_init` arrived.
    initialised: bool,
    /// `connection_ack` was sent: operations may start.
    acked: bool,
    /// The share of sockets this one counts against: its address's, then
    /// its user's once signed in.
    share: Share,
    viewer: Option<Viewer>,
    /// Sessions signed out since before the viewer's was checked.
    revocations: Option<broadcast::Receiver<uuid::Uuid>>,
}

impl Session {
    fn new(share: Share) -> Self {
        Self {
            initialised: false,
            acked: false,
            share,
            viewer: None,
            revocations: None,
        }
    }
}

async fn sleep_until_unix(at: Option<i64>) {
    let Some(at) = at else {
        return std::future::pending().await;
    };
    let now = chrono::Utc::now().timestamp_millis();
    let wait = (at * 1000 - now).max(0) as u64;
    tokio::time::sleep(Duration::from_millis(wait)).await;
}

/// Drains the queue into the socket; ends after a close frame or when the
/// socket fails. Messages already queued go out together, in one write.
async fn write(mut sink: SplitSink<WebSocket, Message>, mut outgoing: mpsc::Receiver<Message>) {
    'socket: while let Some(message) = outgoing.recv().await {
        let mut next = Some(message);
        while let Some(message) = next.take() {
            let closing = matches!(message, Message::Close(_));
            if sink.feed(message).await.is_err() || closing {
                let _ = sink.flush().await;
                break 'socket;
            }
            next = outgoing.try_recv().ok();
        }
        if sink.flush().await.is_err() {
            break;
        }
    }
    let _ = sink.close().await;
}

/// Waits until the server closes its sockets.
async fn closing(shutdown: &mut watch::Receiver<Shutdown>) {
    if shutdown
        .wait_for(|s| *s == Shutdown::Closing)
        .await
        .is_err()
    {
        std::future::pending::<()>().await;
    }
}
