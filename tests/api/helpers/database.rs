//! Databases for tests: each test gets its own, cloned from a template
//! that is migrated once per set of migrations, and dropped when the test
//! is done.
//!
//! `DATABASE_URL` names a server where databases can be created (its own
//! database is used only for administration). Without it, the tests start
//! the embedded PostgreSQL under `target/test-postgres` and leave it
//! running for the next run.

use std::{path::Path, sync::OnceLock};

use conduit::db::embedded::EmbeddedPostgres;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use sha2::{Digest, Sha256};

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
    // This run uses the template from now on: said on the template itself,
    // so a run of another checkout (other migrations) leaves it alone.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    admin
        .batch_execute(&format!(
            "COMMENT ON DATABASE \"{template}\" IS 'used {now}'"
        ))
        .await
        .unwrap();
    // Templates of superseded migrations are not needed any more, once no
    // run has started on them for a while; one still in use elsewhere
    // refuses the drop and is left alone.
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

/// How long after a run started on it another checkout's template is kept.
const TEMPLATE_KEPT_SECS: i64 = 3 * 3600;

/// Test templates other than `current` (finished ones only) that no run
/// has started on for [`TEMPLATE_KEPT_SECS`].
async fn stale_templates(conn: &mut AsyncPgConnection, current: &str) -> Vec<String> {
    use diesel_async::RunQueryDsl;
    diesel::sql_query(
        "SELECT datname FROM pg_database
         WHERE datname LIKE 'conduit\\_test\\_template\\_%'
           AND datname NOT LIKE '%\\_building' AND datname <> $1
           AND coalesce(substring(shobj_description(oid, 'pg_database') FROM '^used ([0-9]+)$')::bigint, 0)
               < extract(epoch FROM now())::bigint - $2",
    )
    .bind::<diesel::sql_types::Text, _>(current)
    .bind::<diesel::sql_types::BigInt, _>(TEMPLATE_KEPT_SECS)
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
    /// Whether dropping this handle drops the database (a shared handle,
    /// for a second instance on it, does not).
    owned: bool,
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
            owned: true,
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
            owned: true,
        }
    }

    /// Another handle on the same database, which leaves it in place when
    /// dropped: for a second instance of the server.
    pub fn share(&self) -> Self {
        Self {
            name: self.name.clone(),
            url: self.url.clone(),
            admin_url: self.admin_url.clone(),
            owned: false,
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

    /// Waits until `n` sessions on this database are waiting for a lock:
    /// the statements a test holds up have reached the lock it holds.
    /// Panics after ten seconds.
    pub async fn until_waiting_for_locks(&self, n: i64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let waiting = self
                .count(&format!(
                    "SELECT count(*) FROM pg_stat_activity
                     WHERE datname = '{}' AND wait_event_type = 'Lock'",
                    self.name
                ))
                .await;
            if waiting >= n {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "after 10s {waiting} of {n} statements were waiting for a lock"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
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
        if !self.owned {
            return;
        }
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
