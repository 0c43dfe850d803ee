//! PostgreSQL really restarted (a server of the test's own, stopped and
//! started again on the same files) under read and write load: no request
//! gets a 500, the outage is answered 503 `SERVICE_UNAVAILABLE` with
//! `Retry-After`, `/readyz` says so meanwhile, no acknowledged write is
//! lost, and once PostgreSQL is back every request succeeds at its first
//! try: no pooled connection that died with the old server fails one.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use conduit::db::embedded::EmbeddedPostgres;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestDatabase, free_port};

const READ: &str = "{ articles(first: 10) { edges { node { title author { username } } } } tags }";
const WRITE: &str = "mutation($input: CreateArticleInput!) { createArticle(input: $input) { article { slug } errors { code } } }";

#[derive(Debug)]
struct Outcome {
    started: Instant,
    status: u16,
    code: Option<String>,
    retry_after: Option<String>,
    /// The title of an article the server said it created.
    acknowledged: Option<String>,
}

async fn send(app: &TestApp, body: Value, token: Option<&str>) -> Outcome {
    let started = Instant::now();
    let mut request = app.client.post(app.url("/graphql")).json(&body);
    if let Some(token) = token {
        request = request.header("Authorization", format!("Token {token}"));
    }
    let response = request
        .send()
        .await
        .expect("a response, not a broken connection");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: Value = response.json().await.expect("a JSON body");
    Outcome {
        started,
        status,
        code: body["errors"][0]["extensions"]["code"]
            .as_str()
            .map(str::to_owned),
        retry_after,
        acknowledged: body["data"]["createArticle"]["article"]["slug"]
            .as_str()
            .filter(|_| status == 200 && body["errors"].is_null())
            .map(str::to_owned),
    }
}

/// Whether at least `reads` reads and two acknowledged writes that
/// started after `since` were answered.
fn served_since(outcomes: &[Outcome], since: Instant, reads: usize) -> bool {
    let after = || outcomes.iter().filter(|o| o.started >= since);
    let writes = after().filter(|o| o.acknowledged.is_some()).count();
    let ok = after()
        .filter(|o| o.status == 200 && o.code.is_none())
        .count();
    writes >= 2 && ok >= reads + writes
}

/// Waits until the outcomes so far satisfy `done`; panics naming `what`
/// after 60 seconds.
async fn until(outcomes: &Mutex<Vec<Outcome>>, what: &str, done: impl Fn(&[Outcome]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done(&outcomes.lock().unwrap()) {
        assert!(
            Instant::now() < deadline,
            "after 60s the load had still not shown {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The first `/readyz` answer with `status`; panics after 30 seconds.
async fn until_readyz(app: &TestApp, status: u16) -> reqwest::Response {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = app.client.get(app.url("/readyz")).send().await.unwrap();
        if response.status() == status {
            return response;
        }
        assert!(
            Instant::now() < deadline,
            "after 30s /readyz still answered {} rather than {status}",
            response.status()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgresql_restart_under_load_fails_nothing_it_should_not() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "restart-postgres-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let port = free_port();
    let postgres = EmbeddedPostgres::start(&dir, port)
        .await
        .expect("a PostgreSQL of the test's own starts");
    let db = TestDatabase::create_on(&postgres.admin_url()).await;
    let app = Arc::new(
        TestApp::spawn_on(db, |c| {
            c.database_pool_size = 4;
            c.database_acquire_timeout = Duration::from_millis(1000);
            c.rate_limits.points = 0;
            // Every read reaches the pool.
            c.response_cache.store = conduit::config::ResponseCacheStore::Off;
        })
        .await,
    );
    let writers = [
        app.signed_in_user("writer0").await.token,
        app.signed_in_user("writer1").await.token,
    ];

    let stop = Arc::new(AtomicBool::new(false));
    let outcomes = Arc::new(Mutex::new(Vec::<Outcome>::new()));
    let mut load = Vec::new();
    for reader in 0..4 {
        let (app, stop, outcomes) = (app.clone(), stop.clone(), outcomes.clone());
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let outcome = send(&app, json!({ "query": READ }), None).await;
                outcomes.lock().unwrap().push(outcome);
                if reader == 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }));
    }
    for (writer, token) in writers.into_iter().enumerate() {
        let (app, stop, outcomes) = (app.clone(), stop.clone(), outcomes.clone());
        load.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let title = format!("Writer {writer} article {n}");
                let input = json!({ "title": title, "description": "d", "body": "b", "tagList": ["restart"] });
                let outcome = send(
                    &app,
                    json!({ "query": WRITE, "variables": { "input": input } }),
                    Some(&token),
                )
                .await;
                outcomes.lock().unwrap().push(outcome);
            }
        }));
    }

    // Each phase lasts until the load has shown it: reads and
    // acknowledged writes before the stop, refusals during the outage, and
    // both again once PostgreSQL is back.
    let start = Instant::now();
    until(&outcomes, "reads and writes before the stop", |o| {
        served_since(o, start, 20)
    })
    .await;
    postgres.stop().await.unwrap();
    let down_at = Instant::now();
    let ready_while_down = until_readyz(&app, 503).await;
    until(&outcomes, "refusals during the outage", |o| {
        o.iter()
            .filter(|o| o.started >= down_at && o.status != 200)
            .count()
            >= 10
    })
    .await;
    let postgres = EmbeddedPostgres::start(&dir, port)
        .await
        .expect("PostgreSQL starts again on the same files");
    let back_at = Instant::now();
    until(&outcomes, "reads and writes after the restart", |o| {
        served_since(o, back_at, 20)
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let ready_after = app.client.get(app.url("/readyz")).send().await.unwrap();

    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    let sent = outcomes.len();
    fn ok(o: &&Outcome) -> bool {
        o.status == 200 && o.code.is_none()
    }
    let refused: Vec<&Outcome> = outcomes.iter().filter(|o| !ok(o)).collect();
    let before = outcomes
        .iter()
        .filter(|o| o.started < down_at)
        .filter(ok)
        .count();
    let after: Vec<&Outcome> = outcomes.iter().filter(|o| o.started >= back_at).collect();
    eprintln!(
        "database restart: {sent} requests, {} refused ({:?}), {} after the restart",
        refused.len(),
        refused
            .iter()
            .map(|o| (o.status, o.code.as_deref().unwrap_or("")))
            .fold(std::collections::BTreeMap::new(), |mut m, k| {
                *m.entry(k).or_insert(0) += 1;
                m
            }),
        after.len()
    );

    assert!(before > 0, "load ran before the restart");
    assert!(!refused.is_empty(), "the outage was felt");
    for outcome in &refused {
        assert_eq!(
            (outcome.status, outcome.code.as_deref()),
            (503, Some("SERVICE_UNAVAILABLE")),
            "{outcome:?}"
        );
        assert_eq!(outcome.retry_after.as_deref(), Some("1"), "{outcome:?}");
    }
    assert_eq!(ready_while_down.status(), 503);
    assert!(!after.is_empty(), "load ran after the restart");
    let failed_after: Vec<_> = after.iter().filter(|o| !ok(o)).collect();
    assert!(
        failed_after.is_empty(),
        "requests failed once PostgreSQL was back: {failed_after:?}"
    );
    assert_eq!(ready_after.status(), 200);

    let acknowledged: Vec<&str> = outcomes
        .iter()
        .filter_map(|o| o.acknowledged.as_deref())
        .collect();
    assert!(!acknowledged.is_empty());
    let stored = app
        .db
        .count(&format!(
            "SELECT count(*) FROM articles WHERE slug IN ({})",
            acknowledged
                .iter()
                .map(|s| format!("'{s}'"))
                .collect::<Vec<_>>()
                .join(",")
        ))
        .await;
    eprintln!(
        "database restart: {} writes acknowledged, {stored} of them stored",
        acknowledged.len()
    );
    assert_eq!(
        stored,
        acknowledged.len() as i64,
        "every acknowledged write is stored"
    );

    // Again with no load: the pool's connections all sit idle while the
    // server restarts, and the next requests must not be handed them.
    let burst = |n| {
        let app = app.clone();
        async move {
            futures_util::future::join_all(
                (0..n).map(|_| send(&app, json!({ "query": READ }), None)),
            )
            .await
        }
    };
    assert!(burst(8).await.iter().all(|o| o.status == 200));
    assert_eq!(
        app.state.db.state().idle_connections,
        4,
        "a full, idle pool"
    );
    postgres.stop().await.unwrap();
    let postgres = EmbeddedPostgres::start(&dir, port).await.unwrap();
    let mut first_tries = burst(4).await;
    for _ in 0..8 {
        first_tries.push(send(&app, json!({ "query": READ }), None).await);
    }
    let failed: Vec<_> = first_tries.iter().filter(|o| !ok(o)).collect();
    eprintln!(
        "database restart with an idle pool: {} requests after it, {} failed",
        first_tries.len(),
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "requests after an idle restart failed: {failed:?}"
    );

    drop(app);
    postgres.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
