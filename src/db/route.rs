//! Where one request's SQL goes, decided once when it starts, and what is
//! owed before it answers.
//!
//! - **Route.** A request of queries only reads from a replica that has
//!   replayed its viewer's last write ([`ReadRouter::replica_for`]), else
//!   from the primary's shared pool. A request with a mutation runs on the
//!   primary, on a view of the pool of its own when there is something to
//!   await or remember: behind a transaction pooler each checkout is a
//!   transaction committed on give-back, and with replicas its writers'
//!   next reads must find their writes.
//! - **Settle.** [`Route::answer`] awaits every commit the request started
//!   before its answer leaves, whatever the transport: a write whose
//!   commit failed is never acknowledged.
//! - **Record.** The request's viewer, and whoever its writes were made
//!   for ([`Database::wrote_for`]: an account that signed up or in), read
//!   from the primary until a replica has replayed the write.

use uuid::Uuid;

use super::{Database, replicas::ReadRouter};
use crate::error::AppResult;

/// One request's database.
pub struct Route {
    db: Database,
    kind: RouteKind,
}

/// Where a request's SQL goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    /// The primary's shared pool: nothing to await or remember.
    Primary,
    /// A replica (queries only): what it answers may predate a write whose
    /// invalidation this instance already applied.
    Replica,
    /// The primary, on the request's own view of the pool: its commits are
    /// awaited and its writers remembered before it answers.
    Writes,
}

impl Route {
    /// The route of a request for `viewer`, of queries only or not.
    pub async fn choose(
        primary: &Database,
        reads: &ReadRouter,
        reads_only: bool,
        viewer: Option<Uuid>,
    ) -> Self {
        if reads_only {
            return match reads.replica_for(viewer).await {
                Some(db) => Self {
                    db,
                    kind: RouteKind::Replica,
                },
                None => Self::shared(primary),
            };
        }
        if primary.behind_transaction_pooler() || reads.is_enabled() {
            return Self {
                db: primary.for_request(),
                kind: RouteKind::Writes,
            };
        }
        Self::shared(primary)
    }

    /// The primary's shared pool, as a route.
    pub fn shared(primary: &Database) -> Self {
        Self {
            db: primary.clone(),
            kind: RouteKind::Primary,
        }
    }

    pub fn kind(&self) -> RouteKind {
        self.kind
    }

    /// The database the request's SQL goes to.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// What `work` answered, once every commit the request started has
    /// settled; then, after writes, their writers (and `viewer`) read where
    /// the writes can be seen. An error when a commit failed: the answer
    /// would acknowledge a write that did not happen.
    pub async fn answer<T>(
        &self,
        reads: &ReadRouter,
        viewer: Option<Uuid>,
        work: impl Future<Output = AppResult<T>>,
    ) -> AppResult<T> {
        let answer = match work.await {
            Ok(answer) => self.db.settle().await.map(|()| answer),
            Err(e) => Err(e),
        };
        if self.kind == RouteKind::Writes && reads.is_enabled() {
            let mut writers = self.db.take_writers();
            writers.extend(viewer);
            if let Err(e) = reads.wrote(&writers).await {
                tracing::warn!(error = ?e, "could not read the primary's position after a write");
            }
        }
        answer
    }
}
