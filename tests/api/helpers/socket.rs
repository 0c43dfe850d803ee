//! A raw `graphql-transport-ws` client: JSON frames in and out, and the
//! close code the server ends with, so tests can hold the server to each
//! rule of the protocol.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{Error, Message, client::IntoClientRequest, http::HeaderValue},
};

use super::TestApp;

pub struct Socket {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How long a test waits for the server's next frame.
const WAIT: Duration = Duration::from_secs(10);

impl TestApp {
    /// A socket to `/graphql` speaking `graphql-transport-ws`.
    pub async fn socket(&self) -> Socket {
        self.socket_with_protocol(Some("graphql-transport-ws"))
            .await
    }

    /// A socket offering `protocol` (none when `None`).
    pub async fn socket_with_protocol(&self, protocol: Option<&str>) -> Socket {
        self.try_socket_with_protocol(protocol)
            .await
            .unwrap_or_else(|status| panic!("the WebSocket upgrade was refused with {status}"))
    }

    /// A socket speaking `graphql-transport-ws`, or the HTTP status its
    /// upgrade was refused with.
    pub async fn try_socket(&self) -> Result<Socket, u16> {
        self.try_socket_with_protocol(Some("graphql-transport-ws"))
            .await
    }

    async fn try_socket_with_protocol(&self, protocol: Option<&str>) -> Result<Socket, u16> {
        let url = self.url("/graphql").replacen("http://", "ws://", 1);
        let mut request = url.into_client_request().unwrap();
        if let Some(protocol) = protocol {
            request.headers_mut().insert(
                "sec-websocket-protocol",
                HeaderValue::from_str(protocol).unwrap(),
            );
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((stream, _)) => Ok(Socket { stream }),
            Err(Error::Http(response)) => Err(response.status().as_u16()),
            Err(e) => panic!("the WebSocket did not open: {e}"),
        }
    }

    /// A socket past `connection_init` (with `token`, if any) and its ack.
    pub async fn acked_socket(&self, token: Option<&str>) -> Socket {
        let mut socket = self.socket().await;
        socket.init(token).await;
        let ack = socket.recv().await;
        assert_eq!(ack["type"], "connection_ack", "{ack}");
        socket
    }
}

impl Socket {
    pub async fn send(&mut self, message: Value) {
        self.stream
            .send(Message::Text(message.to_string().into()))
            .await
            .unwrap();
    }

    pub async fn send_text(&mut self, text: &str) {
        self.stream
            .send(Message::Text(text.to_owned().into()))
            .await
            .unwrap();
    }

    /// Closes the socket from the client's side (1000).
    pub async fn close(&mut self) {
        self.stream.close(None).await.unwrap();
    }

    pub async fn init(&mut self, token: Option<&str>) {
        let payload = match token {
            Some(token) => json!({ "authorization": format!("Token {token}") }),
            None => json!({}),
        };
        self.send(json!({ "type": "connection_init", "payload": payload }))
            .await;
    }

    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        self.send(json!({
            "id": id, "type": "subscribe",
            "payload": { "query": query, "variables": variables }
        }))
        .await;
    }

    /// The next protocol message, skipping the server's pings.
    pub async fn recv(&mut self) -> Value {
        self.next_or_close()
            .await
            .unwrap_or_else(|close| panic!("closed: {close:?}"))
    }

    /// The next message for operation `id`, which must be of `kind`.
    pub async fn expect(&mut self, id: &str, kind: &str) -> Value {
        let message = self.recv().await;
        assert_eq!(
            (message["id"].as_str(), message["type"].as_str()),
            (Some(id), Some(kind)),
            "{message}"
        );
        message
    }

    /// The next protocol message (pings skipped), or the close frame's
    /// code and reason when the server closes instead.
    pub async fn next_or_close(&mut self) -> Result<Value, (u16, String)> {
        loop {
            let frame = tokio::time::timeout(WAIT, self.stream.next())
                .await
                .expect("a message within the wait");
            match frame {
                Some(Ok(Message::Text(text))) => {
                    let message: Value = serde_json::from_str(&text).unwrap();
                    if message["type"] != "ping" {
                        return Ok(message);
                    }
                }
                Some(Ok(Message::Close(Some(frame)))) => {
                    return Err((frame.code.into(), frame.reason.to_string()));
                }
                Some(Ok(Message::Close(None))) | None => return Err((1005, String::new())),
                Some(Ok(_)) => {}
                Some(Err(e)) => panic!("socket failed before its close frame: {e}"),
            }
        }
    }

    /// The next text message, pings included.
    pub async fn raw_next(&mut self) -> Value {
        loop {
            let frame = tokio::time::timeout(WAIT, self.stream.next())
                .await
                .expect("a message within the wait")
                .expect("the socket is open")
                .expect("a frame");
            if let Message::Text(text) = frame {
                return serde_json::from_str(&text).unwrap();
            }
        }
    }

    /// The code and reason the server closes with, skipping what it sends
    /// before.
    pub async fn closed(&mut self) -> (u16, String) {
        loop {
            if let Err(close) = self.next_or_close().await {
                return close;
            }
        }
    }
}
