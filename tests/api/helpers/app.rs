//! The application under test: a real server on a free port, on a
//! database of its own, configured per test.

use std::time::Duration;

use conduit::{config::Config, startup::Application};
use tokio::{sync::oneshot, task::JoinHandle};

use super::{TestDatabase, test_config};

/// A running server on its own database.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub db: TestDatabase,
    pub state: conduit::state::AppState,
    pub response_cache: conduit::graphql::cache::ResponseCache,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// A server whose configuration `configure` changes from the tests'.
    pub async fn spawn_with(configure: impl FnOnce(&mut Config)) -> Self {
        Self::spawn_on(TestDatabase::create().await, configure).await
    }

    /// A server on `db`, which may live on a PostgreSQL of the test's own.
    pub async fn spawn_on(db: TestDatabase, configure: impl FnOnce(&mut Config)) -> Self {
        conduit::telemetry::init(conduit::config::LogFormat::Pretty, "info");
        let config = test_config(&db.url, configure);
        let app = Application::build(&config).await.expect("app builds");
        let address = format!("http://{}", app.local_addr());
        let state = app.state().clone();
        let response_cache = app.response_cache().clone();
        let (tx, rx) = oneshot::channel();
        let server = tokio::spawn(app.run_until(async {
            let _ = rx.await;
        }));
        Self {
            address,
            client: reqwest::Client::new(),
            db,
            state,
            response_cache,
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Starts a graceful shutdown and waits for the server to finish.
    pub async fn shut_down(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            tokio::time::timeout(Duration::from_secs(10), server)
                .await
                .expect("server stops within 10s")
                .unwrap()
                .unwrap();
        }
    }

    pub fn trigger_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Statements the server has sent to PostgreSQL so far.
    pub fn statements(&self) -> u64 {
        self.state.db.statements_executed()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.trigger_shutdown();
    }
}
