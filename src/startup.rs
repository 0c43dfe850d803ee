//! Builds the application (database, schema, router, listener) and serves
//! it until told to stop, then drains requests and closes what it opened.

use std::{future::Future, net::SocketAddr, sync::Arc};

use anyhow::Context;
use axum::Router;
use tokio::net::TcpListener;

use crate::{
    auth::{jwt::JwtKeys, password::PasswordHasher},
    config::Config,
    config::{DatabasePooler, PersistedQueryStore, RateLimitStoreKind, ResponseCacheStore},
    db::{self, Database, PoolSettings, embedded::EmbeddedPostgres, replicas::ReadRouter},
    events::EventBus,
    graphql,
    graphql::{cache::ResponseCache, executor::Executor, persisted::PersistedDocuments},
    http,
    jobs::Workers,
    rate_limit::{Budget, Budgets, RateLimiter},
    redis::Backend,
    state::AppState,
    webhook_transport::WebhookTransport,
};

pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
    embedded: Option<EmbeddedPostgres>,
    /// Where the shutdown is: `/readyz` answers 503 from its start, sockets
    /// close after the drain delay.
    draining: tokio::sync::watch::Sender<http::ws::Shutdown>,
    drain_delay: std::time::Duration,
    sockets: Arc<http::ws::Sockets>,
    /// This process's job workers (none when `JOB_WORKERS=0`).
    workers: Option<Workers>,
    response_cache: ResponseCache,
}

/// The database to use: `DATABASE_URL`, or the embedded server.
pub async fn resolve_database(
    config: &Config,
) -> anyhow::Result<(String, Option<EmbeddedPostgres>)> {
    match &config.database_url {
        Some(url) => Ok((url.clone(), None)),
        None => {
            tracing::info!(
                dir = %config.embedded_database.dir.display(),
                "DATABASE_URL is not set; using the embedded PostgreSQL"
            );
            let embedded = EmbeddedPostgres::start(
                &config.embedded_database.dir,
                config.embedded_database.port,
            )
            .await
            .context("failed to start the embedded PostgreSQL")?;
            Ok((embedded.url(), Some(embedded)))
        }
    }
}

impl Application {
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let (url, embedded) = resolve_database(config).await?;
        let direct = config.database_direct_url.as_deref().unwrap_or(&url);
        db::run_migrations(direct).await?;
        let (state, redis) = app_state(config, &url, direct).await?;
        let workers = if config.jobs.workers > 0 {
            Some(workers(config, direct, state.webhooks.clone()).await?)
        } else {
            None
        };
        let schema = graphql::build_schema(Some(state.clone()), config);
        let documents = PersistedDocuments::new(
            persisted_documents_backend(config, redis.as_ref())?.as_ref(),
            config.trusted_documents.as_deref(),
        )?;
        let cache = ResponseCache::new(
            response_cache_backend(config, redis.as_ref())?.as_ref(),
            &config.response_cache,
        );
        let executor = Executor::new(state.clone(), schema, documents, cache.clone(), config);
        let (draining, shutdown) = tokio::sync::watch::channel(http::ws::Shutdown::Running);
        let sockets = Arc::new(http::ws::Sockets::new(
            config.subscriptions,
            config.cors_allowed_origins(),
            shutdown,
        ));
        let router = http::router(state.clone(), executor, sockets.clone(), config);
        let address = SocketAddr::new(config.host, config.port);
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("failed to bind {address}"))?;
        Ok(Self {
            listener,
            router,
            state,
            embedded,
            draining,
            drain_delay: config.shutdown_drain(),
            sockets,
            workers,
            response_cache: cache,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The response cache this instance answers from.
    pub fn response_cache(&self) -> &ResponseCache {
        &self.response_cache
    }

    /// Serves until `shutdown` resolves; then stops accepting, lets
    /// in-flight requests finish, closes the pool and the embedded database.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self {
            listener,
            router,
            state,
            embedded,
            draining,
            drain_delay,
            sockets,
            workers,
            response_cache: _,
        } = self;
        let (stop_workers, workers_stopped) = tokio::sync::watch::channel(false);
        let workers = workers.map(|workers| {
            let mut stopped = workers_stopped;
            tokio::spawn(workers.run(async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            }))
        });
        tracing::info!(address = %listener.local_addr()?, "serving GraphQL at /graphql");
        let drain = async move {
            shutdown.await;
            // `/readyz` turns 503 while the server still serves, so a load
            // balancer moves new work elsewhere; then WebSockets close with
            // 1001 once their queries and mutations in flight are done, and
            // the server stops accepting and lets its requests finish.
            let _ = draining.send(http::ws::Shutdown::Draining);
            if !drain_delay.is_zero() {
                tracing::info!(
                    seconds = drain_delay.as_secs_f64(),
                    "draining: /readyz answers 503"
                );
                tokio::time::sleep(drain_delay).await;
            }
            let _ = draining.send(http::ws::Shutdown::Closing);
        };
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(drain)
        .await
        .context("server failed")?;
        // Upgraded sockets are not the server's connections any more: wait
        // for them to close on their own.
        let waited = std::time::Instant::now();
        while sockets.open() > 0 && waited.elapsed() < std::time::Duration::from_secs(30) {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        tracing::info!("stopped accepting; in-flight requests finished");
        let _ = stop_workers.send(true);
        if let Some(workers) = workers {
            let _ = workers.await;
        }
        drop(state);
        if let Some(embedded) = embedded {
            embedded.stop().await?;
        }
        Ok(())
    }
}

/// What every service needs, over a pool of `DATABASE_POOL_SIZE`
/// connections to `url` (`direct` bypasses a pooler, for `LISTEN`); and
/// the Redis connection, when something keeps its state there.
async fn app_state(
    config: &Config,
    url: &str,
    direct: &str,
) -> anyhow::Result<(AppState, Option<redis::aio::ConnectionManager>)> {
    let pool = PoolSettings {
        size: config.database_pool_size,
        acquire_timeout: config.database_acquire_timeout,
        statement_timeout: config.database_statement_timeout,
        ping_after_idle: config.database_ping_after_idle,
        transaction_pooler: config.database_pooler == DatabasePooler::Transaction,
    };
    let db = Database::connect(url, &pool).await?;
    // One Redis connection for whatever keeps its state there.
    let redis = if config.uses_redis() {
        Some(crate::redis::connect(&config.redis.url).await?)
    } else {
        None
    };
    // Write positions go wherever another store shares state: in Redis
    // whenever the process has the connection.
    let positions = redis.clone().map_or(Backend::Memory, Backend::Redis);
    let reads = ReadRouter::start(&db, &config.replicas, &pool, &positions).await?;
    if reads.is_enabled() && redis.is_none() && config.is_production() {
        tracing::warn!(
            "replicas without a shared store (RATE_LIMIT_STORE=redis): a viewer's reads see their own writes only on the instance that made them"
        );
    }
    let limiter = rate_limiter(config, redis.as_ref())?;
    let events = EventBus::start(direct, db.clone(), config.subscriptions.buffer).await?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let state = AppState {
        db,
        reads,
        passwords: PasswordHasher::new(cores)?,
        jwt: Arc::new(JwtKeys::new(
            config.jwt_secret()?,
            &config.jwt_previous_secrets.0,
            config.access_token_ttl,
        )),
        refresh_token_ttl: config.refresh_token_ttl,
        pagination: config.pagination,
        limiter,
        events,
        webhooks: WebhookTransport::new(config.jobs.webhooks.clone(), config.is_production())?,
    };
    Ok((state, redis))
}

/// Job workers with a pool of their own, sized to what they run at once.
async fn workers(
    config: &Config,
    url: &str,
    webhooks: WebhookTransport,
) -> anyhow::Result<Workers> {
    let size = u32::try_from(config.jobs.workers)
        .unwrap_or(u32::MAX)
        .saturating_add(2);
    let db = Database::connect(
        url,
        &PoolSettings {
            size,
            acquire_timeout: config.database_acquire_timeout,
            statement_timeout: config.database_statement_timeout,
            ping_after_idle: config.database_ping_after_idle,
            transaction_pooler: false,
        },
    )
    .await?;
    Ok(Workers::new(db, webhooks, url, config.jobs.clone()))
}

/// `conduit worker`: job workers alone, no HTTP, until `shutdown`. It
/// builds only what jobs use: their pool and the webhook client.
pub async fn run_workers(
    config: &Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    if config.jobs.workers == 0 {
        anyhow::bail!("JOB_WORKERS must be at least 1 for `conduit worker`");
    }
    let (url, embedded) = resolve_database(config).await?;
    let direct = config.database_direct_url.as_deref().unwrap_or(&url);
    db::run_migrations(direct).await?;
    let webhooks = WebhookTransport::new(config.jobs.webhooks.clone(), config.is_production())?;
    workers(config, direct, webhooks).await?.run(shutdown).await;
    if let Some(embedded) = embedded {
        embedded.stop().await?;
    }
    Ok(())
}

/// Where automatic persisted queries are kept; `None` when they are off.
fn persisted_documents_backend(
    config: &Config,
    redis: Option<&redis::aio::ConnectionManager>,
) -> anyhow::Result<Option<Backend>> {
    if config.persisted_queries == PersistedQueryStore::Off {
        return Ok(None);
    }
    let redis_kept = config.persisted_queries == PersistedQueryStore::Redis;
    Backend::pick(redis_kept, redis, "PERSISTED_QUERIES").map(Some)
}

/// Where responses are cached; `None` when the cache is off.
fn response_cache_backend(
    config: &Config,
    redis: Option<&redis::aio::ConnectionManager>,
) -> anyhow::Result<Option<Backend>> {
    let store = config.response_cache.store;
    if store == ResponseCacheStore::Off {
        return Ok(None);
    }
    let redis_kept = store == ResponseCacheStore::Redis;
    Backend::pick(redis_kept, redis, "RESPONSE_CACHE").map(Some)
}

fn rate_limiter(
    config: &Config,
    redis: Option<&redis::aio::ConnectionManager>,
) -> anyhow::Result<RateLimiter> {
    let limits = &config.rate_limits;
    let backend = Backend::pick(
        limits.store == RateLimitStoreKind::Redis,
        redis,
        "RATE_LIMIT_STORE",
    )?;
    let budget = |limit, window| Budget { limit, window };
    Ok(RateLimiter::new(
        &backend,
        &limits.redis_key_prefix,
        Budgets {
            queries: budget(limits.points, limits.window),
            sign_in_per_account: budget(limits.sign_in_per_account, limits.sign_in_window),
            sign_in_per_address: budget(limits.sign_in_per_address, limits.sign_in_window),
            sign_up_per_address: budget(limits.sign_up_per_address, limits.sign_up_window),
        },
    ))
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "failed to listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "failed to listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = interrupt => tracing::info!("SIGINT received; shutting down"),
        () = terminate => tracing::info!("SIGTERM received; shutting down"),
    }
}
