//! A webhook receiver on a free local port: records every request and
//! answers as told (200 when told nothing).

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode},
    response::IntoResponse,
};
use serde_json::Value;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub timestamp: i64,
    pub signature: String,
    pub raw: Vec<u8>,
    pub body: Value,
    pub at: Instant,
}

/// What the receiver answers next: a status and an optional `Retry-After`.
type Answer = (u16, Option<&'static str>);

#[derive(Default)]
struct Inner {
    received: Vec<Received>,
    answers: VecDeque<Answer>,
    delay: Duration,
}

#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

impl Receiver {
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let router = axum::Router::new()
            .route("/hooks", axum::routing::post(receive))
            .with_state(inner.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { url, inner }
    }

    /// The next answers, in order; then 200 again.
    pub fn answer(&self, answers: &[Answer]) {
        self.inner
            .lock()
            .unwrap()
            .answers
            .extend(answers.iter().copied());
    }

    /// Each request takes this long to answer.
    pub fn slow_down(&self, delay: Duration) {
        self.inner.lock().unwrap().delay = delay;
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().unwrap().received.clone()
    }

    /// Waits until `n` requests arrived (panics after `within`).
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let started = Instant::now();
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                started.elapsed() < within,
                "{} of {n} webhook requests within {within:?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn receive(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    raw: Bytes,
) -> impl IntoResponse {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (answer, delay) = {
        let mut inner = inner.lock().unwrap();
        inner.received.push(Received {
            id: header("webhook-id"),
            timestamp: header("webhook-timestamp").parse().unwrap_or_default(),
            signature: header("webhook-signature"),
            raw: raw.to_vec(),
            body: serde_json::from_slice(&raw).unwrap_or(Value::Null),
            at: Instant::now(),
        });
        (
            inner.answers.pop_front().unwrap_or((200, None)),
            inner.delay,
        )
    };
    tokio::time::sleep(delay).await;
    let mut response = StatusCode::from_u16(answer.0).unwrap().into_response();
    if let Some(after) = answer.1 {
        response
            .headers_mut()
            .insert("retry-after", HeaderValue::from_static(after));
    }
    response
}
