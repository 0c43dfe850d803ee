//! Redis as the instances' shared store, at its memory limit and after it
//! lost its keys, on a Redis server of the test's own: a Redis that would
//! evict keys stops start-up; full, it refuses new cache entries but every
//! write still drops what it changes, every write position is kept and
//! sign-in works; emptied under a running server (a flush, a restart
//! without persistence), no stale response is kept and a viewer still
//! reads their own writes.

use std::time::{Duration, Instant};

use conduit::{
    config::{Config, List, PersistedQueryStore, RateLimitStoreKind, ResponseCacheStore},
    startup::Application,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use serde_json::{Value, json};

use crate::helpers::{RedisServer, Replication, TestApp, TestDatabase, test_config};

/// A Redis that may hold 4 MB and then refuses writes.
const FULL_AT_4MB: &[&str] = &["--maxmemory", "4mb", "--maxmemory-policy", "noeviction"];

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
                c.redis.url = redis.url.clone();
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

/// Two instances with the cache in `redis`, and a third with it off,
/// whose answers are the truth.
async fn cached_instances(redis: &RedisServer) -> (TestApp, TestApp, TestApp) {
    let cached = |c: &mut Config| {
        c.jobs.workers = 0;
        c.response_cache.store = ResponseCacheStore::Redis;
        c.redis.url = redis.url.clone();
    };
    let a = TestApp::spawn_on(TestDatabase::create().await, cached).await;
    let b = TestApp::spawn_on(a.db.share(), cached).await;
    let truth = TestApp::spawn_on(a.db.share(), |c| {
        c.jobs.workers = 0;
        c.response_cache.store = ResponseCacheStore::Off;
    })
    .await;
    (a, b, truth)
}

const ARTICLE: &str =
    "query($slug: String!) { article(slug: $slug) { title body comments { body } } }";

/// `document` as `app` answers it (never an error), and whether the
/// answer cost no statement: it came from the cache.
async fn read(app: &TestApp, document: &str, variables: &Value) -> (Value, bool) {
    let before = app.statements();
    let response = app.query(document, variables.clone()).await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert!(response.body["errors"].is_null(), "{}", response.body);
    (response.body, app.statements() == before)
}

async fn mutate(app: &TestApp, token: &str, document: &str, input: Value) -> Value {
    let response = app
        .query_as(token, document, json!({ "input": input }))
        .await;
    assert!(response.body["errors"].is_null(), "{}", response.body);
    response.body["data"].clone()
}

/// Waits until `app` answers what `truth` does; panics after 30 seconds
/// (a bound for a broken bus: how soon is the benchmark's to measure).
async fn agrees_eventually(app: &TestApp, truth: &TestApp, document: &str, variables: &Value) {
    let (expected, _) = read(truth, document, variables).await;
    let started = Instant::now();
    loop {
        let (answer, _) = read(app, document, variables).await;
        if answer == expected {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "still {answer} 30 s later, not {expected}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A counter of `/metrics` (0 before it is first counted).
async fn counter(app: &TestApp, series: &str) -> f64 {
    app.metrics()
        .await
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn with_redis_full_of_cached_pages_every_write_still_drops_what_it_changes() {
    let redis = RedisServer::start(FULL_AT_4MB).await;
    let (a, b, truth) = cached_instances(&redis).await;
    let filler = a.signed_in_user("filler").await.token;
    for n in 0..20 {
        mutate(
            &a,
            &filler,
            "mutation($input: CreateArticleInput!) { createArticle(input: $input) { errors { code } } }",
            json!({ "title": format!("Long {n}"), "description": "d", "body": "x".repeat(8000), "tagList": [] }),
        )
        .await;
    }
    let jake = a.signed_in_user("jake").await.token;
    let ann = a.signed_in_user("ann").await.token;
    let article = a.create_article(&jake, "The page", &["rust"]).await;
    let page = json!({ "slug": article["slug"] });
    read(&a, ARTICLE, &page).await;
    assert!(read(&b, ARTICLE, &page).await.1, "kept in Redis");

    // Distinct public queries, each about 160 kB, until Redis is full:
    // then a response is served but not kept.
    let long = |n: usize| {
        format!(
            "{{ long{n}: articles(first: 20, author: \"filler\") {{ nodes {{ slug body }} }} }}"
        )
    };
    let mut kept = None;
    for n in 0.. {
        assert!(n < 200, "Redis never refused an entry");
        read(&a, &long(n), &json!({})).await;
        if read(&a, &long(n), &json!({})).await.1 {
            kept = Some(n);
        } else {
            break;
        }
    }
    let kept = long(kept.expect("some entries were kept before Redis was full"));
    redis.fill().await;

    // A comment: the page changes on the instance that wrote at once, on
    // the other within a second; what it does not change stays cached.
    mutate(
        &a,
        &ann,
        "mutation($input: AddCommentInput!) { addComment(input: $input) { errors { code } } }",
        json!({ "articleId": article["id"], "body": "Still fresh" }),
    )
    .await;
    let (expected, _) = read(&truth, ARTICLE, &page).await;
    assert_eq!(read(&a, ARTICLE, &page).await.0, expected);
    agrees_eventually(&b, &truth, ARTICLE, &page).await;
    for app in [&a, &b] {
        assert!(
            read(app, &kept, &json!({})).await.1,
            "an entry the write does not touch is still served from Redis"
        );
    }

    // A new body, written on the other instance.
    mutate(
        &b,
        &jake,
        "mutation($input: UpdateArticleInput!) { updateArticle(input: $input) { errors { code } } }",
        json!({ "id": article["id"], "body": "Rewritten" }),
    )
    .await;
    let (expected, _) = read(&truth, ARTICLE, &page).await;
    assert_eq!(expected["data"]["article"]["body"], "Rewritten");
    assert_eq!(read(&b, ARTICLE, &page).await.0, expected);
    agrees_eventually(&a, &truth, ARTICLE, &page).await;
    assert!(
        counter(&a, "response_cache_requests_total{outcome=\"full\"}").await >= 1.0,
        "an entry Redis had no room for is counted"
    );
}

#[tokio::test]
async fn a_response_read_before_redis_was_emptied_and_a_write_is_not_kept() {
    let redis = RedisServer::start(&[]).await;
    let (a, _b, truth) = cached_instances(&redis).await;
    let jake = a.signed_in_user("jake").await.token;
    let article = a.create_article(&jake, "Before", &["rust"]).await;
    for title in ["One", "Two", "Three"] {
        a.create_article(&jake, title, &[]).await;
    }
    let page = json!({ "slug": article["slug"] });

    // The page's query reads the article, then waits for its comments,
    // held up by a lock; meanwhile Redis loses every key and the article
    // is rewritten. The answer shows the old body: it must not be kept.
    let mut lock = AsyncPgConnection::establish(&a.db.url).await.unwrap();
    lock.batch_execute("BEGIN; LOCK TABLE comments IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let in_flight = read(&a, ARTICLE, &page);
    let meanwhile = async {
        let waiting = format!(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND wait_event_type = 'Lock'",
            a.db.name
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while a.db.count(&waiting).await == 0 {
            assert!(Instant::now() < deadline, "the query waits for the lock");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        redis.run(&["FLUSHALL"]).await;
        mutate(
            &a,
            &jake,
            "mutation($input: UpdateArticleInput!) { updateArticle(input: $input) { errors { code } } }",
            json!({ "id": article["id"], "body": "After" }),
        )
        .await;
        lock.batch_execute("ROLLBACK").await.unwrap();
    };
    let ((old, _), ()) = tokio::join!(in_flight, meanwhile);
    assert_eq!(
        old["data"]["article"]["body"], "The body of Before.",
        "read before the write"
    );

    let (expected, _) = read(&truth, ARTICLE, &page).await;
    assert_eq!(expected["data"]["article"]["body"], "After");
    assert_eq!(read(&a, ARTICLE, &page).await.0, expected);
    // And the cache works on: the page is kept again, fresh.
    let (again, cached) = read(&a, ARTICLE, &page).await;
    assert_eq!(again, expected);
    assert!(cached, "kept again after the flush");
}

#[tokio::test]
async fn with_redis_full_signing_in_still_counts_against_its_budget() {
    let redis = RedisServer::start(FULL_AT_4MB).await;
    let app = TestApp::spawn_with(|c| {
        c.jobs.workers = 0;
        c.rate_limits.store = RateLimitStoreKind::Redis;
        c.redis.url = redis.url.clone();
    })
    .await;
    app.signed_in_user("before").await;
    redis.fill().await;
    // Refused for lack of memory, a charge would close sign-in to all.
    let session = app.signed_in_user("after").await;
    let viewer = app.viewer_username(&session.token).await;
    assert_eq!(viewer.body["data"]["viewer"]["user"]["username"], "after");
    let remaining = |r: &crate::helpers::GraphQLResponse| -> u64 {
        r.header("x-ratelimit-remaining").unwrap().parse().unwrap()
    };
    let next = app.viewer_username(&session.token).await;
    assert!(remaining(&next) < remaining(&viewer), "still counted");
}

const TITLES: &str = "{ articles(first: 50) { edges { node { title } } } }";

async fn titles(app: &TestApp, token: &str) -> Vec<String> {
    let response = app.query_as(token, TITLES, json!({})).await;
    assert!(response.body["errors"].is_null(), "{:?}", response.body);
    response.body["data"]["articles"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|edge| edge["node"]["title"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_reads_their_write_after_redis_lost_its_positions_or_filled_up() {
    let replication = Replication::start().await;
    let redis = RedisServer::start(FULL_AT_4MB).await;
    let db = replication.database().await;
    let replica = replication.replica_url(&db);
    let app = TestApp::spawn_on(db, |c| {
        c.replicas.urls = List(vec![replica]);
        c.replicas.max_lag = Duration::from_secs(2);
        c.replicas.poll_every = Duration::from_millis(20);
        c.jobs.workers = 0;
        c.response_cache.store = ResponseCacheStore::Off;
        // Write positions are kept in Redis whenever a store is.
        c.persisted_queries = PersistedQueryStore::Redis;
        c.redis.url = redis.url.clone();
    })
    .await;
    let writer = app.signed_in_user("writer").await;
    let other = app.signed_in_user("other").await;
    app.create_article(&writer.token, "Before", &[]).await;
    replication.caught_up().await;

    // Redis loses every key between a write and the writer's next read:
    // not knowing the writer's position, the read goes to the primary.
    replication.pause_replay().await;
    app.create_article(&writer.token, "Written before the flush", &[])
        .await;
    redis.run(&["FLUSHALL"]).await;
    let seen = titles(&app, &writer.token).await;
    replication.resume_replay().await;
    assert!(
        seen.contains(&"Written before the flush".to_owned()),
        "{seen:?}"
    );
    replication.caught_up().await;

    // Once no lost position can matter any more (a replica within the
    // lag bound has every write that old), signed-in reads go back to the
    // replica.
    let unsure = "db_replica_fallbacks_total{reason=\"positions_reset\"}";
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let before = counter(&app, unsure).await;
        titles(&app, &other.token).await;
        if counter(&app, unsure).await == before {
            break;
        }
        assert!(Instant::now() < deadline, "reads stay on the primary");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Redis full: a write's position is kept all the same.
    redis.fill().await;
    replication.pause_replay().await;
    app.create_article(&writer.token, "Written while Redis is full", &[])
        .await;
    let seen = titles(&app, &writer.token).await;
    replication.resume_replay().await;
    assert!(
        seen.contains(&"Written while Redis is full".to_owned()),
        "{seen:?}"
    );
}

/// Redis really down under a running server (its `redis-server` killed,
/// then started again on the same port, empty): meanwhile queries are
/// admitted and answered, and sign-in is refused with a retryable 503
/// `SERVICE_UNAVAILABLE` and no session written; once Redis is back,
/// sign-in works again without restarting the server.
#[tokio::test]
async fn a_redis_outage_refuses_sign_in_retryably_admits_queries_and_recovers() {
    let mut redis = RedisServer::start(&[]).await;
    let app = TestApp::spawn_with(|c| {
        c.jobs.workers = 0;
        c.rate_limits.store = RateLimitStoreKind::Redis;
        c.redis.url = redis.url.clone();
        c.rate_limits.points = 1000;
    })
    .await;
    app.signed_in_user("jake").await;
    let sessions = || app.db.count("SELECT count(*) FROM sessions");
    assert_eq!(sessions().await, 1);

    redis.stop();
    let refused = app
        .sign_in("jake@example.com", crate::helpers::PASSWORD)
        .await;
    assert_eq!(refused.status, 503, "{:?}", refused.body);
    assert_eq!(refused.error_code(), Some("SERVICE_UNAVAILABLE"));
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert!(refused.body["data"]["signInUser"].is_null());
    assert_eq!(sessions().await, 1, "a refused sign-in writes no session");
    let read = app.query("{ tags }", json!({})).await;
    assert_eq!(read.status, 200, "{:?}", read.body);
    assert_eq!(read.body, json!({ "data": { "tags": [] } }));

    redis.restart().await;
    // The server reconnects on its own: sign-in is refused, retryably,
    // until it has, then works.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = app
            .sign_in("jake@example.com", crate::helpers::PASSWORD)
            .await;
        if answer.status == 200 && answer.body["data"]["signInUser"]["token"].is_string() {
            break;
        }
        assert_eq!(
            answer.error_code(),
            Some("SERVICE_UNAVAILABLE"),
            "{:?}",
            answer.body
        );
        assert!(
            Instant::now() < deadline,
            "sign-in still refused 30 s after Redis came back: {:?}",
            answer.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(sessions().await, 2);
}
