//! WebSockets and subscriptions: what one socket may hold, and how long
//! the server waits for it.

use std::time::Duration;

use clap::Args;

use super::values::secs;

#[derive(Debug, Clone, Copy, Args)]
pub struct Subscriptions {
    /// Open WebSockets per instance; one more is refused (503) at the
    /// upgrade. Sockets do not count against `MAX_CONCURRENT_REQUESTS`.
    #[arg(long, env = "MAX_WEBSOCKETS", default_value_t = 10_000)]
    pub max_sockets: usize,
    /// Open WebSockets per address, counted from the upgrade (past it the
    /// upgrade is refused with 429), and per signed-in user, whose sockets
    /// count against the user instead once initialised (past it the
    /// socket is closed with 4429).
    #[arg(long, env = "MAX_WEBSOCKETS_PER_CLIENT", default_value_t = 20)]
    pub max_sockets_per_client: usize,
    /// Subscriptions one socket may hold at once; one more is closed with
    /// 4429.
    #[arg(long, env = "MAX_SUBSCRIPTIONS_PER_SOCKET", default_value_t = 50)]
    pub max_per_socket: usize,
    /// Largest message a client may send over a socket; a larger one closes
    /// it with 1009.
    #[arg(long = "max-websocket-message-bytes", env = "MAX_WEBSOCKET_MESSAGE_BYTES", default_value_t = 64 * 1024)]
    pub max_message_bytes: usize,
    /// How long a new socket has to send `connection_init` (then 4408).
    #[arg(long = "websocket-init-timeout-secs", env = "WEBSOCKET_INIT_TIMEOUT_SECS", default_value = "10", value_parser = secs)]
    pub init_timeout: Duration,
    /// How often the server pings an idle socket.
    #[arg(long = "websocket-ping-secs", env = "WEBSOCKET_PING_SECS", default_value = "15", value_parser = secs)]
    pub ping_every: Duration,
    /// Messages queued for a socket that reads slowly; past it the socket is
    /// closed with 1013 (try again later) and the client resumes from its
    /// last cursor.
    #[arg(
        long = "websocket-send-queue",
        env = "WEBSOCKET_SEND_QUEUE",
        default_value_t = 256
    )]
    pub send_queue: usize,
    /// Events a subscriber may fall behind the instance's event stream
    /// before it is ended (the client resumes from its last cursor).
    #[arg(
        long = "subscription-buffer",
        env = "SUBSCRIPTION_BUFFER",
        default_value_t = 1024
    )]
    pub buffer: usize,
}
