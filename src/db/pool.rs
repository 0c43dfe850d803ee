//! The pool's connection manager: diesel-async's, plus two things it does
//! not do.
//!
//! - A connection the server closed while it sat idle (PostgreSQL
//!   restarted, a pooler or firewall dropped it) is replaced at checkout,
//!   not handed to a request to fail on. A closed socket is seen for free;
//!   a connection idle longer than a threshold, which may have died
//!   silently, is pinged first. Busy connections are never pinged, so a
//!   request pays no extra round trip.
//! - Whether the last attempt to connect failed, so that a checkout that
//!   times out can say "the database is down" rather than "busy".

use std::{
    ops::{Deref, DerefMut},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use diesel_async::{
    AsyncPgConnection, SimpleAsyncConnection,
    pooled_connection::{AsyncDieselConnectionManager, PoolError, PoolableConnection},
};

/// A pooled connection that remembers when it was last given back.
pub struct TrackedConnection {
    conn: AsyncPgConnection,
    idle_since: Instant,
}

impl Deref for TrackedConnection {
    type Target = AsyncPgConnection;

    fn deref(&self) -> &AsyncPgConnection {
        &self.conn
    }
}

impl DerefMut for TrackedConnection {
    fn deref_mut(&mut self) -> &mut AsyncPgConnection {
        &mut self.conn
    }
}

/// Whether the database could be reached at the last attempt to connect,
/// and how many times it could not be since start-up.
#[derive(Debug, Clone)]
pub struct Reachability(Arc<(AtomicBool, AtomicU64)>);

impl Reachability {
    fn new() -> Self {
        Self(Arc::new((AtomicBool::new(true), AtomicU64::new(0))))
    }

    /// False from a failed attempt to connect until the next one succeeds.
    pub fn reachable(&self) -> bool {
        self.0.0.load(Ordering::Relaxed)
    }

    /// Outages so far: a wait that saw this change saw the database go.
    pub fn outages(&self) -> u64 {
        self.0.1.load(Ordering::Relaxed)
    }

    fn record(&self, reachable: bool) {
        let was = self.0.0.swap(reachable, Ordering::Relaxed);
        if was != reachable {
            if reachable {
                tracing::info!("the database is reachable again");
            } else {
                self.0.1.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("the database cannot be reached");
            }
        }
    }
}

pub struct ConnectionManager {
    inner: AsyncDieselConnectionManager<AsyncPgConnection>,
    ping_after_idle: Duration,
    reachability: Reachability,
}

impl ConnectionManager {
    pub fn new(
        inner: AsyncDieselConnectionManager<AsyncPgConnection>,
        ping_after_idle: Duration,
    ) -> Self {
        Self {
            inner,
            ping_after_idle,
            reachability: Reachability::new(),
        }
    }

    pub fn reachability(&self) -> Reachability {
        self.reachability.clone()
    }
}

impl bb8::ManageConnection for ConnectionManager {
    type Connection = TrackedConnection;
    type Error = PoolError;

    async fn connect(&self) -> Result<TrackedConnection, PoolError> {
        let connected = bb8::ManageConnection::connect(&self.inner).await;
        self.reachability.record(connected.is_ok());
        if let Err(e) = &connected {
            tracing::debug!(error = %e, "failed to open a database connection");
        }
        Ok(TrackedConnection {
            conn: connected?,
            idle_since: Instant::now(),
        })
    }

    /// Run on every checkout: free unless the connection sat idle long.
    async fn is_valid(&self, conn: &mut TrackedConnection) -> Result<(), PoolError> {
        if conn.conn.is_broken() {
            return Err(PoolError::QueryError(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::ClosedConnection,
                Box::new("the connection was closed while idle".to_owned()),
            )));
        }
        if conn.idle_since.elapsed() >= self.ping_after_idle {
            conn.conn
                .batch_execute("SELECT 1")
                .await
                .map_err(PoolError::QueryError)?;
        }
        Ok(())
    }

    /// Run when a connection is given back: that starts its idle time.
    fn has_broken(&self, conn: &mut TrackedConnection) -> bool {
        conn.idle_since = Instant::now();
        bb8::ManageConnection::has_broken(&self.inner, &mut conn.conn)
    }
}
