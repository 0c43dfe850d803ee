//! The server binary as a process of its own, for what only a process
//! shows: signals, and being killed.

use std::time::Duration;

use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, BufReader, Lines},
    process::{Child, ChildStdout},
};

use super::{JWT_SECRET, TestDatabase};

/// A running `conduit` process and its JSON log lines after start-up.
pub struct ServerProcess {
    pub child: Child,
    /// `http://host:port`.
    pub url: String,
    pub lines: Lines<BufReader<ChildStdout>>,
}

impl ServerProcess {
    /// Starts the binary on `db` with `env` on top of a clean environment,
    /// and waits until it serves.
    pub async fn start(db: &TestDatabase, env: &[(&str, &str)]) -> Self {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_conduit"))
            .env_clear()
            .env("DATABASE_URL", &db.url)
            .env("PORT", "0")
            .env("LOG_FORMAT", "json")
            .env("JWT_SECRET", JWT_SECRET)
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let address = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                let entry: Value = serde_json::from_str(&line).unwrap_or_default();
                if entry["fields"]["message"] == "serving GraphQL at /graphql" {
                    return entry["fields"]["address"].as_str().unwrap().to_owned();
                }
            }
            panic!("server exited before serving");
        })
        .await
        .expect("server starts within 30s");
        Self {
            child,
            url: format!("http://{address}"),
            lines,
        }
    }
}
