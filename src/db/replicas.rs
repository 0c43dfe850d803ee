//! Read replicas: which database a request reads from.
//!
//! Queries read from a streaming replica when one is up, within the lag
//! bound, and has replayed the reader's last write; otherwise from the
//! primary. A poller reads each replica's replay position every
//! `DATABASE_REPLICA_POLL_MS`; since a replica only moves forward, a
//! position read a moment ago is a safe lower bound for routing.
//!
//! Read your writes: after a mutation, the primary's WAL position is
//! remembered for the viewer (see [`super::write_positions`]), and a
//! replica serves that viewer only once it has replayed that far.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Weak,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use diesel::{dsl::sql, sql_types::Nullable, sql_types::Text};
use uuid::Uuid;

use super::{
    Database, PoolSettings,
    write_positions::{self, LastWrite, Lsn, WritePositionStore},
};
use crate::{config::Replicas, error::AppResult, redis::Backend, telemetry::metrics_export};

/// Where the requests of this instance read. Cheap to clone; without
/// replicas every read goes to the primary and nothing is polled.
#[derive(Clone, Default)]
pub struct ReadRouter(Option<Arc<Router>>);

struct Router {
    primary: Database,
    replicas: Vec<Replica>,
    positions: Arc<dyn WritePositionStore>,
    max_lag: Duration,
    /// Spreads readers over replicas.
    next: AtomicUsize,
}

struct Replica {
    name: Arc<str>,
    /// The replica's own pool, for polling.
    pool: Database,
    /// The same pool, handing over to the primary when it gives no
    /// connection: what requests get.
    routed: Database,
    status: Arc<ReplicaStatus>,
}

/// A replica as its last poll saw it.
#[derive(Default)]
pub struct ReplicaStatus {
    up: AtomicBool,
    replayed: AtomicU64,
    lag_ms: AtomicU64,
}

impl ReplicaStatus {
    fn replayed(&self) -> Lsn {
        Lsn(self.replayed.load(Ordering::Acquire))
    }

    fn lag(&self) -> Duration {
        Duration::from_millis(self.lag_ms.load(Ordering::Relaxed))
    }
}

/// What a replica's pool falls back on (see [`Database::conn`]).
pub struct Fallback {
    primary: Database,
    name: Arc<str>,
    status: Arc<ReplicaStatus>,
}

impl Fallback {
    pub(super) fn primary(&self) -> &Database {
        &self.primary
    }

    /// No connection to the replica could be had: when it cannot be
    /// reached, it is skipped until the poller sees it answer again;
    /// when it is only busy, this one request reads from the primary.
    pub(super) fn replica_failed(&self, reachable: bool) {
        if reachable {
            metrics_export::record_replica_fallback("replica_busy");
        } else {
            if self.status.up.swap(false, Ordering::AcqRel) {
                tracing::warn!(replica = %self.name, "replica unreachable; reading from the primary");
            }
            metrics_export::record_replica_fallback("replica_down");
        }
    }
}

impl ReadRouter {
    /// Pools for `settings.urls` (none is contacted yet: a replica down at
    /// start is skipped until it answers) and the task that polls them;
    /// viewers' write positions are kept in `positions`.
    pub async fn start(
        primary: &Database,
        settings: &Replicas,
        pool: &PoolSettings,
        positions: &Backend,
    ) -> anyhow::Result<Self> {
        if settings.urls.0.is_empty() {
            return Ok(Self(None));
        }
        // A replica that gives no connection quickly is passed over for
        // the primary, rather than holding the request up.
        let replica_pool = PoolSettings {
            acquire_timeout: pool.acquire_timeout.min(Duration::from_millis(250)),
            ..pool.clone()
        };
        let mut replicas = Vec::with_capacity(settings.urls.0.len());
        for (i, url) in settings.urls.0.iter().enumerate() {
            let name: Arc<str> = format!("replica-{}", i + 1).into();
            let db = Database::pool(url, &replica_pool)
                .await
                .with_context(|| format!("DATABASE_REPLICA_URLS: {name}"))?;
            let status = Arc::new(ReplicaStatus::default());
            let routed = db.clone().handing_over(Fallback {
                primary: primary.clone(),
                name: name.clone(),
                status: status.clone(),
            });
            replicas.push(Replica {
                name,
                pool: db,
                routed,
                status,
            });
        }
        let ttl = settings.max_lag * 2 + Duration::from_secs(10);
        let positions = write_positions::store(positions, ttl);
        let router = Arc::new(Router {
            primary: primary.clone(),
            replicas,
            positions,
            max_lag: settings.max_lag,
            next: AtomicUsize::new(0),
        });
        tokio::spawn(poll(Arc::downgrade(&router), settings.poll_every));
        Ok(Self(Some(router)))
    }

    /// Whether replicas are configured.
    pub fn is_enabled(&self) -> bool {
        self.0.is_some()
    }

    /// The replica that `reader` (a viewer's id, or none for anonymous
    /// reads) may read from now, or `None` for the primary.
    pub async fn replica_for(&self, reader: Option<Uuid>) -> Option<Database> {
        let router = self.0.as_ref()?;
        match router.choose(reader).await {
            Ok(replica) => {
                metrics_export::record_read_target("replica");
                Some(replica.routed.clone())
            }
            Err(reason) => {
                metrics_export::record_read_target("primary");
                metrics_export::record_replica_fallback(reason);
                None
            }
        }
    }

    /// Remembers that `writers` have just written: their reads stay on the
    /// primary until a replica has replayed the primary's current
    /// position. Called after a mutation, before its response is sent.
    pub async fn wrote(&self, writers: &[Uuid]) -> AppResult<()> {
        let Some(router) = &self.0 else {
            return Ok(());
        };
        if writers.is_empty() {
            return Ok(());
        }
        let position = current_position(&router.primary).await?;
        if let Err(e) = router.positions.raise(writers, position).await {
            // The write stands; until the entry would have expired, this
            // viewer may read from a replica that has not replayed it.
            tracing::error!(error = %e, "could not remember a write's WAL position");
            metrics_export::record_replica_fallback("position_unsaved");
        }
        Ok(())
    }
}

impl Router {
    /// A replica fit for `reader`, or why none is.
    async fn choose(&self, reader: Option<Uuid>) -> Result<&Replica, &'static str> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut fit = Vec::with_capacity(self.replicas.len());
        let mut reason = "replica_down";
        for k in 0..self.replicas.len() {
            let replica = &self.replicas[(start + k) % self.replicas.len()];
            if !replica.status.up.load(Ordering::Acquire) {
                continue;
            }
            if replica.status.lag() > self.max_lag {
                reason = "replica_lagging";
                continue;
            }
            fit.push(replica);
        }
        if fit.is_empty() {
            return Err(reason);
        }
        let Some(reader) = reader else {
            return Ok(fit[0]);
        };
        let needed = match self.positions.get(reader).await {
            Ok(LastWrite::At(position)) => Some(position),
            Ok(LastWrite::None) => None,
            Ok(LastWrite::Forgotten) => return Err("positions_reset"),
            Err(e) => {
                tracing::warn!(error = %e, "could not read a viewer's last write position");
                return Err("position_unknown");
            }
        };
        fit.into_iter()
            .find(|replica| needed.is_none_or(|needed| replica.status.replayed() >= needed))
            .ok_or("replica_behind_reader")
    }
}

/// The primary's WAL position now: every write committed so far is at or
/// before it.
async fn current_position(primary: &Database) -> AppResult<Lsn> {
    use diesel_async::RunQueryDsl as _;
    let mut conn = primary.conn().await?;
    let text: String = diesel::select(sql::<Text>("pg_current_wal_lsn()::text"))
        .get_result(&mut conn)
        .await?;
    text.parse().map_err(|e: anyhow::Error| {
        crate::error::AppError::Internal(e.context("pg_current_wal_lsn"))
    })
}

/// A replica's replay position; `None` when the server is not a replica.
async fn replayed_position(replica: &Database) -> anyhow::Result<Option<Lsn>> {
    use diesel_async::RunQueryDsl as _;
    let mut conn = replica.checkout().await?;
    let text: Option<String> =
        diesel::select(sql::<Nullable<Text>>("pg_last_wal_replay_lsn()::text"))
            .get_result(&mut conn)
            .await?;
    text.map(|t| t.parse()).transpose()
}

/// How much history of the primary's position the lag is measured from.
const SAMPLES_KEPT: Duration = Duration::from_secs(30);

/// Reads every replica's replay position each `every`, and the primary's
/// position, to tell each replica's lag: the age of the oldest write it
/// has not replayed. Stops when the router is dropped.
async fn poll(router: Weak<Router>, every: Duration) {
    let mut samples: VecDeque<(Instant, Lsn)> = VecDeque::new();
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let answer_within = every.max(Duration::from_millis(500));
    loop {
        ticks.tick().await;
        let Some(router) = router.upgrade() else {
            return;
        };
        if let Ok(Ok(position)) =
            tokio::time::timeout(answer_within, current_position(&router.primary)).await
        {
            samples.push_back((Instant::now(), position));
        }
        while samples
            .front()
            .is_some_and(|(at, _)| at.elapsed() > SAMPLES_KEPT)
        {
            samples.pop_front();
        }
        let polls = router.replicas.iter().map(|replica| async move {
            let seen = tokio::time::timeout(answer_within, replayed_position(&replica.pool)).await;
            (replica, seen)
        });
        for (replica, seen) in futures_util::future::join_all(polls).await {
            let status = &replica.status;
            let seen = match seen {
                Ok(Ok(seen)) => Ok(seen),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("no answer to its poll".to_owned()),
            };
            let replayed = match seen {
                Ok(Some(replayed)) => replayed,
                Ok(None) => {
                    if status.up.swap(false, Ordering::AcqRel) || status.replayed() == Lsn(0) {
                        tracing::error!(replica = %replica.name, "not a replica (it is not in recovery): skipped");
                    }
                    status.replayed.store(0, Ordering::Release);
                    metrics_export::record_replica(&replica.name, false, Duration::ZERO);
                    continue;
                }
                Err(error) => {
                    if status.up.swap(false, Ordering::AcqRel) {
                        tracing::warn!(replica = %replica.name, %error, "replica down; reading from the primary");
                    }
                    metrics_export::record_replica(&replica.name, false, status.lag());
                    continue;
                }
            };
            let lag = lag(&samples, replayed);
            status.replayed.fetch_max(replayed.0, Ordering::AcqRel);
            status.lag_ms.store(
                u64::try_from(lag.as_millis()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
            if !status.up.swap(true, Ordering::AcqRel) {
                tracing::info!(replica = %replica.name, "replica up");
            }
            metrics_export::record_replica(&replica.name, true, lag);
        }
    }
}

/// How long ago the primary wrote the oldest WAL that `replayed` lacks:
/// zero when the replica has everything the primary had at the last
/// sample; the whole history kept when it lacks even the oldest.
fn lag(samples: &VecDeque<(Instant, Lsn)>, replayed: Lsn) -> Duration {
    match samples.iter().find(|(_, position)| *position > replayed) {
        None => Duration::ZERO,
        Some((at, _)) => at.elapsed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_the_age_of_the_oldest_write_not_replayed() {
        let now = Instant::now();
        let samples: VecDeque<_> = [
            (now - Duration::from_millis(900), Lsn(100)),
            (now - Duration::from_millis(500), Lsn(200)),
            (now - Duration::from_millis(100), Lsn(300)),
        ]
        .into();
        assert_eq!(lag(&samples, Lsn(300)), Duration::ZERO);
        assert_eq!(lag(&samples, Lsn(400)), Duration::ZERO);
        let behind = lag(&samples, Lsn(150));
        assert!(behind >= Duration::from_millis(500) && behind < Duration::from_millis(900));
        assert!(lag(&samples, Lsn(50)) >= Duration::from_millis(900));
    }
}
