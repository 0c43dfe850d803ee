//! Test harness: each test gets its own database, cloned from a template
//! that is migrated once per set of migrations, and its own server on a
//! free port. The database is dropped when the test's `TestApp` drops.
//!
//! `DATABASE_URL` names a server where databases can be created (its own
//! database is used only for administration). Without it, the tests start
//! the embedded PostgreSQL under `target/test-postgres` and leave it
//! running for the next run.

use std::{path::Path, sync::OnceLock, time::Duration};

use conduit::{config::Config, db::embedded::EmbeddedPostgres, startup::Application};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::{sync::oneshot, task::JoinHandle};

pub const JWT_SECRET: &str = "test-secret-that-is-long-enough-for-hs256-keys";
pub const PASSWORD: &str = "correct horse battery";

struct DatabaseServer {
    admin_url: String,
    template: String,
}

/// `postgres://…/admin_db?params` with the database replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_end = base
        .find("://")
        .map(|i| i + 3)
        .and_then(|start| base[start..].find('/').map(|i| start + i))
        .unwrap_or(base.len());
    let mut out = format!("{}/{name}", &base[..authority_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// A digest of the migrations, so a changed migration gets a new template.
fn migrations_digest() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut entries: Vec<_> = walk(&dir);
    entries.sort();
    let mut hasher = Sha256::new();
    for path in entries {
        hasher.update(
            path.strip_prefix(&dir)
                .unwrap()
                .to_string_lossy()
                .as_bytes(),
        );
        hasher.update(std::fs::read(&path).unwrap());
    }
    hasher.finalize()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .flat_map(|e| {
            let path = e.unwrap().path();
            if path.is_dir() {
                walk(&path)
            } else {
                vec![path]
            }
        })
        .collect()
}

/// Runs `f` to completion on a private runtime, outside any test's runtime.
fn block_on_own_runtime<T: Send + 'static>(
    f: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    })
    .join()
    .unwrap()
}

fn database_server() -> &'static DatabaseServer {
    static SERVER: OnceLock<DatabaseServer> = OnceLock::new();
    SERVER.get_or_init(|| block_on_own_runtime(prepare_server()))
}

async fn prepare_server() -> DatabaseServer {
    let admin_url = match std::env::var("DATABASE_URL").ok().filter(|v| !v.is_empty()) {
        Some(url) => url,
        None => {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-postgres");
            let server = EmbeddedPostgres::start(&dir, 54339)
                .await
                .expect("failed to start the embedded PostgreSQL for tests");
            let url = server.admin_url();
            // Left running for the rest of this run and the next one.
            std::mem::forget(server);
            url
        }
    };
    let template = format!("conduit_test_template_{}", migrations_digest());
    let mut admin = AsyncPgConnection::establish(&admin_url)
        .await
        .expect("failed to connect to DATABASE_URL for tests");
    // One process at a time builds the template.
    admin
        .batch_execute("SELECT pg_advisory_lock(7462637)")
        .await
        .unwrap();
    let exists = database_exists(&mut admin, &template).await;
    if !exists {
        let building = format!("{template}_building");
        admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{building}\" WITH (FORCE)"
            ))
            .await
            .unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE \"{building}\""))
            .await
            .unwrap();
        conduit::db::run_migrations(&with_database(&admin_url, &building))
            .await
            .expect("failed to migrate the template database");
        // Renamed only when complete: a crash never leaves a half-built template.
        admin
            .batch_execute(&format!(
                "ALTER DATABASE \"{building}\" RENAME TO \"{template}\""
            ))
            .await
            .unwrap();
    }
    // Templates of superseded migrations are not needed any more; one still
    // in use elsewhere refuses the drop and is left alone.
    for stale in stale_templates(&mut admin, &template).await {
        let _ = admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS \"{stale}\""))
            .await;
    }
    admin
        .batch_execute("SELECT pg_advisory_unlock(7462637)")
        .await
        .unwrap();
    DatabaseServer {
        admin_url,
        template,
    }
}

#[derive(diesel::QueryableByName)]
struct DatabaseName {
    #[diesel(sql_type = diesel::sql_types::Text)]
    datname: String,
}

/// Test templates other than `current` (finished ones only).
async fn stale_templates(conn: &mut AsyncPgConnection, current: &str) -> Vec<String> {
    use diesel_async::RunQueryDsl;
    diesel::sql_query(
        "SELECT datname FROM pg_database
         WHERE datname LIKE 'conduit\\_test\\_template\\_%'
           AND datname NOT LIKE '%\\_building' AND datname <> $1",
    )
    .bind::<diesel::sql_types::Text, _>(current)
    .load::<DatabaseName>(conn)
    .await
    .unwrap_or_default()
    .into_iter()
    .map(|d| d.datname)
    .collect()
}

async fn database_exists(conn: &mut AsyncPgConnection, name: &str) -> bool {
    use diesel::{dsl::sql, sql_types::Bool};
    use diesel_async::RunQueryDsl;
    diesel::select(sql::<Bool>(&format!(
        "EXISTS (SELECT 1 FROM pg_database WHERE datname = '{name}')"
    )))
    .get_result(conn)
    .await
    .unwrap()
}

/// A database of its own, dropped on drop.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
    admin_url: String,
}

impl TestDatabase {
    pub async fn create() -> Self {
        let server = database_server();
        let name = format!("conduit_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = AsyncPgConnection::establish(&server.admin_url)
            .await
            .unwrap();
        admin
            .batch_execute(&format!(
                "CREATE DATABASE \"{name}\" TEMPLATE \"{}\"",
                server.template
            ))
            .await
            .unwrap();
        Self {
            url: with_database(&server.admin_url, &name),
            name,
            admin_url: server.admin_url.clone(),
        }
    }

    /// An empty database on the server at `admin_url` (the app migrates it).
    pub async fn create_on(admin_url: &str) -> Self {
        let name = format!("conduit_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = AsyncPgConnection::establish(admin_url).await.unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap();
        Self {
            url: with_database(admin_url, &name),
            name,
            admin_url: admin_url.to_owned(),
        }
    }

    /// Runs SQL directly, as an operator would.
    pub async fn execute(&self, sql: &str) {
        let mut conn = AsyncPgConnection::establish(&self.url).await.unwrap();
        conn.batch_execute(sql).await.unwrap();
    }

    /// The first column of the first row of `sql`, as a count.
    pub async fn count(&self, sql: &str) -> i64 {
        use diesel::{dsl::sql as raw, sql_types::BigInt};
        use diesel_async::RunQueryDsl;
        let mut conn = AsyncPgConnection::establish(&self.url).await.unwrap();
        diesel::select(raw::<BigInt>(&format!("({sql})")))
            .get_result(&mut conn)
            .await
            .unwrap()
    }

    /// Drops the database now, disconnecting everyone.
    pub async fn drop_now(&self) {
        let mut admin = AsyncPgConnection::establish(&self.admin_url).await.unwrap();
        admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ))
            .await
            .unwrap();
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        block_on_own_runtime(async move {
            if let Ok(mut admin) = AsyncPgConnection::establish(&admin_url).await {
                let _ = admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .await;
            }
        });
    }
}

pub fn test_config(database_url: &str, overrides: &[(&str, &str)]) -> Config {
    let mut vars: Vec<(String, String)> = vec![
        ("DATABASE_URL".into(), database_url.into()),
        ("PORT".into(), "0".into()),
        ("JWT_SECRET".into(), JWT_SECRET.into()),
        // Tests sign many users up and in from one address.
        ("SIGN_UP_LIMIT_PER_ADDRESS".into(), "10000".into()),
        ("SIGN_IN_LIMIT_PER_ADDRESS".into(), "10000".into()),
        ("SIGN_IN_LIMIT_PER_ACCOUNT".into(), "10000".into()),
    ];
    for (k, v) in overrides {
        vars.retain(|(key, _)| key != k);
        vars.push((k.to_string(), v.to_string()));
    }
    Config::from_lookup(|key| vars.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()))
        .expect("test configuration is valid")
}

/// A running server on its own database.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub db: TestDatabase,
    pub state: conduit::state::AppState,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
}

/// What a client sees: the HTTP status and the JSON body.
#[derive(Debug)]
pub struct GraphQLResponse {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl GraphQLResponse {
    /// The first error's `extensions.code`.
    pub fn error_code(&self) -> Option<&str> {
        self.body["errors"][0]["extensions"]["code"].as_str()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Asserts a request whose token was ignored was served as anonymous and
/// said why: `WWW-Authenticate` per RFC 6750 and the code in the top-level
/// `extensions`, with no entry in `errors` for it.
pub fn assert_served_anonymously(response: &GraphQLResponse, code: &str) {
    assert_eq!(response.status, 200, "{:?}", response.body);
    let challenge = response.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer error=\"invalid_token\", error_description=\""),
        "WWW-Authenticate: {challenge:?}"
    );
    assert_eq!(
        response.body["extensions"]["authentication"]["code"], code,
        "{:?}",
        response.body
    );
    assert!(
        response.body["errors"].is_null(),
        "a rejected token is not an error: {:?}",
        response.body
    );
}

/// Every response the suite sees through these helpers is JSON, never a
/// 500, and never carries an internal error.
async fn checked(response: reqwest::Response) -> GraphQLResponse {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body: Value = response.json().await.expect("JSON body");
    assert_ne!(status, 500, "{body}");
    let internal = body
        .as_array()
        .map_or_else(|| vec![&body], |batch| batch.iter().collect())
        .iter()
        .flat_map(|r| r["errors"].as_array().cloned().unwrap_or_default())
        .any(|e| e["extensions"]["code"] == "INTERNAL_SERVER_ERROR");
    assert!(!internal, "internal error: {body}");
    GraphQLResponse {
        status,
        headers,
        body,
    }
}

/// A signed-in client's tokens.
#[derive(Debug, Clone)]
pub struct Session {
    pub token: String,
    pub refresh_token: String,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    pub async fn spawn_with(overrides: &[(&str, &str)]) -> Self {
        Self::spawn_on(TestDatabase::create().await, overrides).await
    }

    /// A server on `db`, which may live on a PostgreSQL of the test's own.
    pub async fn spawn_on(db: TestDatabase, overrides: &[(&str, &str)]) -> Self {
        conduit::telemetry::init(conduit::config::LogFormat::Pretty);
        let config = test_config(&db.url, overrides);
        let app = Application::build(&config).await.expect("app builds");
        let address = format!("http://{}", app.local_addr());
        let state = app.state().clone();
        let (tx, rx) = oneshot::channel();
        let server = tokio::spawn(app.run_until(async {
            let _ = rx.await;
        }));
        Self {
            address,
            client: reqwest::Client::new(),
            db,
            state,
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

    pub async fn post(&self, body: Value, token: Option<&str>) -> GraphQLResponse {
        let mut request = self.client.post(self.url("/graphql")).json(&body);
        if let Some(token) = token {
            request = request.header("Authorization", format!("Token {token}"));
        }
        let response = request.send().await.expect("request sent");
        checked(response).await
    }

    pub async fn query(&self, query: &str, variables: Value) -> GraphQLResponse {
        self.post(json!({ "query": query, "variables": variables }), None)
            .await
    }

    pub async fn query_as(&self, token: &str, query: &str, variables: Value) -> GraphQLResponse {
        self.post(
            json!({ "query": query, "variables": variables }),
            Some(token),
        )
        .await
    }

    /// The same document with a raw `Authorization` header value.
    pub async fn query_with_authorization(
        &self,
        authorization: &str,
        query: &str,
    ) -> GraphQLResponse {
        let response = self
            .client
            .post(self.url("/graphql"))
            .header("Authorization", authorization)
            .json(&json!({ "query": query }))
            .send()
            .await
            .unwrap();
        checked(response).await
    }

    pub async fn sign_up(&self, username: &str, email: &str) -> Value {
        let response = self
            .query(
                "mutation($input: CreateUserInput!) {
                    createUser(input: $input) { user { id username email } errors { message path code } }
                }",
                json!({ "input": { "username": username, "email": email, "password": PASSWORD } }),
            )
            .await;
        assert_eq!(
            response.body["data"]["createUser"]["errors"],
            json!([]),
            "{:?}",
            response.body
        );
        response.body["data"]["createUser"]["user"].clone()
    }

    pub async fn sign_in(&self, email: &str, password: &str) -> GraphQLResponse {
        self.query(
            "mutation($input: SignInUserInput!) {
                signInUser(input: $input) {
                    token refreshToken tokenExpiresAt
                    viewer { user { username email } }
                    errors { message path code }
                }
            }",
            json!({ "input": { "email": email, "password": password } }),
        )
        .await
    }

    /// Signs up and in; returns the session.
    pub async fn signed_in_user(&self, username: &str) -> Session {
        let email = format!("{username}@example.com");
        self.sign_up(username, &email).await;
        let response = self.sign_in(&email, PASSWORD).await;
        let payload = &response.body["data"]["signInUser"];
        Session {
            token: payload["token"].as_str().expect("token").to_owned(),
            refresh_token: payload["refreshToken"]
                .as_str()
                .expect("refresh")
                .to_owned(),
        }
    }

    /// Signs in again as an existing user (another device); returns its
    /// access token.
    pub async fn another_session(&self, email: &str) -> String {
        let response = self.sign_in(email, PASSWORD).await;
        response.body["data"]["signInUser"]["token"]
            .as_str()
            .expect("token")
            .to_owned()
    }

    pub async fn viewer_username(&self, token: &str) -> GraphQLResponse {
        self.query_as(token, "{ viewer { user { username } } }", json!({}))
            .await
    }
}

impl TestApp {
    /// Creates an article as the session's user; returns `{ id slug title tagList }`.
    pub async fn create_article(&self, token: &str, title: &str, tags: &[&str]) -> Value {
        let response = self
            .query_as(
                token,
                "mutation($input: CreateArticleInput!) {
                    createArticle(input: $input) { article { id slug title tagList } errors { path code } }
                }",
                json!({ "input": {
                    "title": title, "description": format!("About {title}"),
                    "body": format!("The body of {title}."), "tagList": tags
                }}),
            )
            .await;
        let payload = &response.body["data"]["createArticle"];
        assert_eq!(payload["errors"], json!([]), "{:?}", response.body);
        payload["article"].clone()
    }

    /// The global id of a user.
    pub async fn user_id(&self, username: &str) -> String {
        let response = self
            .query(
                "query($u: String!) { user(username: $u) { id } }",
                json!({ "u": username }),
            )
            .await;
        response.body["data"]["user"]["id"]
            .as_str()
            .expect("user exists")
            .to_owned()
    }

    pub async fn follow(&self, token: &str, username: &str) -> GraphQLResponse {
        let id = self.user_id(username).await;
        self.query_as(
            token,
            "mutation($id: ID!) { followUser(input: { id: $id }) { user { username followedByViewer followers { totalCount } } errors { path code } } }",
            json!({ "id": id }),
        )
        .await
    }

    pub async fn favorite(&self, token: &str, article_id: &str) -> GraphQLResponse {
        self.query_as(
            token,
            "mutation($id: ID!) { favoriteArticle(input: { id: $id }) { article { favoritesCount viewerHasFavorited } } }",
            json!({ "id": article_id }),
        )
        .await
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

/// Asserts a `viewer` query whose token was ignored (see
/// [`TestApp::viewer_username`]) saw no viewer, and was told why.
pub fn assert_no_viewer(response: &GraphQLResponse, code: &str) {
    assert_served_anonymously(response, code);
    assert_eq!(
        response.body["data"],
        json!({ "viewer": null }),
        "{:?}",
        response.body
    );
}

/// Asserts a `viewer` query (see [`TestApp::viewer_username`]) was served
/// to a signed-in user.
pub fn assert_viewer(response: &GraphQLResponse) {
    assert!(
        response.body["data"]["viewer"]["user"]["username"].is_string(),
        "{:?}",
        response.body
    );
    assert!(response.body["extensions"]["authentication"].is_null());
    assert!(response.header("www-authenticate").is_none());
}
