//! A TCP relay in front of PostgreSQL that can hold back the answer to one
//! query: the query has read (its snapshot is taken) but the server under
//! test does not know its answer yet. A test then commits something in
//! between, which timing alone would almost never do.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::Notify,
};

pub struct Relay {
    /// The database's URL, through the relay.
    pub url: String,
    gate: Arc<Gate>,
}

#[derive(Default)]
struct Gate {
    armed: AtomicBool,
    held: Notify,
    released: Notify,
}

impl Relay {
    /// Relays connections to the PostgreSQL of `database_url`.
    pub async fn start(database_url: &str) -> Self {
        let target = url::Url::parse(database_url).expect("a database URL");
        let upstream = format!(
            "{}:{}",
            target.host_str().expect("a host"),
            target.port().unwrap_or(5432)
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut url = target.clone();
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(listener.local_addr().unwrap().port()))
            .unwrap();
        let gate = Arc::new(Gate::default());
        let accepting = gate.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                tokio::spawn(relay(client, server, accepting.clone()));
            }
        });
        Self {
            url: url.to_string(),
            gate,
        }
    }

    /// Holds back the next row that is a lone boolean `true` (what an
    /// `EXISTS` check answers), on whichever connection, until
    /// [`Relay::release`].
    pub fn hold_next_true(&self) {
        self.gate.armed.store(true, Ordering::Release);
    }

    /// Waits until a row is held back.
    pub async fn held(&self) {
        self.gate.held.notified().await;
    }

    /// Lets the held row, and what follows it, through.
    pub fn release(&self) {
        self.gate.released.notify_one();
    }
}

/// Copies the client's bytes as they come; reads the server's message by
/// message, so one can be held.
async fn relay(client: TcpStream, server: TcpStream, gate: Arc<Gate>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    tokio::spawn(async move {
        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
        let _ = server_write.shutdown().await;
    });
    let mut pending = Vec::new();
    let mut chunk = vec![0; 16 * 1024];
    while let Ok(read) = server_read.read(&mut chunk).await {
        if read == 0 {
            break;
        }
        pending.extend_from_slice(&chunk[..read]);
        // Every backend message is a type byte and a length that counts
        // itself (the client never asks for TLS here, so no bare byte).
        while pending.len() >= 5 {
            let length = u32::from_be_bytes(pending[1..5].try_into().unwrap()) as usize;
            if pending.len() < 1 + length {
                break;
            }
            let message: Vec<u8> = pending.drain(..1 + length).collect();
            if is_lone_true(&message)
                && gate
                    .armed
                    .compare_exchange(true, false, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            {
                gate.held.notify_one();
                gate.released.notified().await;
            }
            if client_write.write_all(&message).await.is_err() {
                return;
            }
        }
    }
    let _ = client_write.shutdown().await;
}

/// A `DataRow` of one column holding a binary boolean `true`.
fn is_lone_true(message: &[u8]) -> bool {
    message[0] == b'D' && message[5..] == [0, 1, 0, 0, 0, 1, 1]
}
