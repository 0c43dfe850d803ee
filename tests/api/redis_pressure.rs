//! Redis as the instances' shared store, on a Redis server of the test's
//! own: a Redis that would evict keys stops start-up.

use conduit::{
    config::{Config, PersistedQueryStore, RateLimitStoreKind, ResponseCacheStore},
    startup::Application,
};

use crate::helpers::{RedisServer, TestDatabase, test_config};

/// The tests' configuration on `db` with each Redis store in turn, on
/// `redis`.
fn each_redis_store(db: &TestDatabase, redis: &RedisServer) -> Vec<Config> {
    let stores: [fn(&mut Config); 3] = [
        |c| c.response_cache.store = ResponseCacheStore::Redis,
        |c| c.persisted_queries = PersistedQueryStore::Redis,
        |c| c.rate_limits.store = RateLimitStoreKind::Redis,
    ];
    stores
        .into_iter()
        .map(|store| {
            test_config(&db.url, |c| {
                c.jobs.workers = 0;
                c.rate_limits.redis_url = redis.url.clone();
                store(c);
            })
        })
        .collect()
}

#[tokio::test]
async fn a_redis_that_may_evict_keys_stops_start_up_with_what_to_set() {
    let redis =
        RedisServer::start(&["--maxmemory", "4mb", "--maxmemory-policy", "allkeys-lru"]).await;
    let db = TestDatabase::create().await;
    for policy in ["allkeys-lru", "volatile-ttl"] {
        redis
            .run(&["CONFIG", "SET", "maxmemory-policy", policy])
            .await;
        for config in each_redis_store(&db, &redis) {
            let refused = Application::build(&config).await.err();
            let message = format!("{:#}", refused.expect("start-up refused"));
            assert!(
                message.contains(&format!("maxmemory-policy {policy}"))
                    && message.contains("noeviction"),
                "{message}"
            );
        }
    }
    // What is supported: no eviction, or no limit to evict at.
    redis
        .run(&["CONFIG", "SET", "maxmemory-policy", "noeviction"])
        .await;
    for config in each_redis_store(&db, &redis) {
        Application::build(&config)
            .await
            .expect("noeviction is supported");
    }
    redis
        .run(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"])
        .await;
    redis.run(&["CONFIG", "SET", "maxmemory", "0"]).await;
    for config in each_redis_store(&db, &redis) {
        Application::build(&config)
            .await
            .expect("without maxmemory nothing is evicted");
    }
}
