//! PostgreSQL access: the bb8 pool of diesel-async connections, embedded
//! migrations, and the embedded server used when no `DATABASE_URL` is set.

pub mod embedded;
pub mod models;
pub mod pool;
pub mod replicas;
pub mod schema;
pub mod seed;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::Context;
use diesel::{
    Connection, RunQueryDsl as _,
    connection::{Instrumentation, InstrumentationEvent},
};
use diesel_async::{
    AsyncConnection, AsyncPgConnection, SimpleAsyncConnection,
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
pub type PooledConn<'a> = bb8::PooledConnection<'a, ConnectionManager>;

#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub size: u32,
    pub acquire_timeout: Duration,
    pub statement_timeout: Duration,
    /// A connection idle this long is pinged before a request gets it.
    pub ping_after_idle: Duration,
}

/// The connection pool. Cheap to clone.
#[derive(Clone)]
pub struct Database {
    pool: bb8::Pool<ConnectionManager>,
    statements: Arc<AtomicU64>,
    reachability: Reachability,
    /// For a replica: the primary, which answers when no connection to
    /// the replica can be had.
    fallback: Option<Arc<replicas::Fallback>>,
}

/// Counts every statement a pooled connection sends, through diesel's
/// instrumentation hook: the ground truth for "queries per request".
struct CountStatements(Arc<AtomicU64>);

impl Instrumentation for CountStatements {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        if let InstrumentationEvent::StartQuery { .. } = event {
            self.0.fetch_add(1, Ordering::Relaxed);
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
        let mut config = ManagerConfig::<AsyncPgConnection>::default();
        config.custom_setup = Box::new(move |url| {
            let url = url.to_owned();
            let counter = counter.clone();
            async move {
                let mut conn = AsyncPgConnection::establish(&url).await?;
                conn.batch_execute(&format!(
                    "SET statement_timeout = {statement_ms}; \
                     SET idle_in_transaction_session_timeout = {}; \
                     SET application_name = 'conduit'",
                    statement_ms * 2
                ))
                .await
                .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                conn.set_instrumentation(CountStatements(counter));
                Ok(conn)
            }
            .boxed()
        });
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
            fallback: None,
        })
    }

    /// A pooled connection; waits at most the acquire timeout, then fails
    /// instead of hanging: `SERVICE_UNAVAILABLE` when the database cannot
    /// be reached, `TIMEOUT` when every connection is busy.
    ///
    /// A replica that gives no connection hands over to the primary.
    pub async fn conn(&self) -> AppResult<PooledConn<'_>> {
        match (self.checkout().await, &self.fallback) {
            (Err(_), Some(fallback)) => {
                fallback.replica_failed(self.reachability.reachable());
                fallback.primary.checkout().await
            }
            (conn, _) => conn,
        }
    }

    async fn checkout(&self) -> AppResult<PooledConn<'_>> {
        match self.pool.get().await {
            Ok(conn) => Ok(conn),
            Err(bb8::RunError::TimedOut) if !self.reachability.reachable() => {
                Err(AppError::Unavailable(DATABASE_UNAVAILABLE))
            }
            Err(e) => Err(e.into()),
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
