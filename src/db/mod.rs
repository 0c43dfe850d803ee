//! PostgreSQL access: the bb8 pool of diesel-async connections, embedded
//! migrations, and the embedded server used when no `DATABASE_URL` is set.

pub mod embedded;
pub mod error;
pub mod models;
pub mod pool;
pub mod replicas;
pub mod route;
pub mod schema;
pub mod seed;
pub mod write_positions;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::Context;
use diesel::connection::CacheSize;
use diesel::{
    Connection, RunQueryDsl as _,
    connection::{Instrumentation, InstrumentationEvent},
};
use diesel_async::{
    AnsiTransactionManager, AsyncConnection, AsyncPgConnection, SimpleAsyncConnection,
    TransactionManager as _,
    async_connection_wrapper::AsyncConnectionWrapper,
    pooled_connection::{AsyncDieselConnectionManager, ManagerConfig},
};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use futures_util::FutureExt;

use crate::error::{AppError, AppResult, DATABASE_UNAVAILABLE};
use pool::{ConnectionManager, Reachability};

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Serialises migrations when several instances start at once.
const MIGRATION_LOCK_KEY: i64 = 0x0063_6f6e_6475_6974; // "conduit" in ASCII

pub type PgManager = AsyncDieselConnectionManager<AsyncPgConnection>;

#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub size: u32,
    pub acquire_timeout: Duration,
    pub statement_timeout: Duration,
    /// A connection idle this long is pinged before a request gets it.
    pub ping_after_idle: Duration,
    /// The URL leads to a transaction pooler (PgBouncer's `pool_mode =
    /// transaction`): see [`PooledConn`].
    pub transaction_pooler: bool,
}

/// The connection pool. Cheap to clone.
#[derive(Clone)]
pub struct Database {
    pool: bb8::Pool<ConnectionManager>,
    statements: Arc<AtomicU64>,
    reachability: Reachability,
    checkouts: Checkouts,
    mode: Mode,
}

/// How a checkout's work is opened and ended.
#[derive(Clone)]
enum Checkouts {
    /// Each statement commits on its own.
    Autocommit,
    /// Behind a transaction pooler: each checkout is one transaction,
    /// opened by this (see [`PooledConn`]).
    Transaction(Arc<str>),
}

/// Whom a pool serves.
#[derive(Clone)]
enum Mode {
    /// Every request: the pool itself.
    Shared,
    /// The requests routed to a replica: when it gives no connection, the
    /// primary answers.
    Replica(Arc<replicas::Fallback>),
    /// One request with writes (see [`route::Route`]): what it wrote and
    /// for whom.
    Request(Arc<RequestWrites>),
}

/// What a request has written so far.
#[derive(Default)]
struct RequestWrites {
    /// The commits of its checkouts, behind a transaction pooler.
    commits: Commits,
    /// Whom the writes were made for, besides the request's viewer: an
    /// account that signed up or in, whose next reads carry its new token.
    writers: std::sync::Mutex<Vec<uuid::Uuid>>,
}

/// Counts every statement a pooled connection sends, through diesel's
/// instrumentation hook: the ground truth for "queries per request". With
/// traces on, each statement is also a span, from its start to its end.
struct CountStatements {
    count: Arc<AtomicU64>,
    running: Vec<tracing::Span>,
}

impl Instrumentation for CountStatements {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        match event {
            InstrumentationEvent::StartQuery { query, .. } => {
                self.count.fetch_add(1, Ordering::Relaxed);
                if crate::telemetry::traces::enabled() {
                    self.running
                        .push(crate::telemetry::traces::statement_span(query));
                }
            }
            InstrumentationEvent::FinishQuery { error, .. } => {
                if let Some(span) = self.running.pop()
                    && error.is_some()
                {
                    span.record("otel.status_code", "ERROR");
                }
            }
            _ => {}
        }
    }
}

impl Database {
    /// Builds the pool. Every new connection gets `statement_timeout`, so a
    /// runaway query is cancelled by PostgreSQL rather than holding a
    /// connection forever.
    pub async fn connect(url: &str, settings: &PoolSettings) -> anyhow::Result<Self> {
        let db = Self::pool(url, settings).await?;
        // Fail start-up now, with a clear message, if the database is unreachable.
        drop(
            db.pool
                .get()
                .await
                .context("failed to connect to the database")?,
        );
        Ok(db)
    }

    /// The pool, without waiting for a first connection: a replica that is
    /// down at start is skipped until it answers.
    async fn pool(url: &str, settings: &PoolSettings) -> anyhow::Result<Self> {
        let statement_ms = settings.statement_timeout.as_millis();
        let statements = Arc::new(AtomicU64::new(0));
        let counter = statements.clone();
        let pooler = settings.transaction_pooler;
        let mut config = ManagerConfig::<AsyncPgConnection>::default();
        config.custom_setup = Box::new(move |url| {
            let url = url.to_owned();
            let counter = counter.clone();
            async move {
                let mut conn = AsyncPgConnection::establish(&url).await?;
                if pooler {
                    // A pooler hands each transaction whichever server
                    // connection is free: a statement prepared in one is
                    // unknown in the next, and session settings would stay
                    // behind on a server connection others then get.
                    conn.set_prepared_statement_cache_size(CacheSize::Disabled);
                } else {
                    conn.batch_execute(&format!(
                        "SET statement_timeout = {statement_ms}; \
                         SET idle_in_transaction_session_timeout = {}; \
                         SET application_name = 'conduit'",
                        statement_ms * 2
                    ))
                    .await
                    .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                }
                conn.set_instrumentation(CountStatements {
                    count: counter,
                    running: Vec::new(),
                });
                Ok(conn)
            }
            .boxed()
        });
        let checkouts = match pooler {
            false => Checkouts::Autocommit,
            true => Checkouts::Transaction(
                format!(
                    "BEGIN; SET LOCAL statement_timeout = {statement_ms}; \
                 SET LOCAL idle_in_transaction_session_timeout = {}",
                    statement_ms * 2
                )
                .into(),
            ),
        };
        let manager = ConnectionManager::new(
            PgManager::new_with_config(url, config),
            settings.ping_after_idle,
        );
        let reachability = manager.reachability();
        let pool = bb8::Pool::builder()
            .max_size(settings.size)
            .connection_timeout(settings.acquire_timeout)
            // The manager's check costs a round trip only for connections
            // idle past `ping_after_idle` (see `pool`).
            .test_on_check_out(true)
            .build(manager)
            .await
            .context("failed to build the database pool")?;
        Ok(Self {
            pool,
            statements,
            reachability,
            checkouts,
            mode: Mode::Shared,
        })
    }

    /// A pooled connection; waits at most the acquire timeout, then fails
    /// instead of hanging: `SERVICE_UNAVAILABLE` when the database cannot
    /// be reached, `TIMEOUT` when every connection is busy.
    ///
    /// A replica that gives no connection hands over to the primary.
    pub async fn conn(&self) -> AppResult<PooledConn<'_>> {
        match &self.mode {
            Mode::Shared => self.checkout().await,
            Mode::Replica(fallback) => match self.checkout().await {
                Err(_) => {
                    fallback.replica_failed(self.reachability.reachable());
                    fallback.primary().checkout().await
                }
                conn => conn,
            },
            Mode::Request(writes) => {
                // What this request wrote on an earlier checkout is
                // committed before it reads again.
                writes.commits.settle().await?;
                self.checkout().await
            }
        }
    }

    /// This replica's pool, handing over to the primary when it gives no
    /// connection.
    fn handing_over(self, fallback: replicas::Fallback) -> Self {
        Self {
            mode: Mode::Replica(Arc::new(fallback)),
            ..self
        }
    }

    async fn checkout(&self) -> AppResult<PooledConn<'_>> {
        // A wait for a connection that outlasted an outage (the database
        // went, and maybe came back while the pool reconnected) is the
        // database's fault, not a busy pool's.
        let outages = self.reachability.outages();
        let mut conn = match self.pool.get_owned().await {
            Ok(conn) => conn,
            Err(bb8::RunError::TimedOut)
                if !self.reachability.reachable() || self.reachability.outages() != outages =>
            {
                return Err(AppError::Unavailable(DATABASE_UNAVAILABLE));
            }
            Err(e) => return Err(e.into()),
        };
        let Checkouts::Transaction(begin) = &self.checkouts else {
            return Ok(PooledConn::new(conn, Unit::Autocommit));
        };
        AnsiTransactionManager::begin_transaction_sql(&mut **conn, begin).await?;
        Ok(PooledConn::new(
            conn,
            match &self.mode {
                Mode::Request(writes) => Unit::Tracked(writes.clone()),
                Mode::Shared | Mode::Replica(_) => Unit::Untracked,
            },
        ))
    }

    /// Whether the pool sits behind a transaction pooler.
    pub fn behind_transaction_pooler(&self) -> bool {
        matches!(self.checkouts, Checkouts::Transaction(_))
    }

    /// This pool, for one request with writes: behind a transaction
    /// pooler, each checkout's commit is awaited before the next checkout
    /// and by [`Database::settle`]; whom it wrote for is kept.
    fn for_request(&self) -> Self {
        Self {
            mode: Mode::Request(Arc::default()),
            ..self.clone()
        }
    }

    /// Waits until everything the request wrote is committed; an error
    /// when a commit failed, so the write must not be acknowledged.
    async fn settle(&self) -> AppResult<()> {
        match &self.mode {
            Mode::Request(writes) => writes.commits.settle().await,
            Mode::Shared | Mode::Replica(_) => Ok(()),
        }
    }

    /// Notes that the request wrote for `user` (who signed up or in), so
    /// that user's next reads see the write (see [`route`]). Outside a
    /// request with writes, nothing needs to know.
    pub fn wrote_for(&self, user: uuid::Uuid) {
        if let Mode::Request(writes) = &self.mode {
            writes.writers.lock().expect("writers lock").push(user);
        }
    }

    /// Whom the request wrote for so far.
    fn take_writers(&self) -> Vec<uuid::Uuid> {
        match &self.mode {
            Mode::Request(writes) => {
                std::mem::take(&mut *writes.writers.lock().expect("writers lock"))
            }
            Mode::Shared | Mode::Replica(_) => Vec::new(),
        }
    }

    /// True when a connection can be had and answers a query.
    pub async fn is_ready(&self) -> bool {
        let Ok(mut conn) = self.pool.get().await else {
            return false;
        };
        conn.batch_execute("SELECT 1").await.is_ok()
    }

    /// Statements sent so far by this pool's connections.
    pub fn statements_executed(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }

    pub fn state(&self) -> bb8::State {
        self.pool.state()
    }
}

/// A connection checked out of the pool, given back when dropped.
///
/// Behind a transaction pooler (PgBouncer's `pool_mode = transaction`,
/// which pins a server connection only for a transaction) every checkout
/// is one transaction: the extended protocol's prepare and execute of a
/// statement then reach the same server connection, and the settings
/// made with `SET LOCAL` apply. Diesel sees the transaction, so a
/// service's own transaction nests as a savepoint. It commits when the
/// connection is given back; a request's checkouts are committed in turn,
/// and its response waits for them (see [`Database::settle`]).
pub struct PooledConn<'a> {
    conn: Option<bb8::PooledConnection<'static, ConnectionManager>>,
    unit: Unit,
    pool: std::marker::PhantomData<&'a Database>,
}

/// How a checkout's work ends.
enum Unit {
    /// Each statement commits on its own (no pooler in between).
    Autocommit,
    /// One transaction, committed on give-back, nobody waiting for it.
    Untracked,
    /// One transaction, whose commit the request awaits.
    Tracked(Arc<RequestWrites>),
}

impl PooledConn<'_> {
    fn new(conn: bb8::PooledConnection<'static, ConnectionManager>, unit: Unit) -> Self {
        Self {
            conn: Some(conn),
            unit,
            pool: std::marker::PhantomData,
        }
    }
}

impl std::ops::Deref for PooledConn<'_> {
    type Target = AsyncPgConnection;

    fn deref(&self) -> &AsyncPgConnection {
        self.conn.as_ref().expect("a connection until dropped")
    }
}

impl std::ops::DerefMut for PooledConn<'_> {
    fn deref_mut(&mut self) -> &mut AsyncPgConnection {
        self.conn.as_mut().expect("a connection until dropped")
    }
}

impl Drop for PooledConn<'_> {
    fn drop(&mut self) {
        let unit = std::mem::replace(&mut self.unit, Unit::Autocommit);
        let (Some(conn), Unit::Untracked | Unit::Tracked(_)) = (self.conn.take(), &unit) else {
            return;
        };
        // Without a runtime (the process is ending) the connection just
        // closes, and the server rolls the transaction back.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let commit = runtime.spawn(commit(conn));
        if let Unit::Tracked(writes) = unit {
            writes.commits.0.lock().expect("commits lock").push(commit);
        }
    }
}

/// Ends a checkout's transaction, then gives the connection back. A
/// connection whose transaction could not be ended is not reused.
async fn commit(
    mut conn: bb8::PooledConnection<'static, ConnectionManager>,
) -> diesel::QueryResult<()> {
    let committed = AnsiTransactionManager::commit_transaction(&mut **conn).await;
    if committed.is_err() {
        let _ = AnsiTransactionManager::rollback_transaction(&mut **conn).await;
    }
    committed
}

/// The commits a request's checkouts have started.
#[derive(Default)]
struct Commits(std::sync::Mutex<Vec<tokio::task::JoinHandle<diesel::QueryResult<()>>>>);

impl Commits {
    async fn settle(&self) -> AppResult<()> {
        let pending = std::mem::take(&mut *self.0.lock().expect("commits lock"));
        let mut settled = Ok(());
        for commit in pending {
            match commit.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => settled = Err(AppError::from(e)),
                Err(_) => settled = Err(AppError::Unavailable(DATABASE_UNAVAILABLE)),
            }
        }
        settled
    }
}

/// Applies pending migrations, holding an advisory lock so that instances
/// starting together take turns.
pub async fn run_migrations(url: &str) -> anyhow::Result<()> {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let mut conn = <AsyncConnectionWrapper<AsyncPgConnection> as Connection>::establish(&url)
            .context("failed to connect to the database to migrate it")?;
        diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
            .execute(&mut conn)
            .context("failed to take the migration lock")?;
        let applied: anyhow::Result<Vec<String>> = conn
            .run_pending_migrations(MIGRATIONS)
            .map(|versions| versions.iter().map(ToString::to_string).collect())
            .map_err(|e| anyhow::anyhow!("{e}"))
            .context("failed to run migrations");
        diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))
            .execute(&mut conn)
            .context("failed to release the migration lock")?;
        for version in applied? {
            tracing::info!(%version, "applied migration");
        }
        Ok(())
    })
    .await
    .context("migration task failed")?
}
