//! Redis: the one connection a process shares, and the pattern every
//! memory-or-Redis store follows.
//!
//! Four things can live in this process's memory (right for one
//! instance) or in Redis (shared by every instance behind a load
//! balancer): rate-limit budgets (`crate::rate_limit`), automatic
//! persisted documents (`crate::graphql::persisted`), read-your-writes
//! positions (`crate::db::write_positions`) and the response cache
//! (`crate::graphql::cache`). Each is one trait with two backends beside
//! it, `memory` and `redis`; start-up turns the setting into a
//! [`Backend`] and the store's constructor picks the backend from it, so
//! no caller ever asks which one it has.
//!
//! The connection is made once (`REDIS_URL`, see `crate::config::redis`),
//! only when some store keeps its state in Redis, and every Redis backend
//! shares it (it multiplexes commands). Whatever would break a store is
//! checked here, before anything is served: a Redis that may evict keys
//! is refused.

use ::redis::aio::ConnectionManager;
use anyhow::Context as _;

/// Where a store keeps its state, picked once at start-up.
#[derive(Clone)]
pub enum Backend {
    /// This process's memory: right for one instance; each instance of
    /// several keeps its own.
    Memory,
    /// Redis, shared by every instance.
    Redis(ConnectionManager),
}

impl Backend {
    /// The backend `setting` (the variable that chose it, for the error)
    /// names: Redis when `redis` is asked for, over `connection`.
    pub fn pick(
        redis: bool,
        connection: Option<&ConnectionManager>,
        setting: &str,
    ) -> anyhow::Result<Self> {
        if !redis {
            return Ok(Self::Memory);
        }
        let connection = connection
            .with_context(|| format!("{setting}=redis needs a Redis connection"))?
            .clone();
        Ok(Self::Redis(connection))
    }
}

/// The one Redis connection of a process, shared by every store that
/// uses Redis (it multiplexes commands). A Redis that may evict keys is
/// refused (see [`refuse_eviction`]).
pub async fn connect(url: &str) -> anyhow::Result<ConnectionManager> {
    let client =
        ::redis::Client::open(url).with_context(|| format!("invalid REDIS_URL `{url}`"))?;
    let mut connection = ConnectionManager::new(client)
        .await
        .with_context(|| format!("failed to connect to Redis at {url}"))?;
    refuse_eviction(&mut connection).await?;
    Ok(connection)
}

/// Every store in Redis is right only while Redis drops no key on its
/// own: an evicted invalidation mark or tag list lets the response cache
/// keep or serve a stale page, an evicted write position sends a viewer
/// to a replica without their write, an evicted budget starts afresh.
/// `noeviction` (Redis's default) refuses growing writes at `maxmemory`
/// instead, which each store survives; with `maxmemory 0` nothing is
/// evicted. Read from `INFO`, which managed services keep when they turn
/// `CONFIG` off.
async fn refuse_eviction(connection: &mut ConnectionManager) -> anyhow::Result<()> {
    let info: ::redis::InfoDict = match ::redis::cmd("INFO")
        .arg("memory")
        .query_async(connection)
        .await
    {
        Ok(info) => info,
        Err(e) => {
            tracing::warn!(error = %e, "Redis's eviction policy could not be read (INFO memory); it must be noeviction");
            return Ok(());
        }
    };
    let limit: Option<u64> = info.get("maxmemory");
    let policy: Option<String> = info.get("maxmemory_policy");
    match (limit, policy) {
        (Some(0), _) => Ok(()),
        (Some(_), Some(policy)) if policy == "noeviction" => Ok(()),
        (Some(limit), Some(policy)) => anyhow::bail!(
            "Redis may evict keys (maxmemory {limit} bytes, maxmemory-policy {policy}); \
             set maxmemory-policy noeviction, or maxmemory 0: an evicted key would let the \
             response cache serve stale pages and viewers miss their own writes"
        ),
        _ => {
            tracing::warn!(
                "Redis does not report maxmemory and maxmemory_policy (INFO memory); the policy must be noeviction"
            );
            Ok(())
        }
    }
}
