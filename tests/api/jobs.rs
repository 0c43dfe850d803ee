//! The job queue: enqueued with the write or not at all, retried with
//! backoff, failed visibly, recurring retention, and no job lost when a
//! server is killed mid-delivery.

use std::{collections::HashMap, time::Duration};

use conduit::db::models::job::{self, NewJob};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde_json::{Value, json};

use crate::helpers::{Receiver, ServerProcess, TestApp, TestDatabase};

async fn wait_until(db: &TestDatabase, sql: &str, want: i64, within: Duration) {
    let started = std::time::Instant::now();
    loop {
        let got = db.count(sql).await;
        if got == want {
            return;
        }
        assert!(started.elapsed() < within, "{sql}: {got}, wanted {want}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_rolled_back_write_enqueues_nothing() {
    let app = TestApp::spawn_with(|c| {
        c.jobs.workers = 0;
        c.jobs.webhooks.allow_private_addresses = true;
    })
    .await;
    let alice = app.signed_in_user("alice").await;
    let bob = app.signed_in_user("bob").await;
    let article = app.create_article(&alice.token, "Kept", &[]).await;
    let created = app.query_as(
        &alice.token,
        "mutation { createWebhookEndpoint(input: { url: \"http://127.0.0.1:9/\", eventTypes: [COMMENT_CREATED] }) { secret } }",
        json!({}),
    )
    .await;
    assert!(created.body["data"]["createWebhookEndpoint"]["secret"].is_string());
    let fan_outs = "SELECT count(*) FROM jobs WHERE kind = 'webhooks.fan_out'";
    let before = app.db.count(fan_outs).await;

    // Through the API the comment's transaction enqueues its fan-out...
    let comment = app
        .query_as(
            &bob.token,
            "mutation($id: ID!) { addComment(input: { articleId: $id, body: \"hi\" }) { comment { id } } }",
            json!({ "id": article["id"] }),
        )
        .await;
    assert!(comment.body["errors"].is_null(), "{}", comment.body);
    assert_eq!(app.db.count(fan_outs).await, before + 1);
    // ...and carries the request's id into the job.
    let request_id = comment.header("x-request-id").unwrap().to_owned();
    assert_eq!(
        app.db
            .count(&format!(
                "SELECT count(*) FROM jobs WHERE request_id = '{request_id}'"
            ))
            .await,
        1
    );

    // A write that rolls back leaves no job: neither one its trigger
    // enqueued nor one enqueued explicitly.
    let mut conn = AsyncPgConnection::establish(&app.db.url).await.unwrap();
    let rolled_back: Result<(), diesel::result::Error> = conn
        .transaction(async |conn| {
            diesel_async::SimpleAsyncConnection::batch_execute(
                conn,
                "INSERT INTO comments (article_id, author_id, body)
                 SELECT id, author_id, 'rolled back' FROM articles LIMIT 1",
            )
            .await?;
            job::enqueue(
                conn,
                &[NewJob {
                    kind: job::JobKind::PurgeSessions,
                    payload: json!({}),
                    run_at: None,
                    max_attempts: 1,
                    request_id: Some("rolled-back"),
                }],
            )
            .await?;
            Err(diesel::result::Error::RollbackTransaction)
        })
        .await;
    assert!(rolled_back.is_err());
    assert_eq!(app.db.count(fan_outs).await, before + 1);
    assert_eq!(
        app.db
            .count("SELECT count(*) FROM jobs WHERE request_id = 'rolled-back'")
            .await,
        0
    );
}

#[tokio::test]
async fn a_job_that_keeps_failing_is_retried_with_backoff_then_stays_failed() {
    // A kind no worker knows, and no other test enqueues.
    const KIND: &str = "no.such.kind";
    let app = TestApp::spawn().await;
    let before = app.scrape().await;
    app.db
        .execute(&format!(
            "INSERT INTO jobs (kind, max_attempts) VALUES ('{KIND}', 3)"
        ))
        .await;
    // After each failure the job is queued again, due after a wait that
    // doubles (two seconds, then four), each a random half to all of it:
    // read off the row while it waits.
    let mut waits = Vec::new();
    for attempts in 1..=2 {
        wait_until(
            &app.db,
            &format!(
                "SELECT count(*) FROM jobs WHERE kind = '{KIND}' AND state = 'queued' AND attempts = {attempts}"
            ),
            1,
            Duration::from_secs(15),
        )
        .await;
        let wait = app
            .db
            .count(&format!(
                "SELECT (extract(epoch FROM run_at - updated_at) * 1000)::bigint FROM jobs WHERE kind = '{KIND}'"
            ))
            .await;
        waits.push(wait);
    }
    println!("backoff before attempts 2 and 3: {waits:?} ms");
    assert!((1000..=2000).contains(&waits[0]), "{waits:?}");
    assert!((2000..=4000).contains(&waits[1]), "{waits:?}");
    wait_until(
        &app.db,
        &format!(
            "SELECT count(*) FROM jobs WHERE kind = '{KIND}' AND state = 'failed' AND attempts = 3"
        ),
        1,
        Duration::from_secs(15),
    )
    .await;
    let error = app
        .db
        .count(&format!(
            "SELECT count(*) FROM jobs WHERE kind = '{KIND}' AND last_error LIKE '%no worker knows%'"
        ))
        .await;
    assert_eq!(error, 1);
    // The failure and the retries before it are counted (the kind is this
    // test's alone).
    let after = app.scrape().await;
    for (outcome, times) in [("failed", 1.0), ("retried", 2.0)] {
        let labels = [("kind", KIND), ("outcome", outcome)];
        assert_eq!(
            after.value("jobs_total", &labels) - before.value("jobs_total", &labels),
            times,
            "{outcome}: {}",
            after.text()
        );
    }
}

#[tokio::test]
async fn retention_purges_ended_sessions_and_old_soft_deleted_rows() {
    let db = TestDatabase::create().await;
    // Rows the retention jobs must remove, and rows they must keep.
    db.execute(
        "INSERT INTO users (id, username, email, password_hash) VALUES
            ('00000000-0000-0000-0000-000000000001', 'kept', 'kept@example.com', 'x'),
            ('00000000-0000-0000-0000-000000000002', 'gone', 'gone@example.com', 'x');
         UPDATE users SET deleted_at = now() - interval '40 days'
            WHERE id = '00000000-0000-0000-0000-000000000002';
         INSERT INTO sessions (user_id, expires_at) VALUES
            ('00000000-0000-0000-0000-000000000001', now() - interval '1 day'),
            ('00000000-0000-0000-0000-000000000001', now() + interval '1 day');
         INSERT INTO sessions (user_id, expires_at, revoked_at) VALUES
            ('00000000-0000-0000-0000-000000000001', now() + interval '1 day', now());
         INSERT INTO articles (author_id, slug, title, description, body, deleted_at)
         SELECT '00000000-0000-0000-0000-000000000001', 'old-' || n, 't', 'd', 'b',
                now() - interval '31 days'
         FROM generate_series(1, 25) n;
         INSERT INTO articles (author_id, slug, title, description, body, deleted_at) VALUES
            ('00000000-0000-0000-0000-000000000001', 'recent', 't', 'd', 'b', now() - interval '1 day'),
            ('00000000-0000-0000-0000-000000000001', 'live', 't', 'd', 'b', NULL);",
    )
    .await;
    let _app = TestApp::spawn_on(db.share(), |c| c.jobs.retention_batch_size = 10).await;
    let within = Duration::from_secs(20);
    wait_until(&db, "SELECT count(*) FROM sessions", 1, within).await;
    wait_until(&db, "SELECT count(*) FROM articles", 2, within).await;
    wait_until(&db, "SELECT count(*) FROM users", 1, within).await;
    assert_eq!(
        db.count("SELECT count(*) FROM articles WHERE slug IN ('recent', 'live')")
            .await,
        2
    );
    // Each recurring job is scheduled once an hour, whoever looks.
    assert_eq!(
        db.count(
            "SELECT count(*) FROM job_schedules WHERE next_run_at > now() + interval '50 minutes'"
        )
        .await,
        3
    );
}

/// A server process of its own, to be killed.
async fn spawn_server(db: &TestDatabase) -> (tokio::process::Child, String) {
    let ServerProcess {
        child,
        url,
        mut lines,
    } = ServerProcess::start(
        db,
        &[
            ("RATE_LIMIT_POINTS", "0"),
            ("SIGN_UP_LIMIT_PER_ADDRESS", "10000"),
            ("SIGN_IN_LIMIT_PER_ADDRESS", "10000"),
            ("WEBHOOKS_ALLOW_PRIVATE_ADDRESSES", "true"),
            ("WEBHOOK_RETRY_SCHEDULE", "200ms,200ms,200ms,200ms,200ms"),
            ("JOB_LEASE_SECS", "2"),
            ("JOB_WORKERS", "8"),
        ],
    )
    .await;
    // Keep reading its output so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, url)
}

async fn gql(url: &str, token: Option<&str>, query: &str, variables: Value) -> Value {
    let mut request = reqwest::Client::new()
        .post(format!("{url}/graphql"))
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(token) = token {
        request = request.header("authorization", format!("Token {token}"));
    }
    let body: Value = request.send().await.unwrap().json().await.unwrap();
    assert!(body["errors"].is_null(), "{body}");
    body["data"].clone()
}

async fn sign_up(url: &str, name: &str) -> String {
    gql(
        url,
        None,
        "mutation($i: CreateUserInput!) { createUser(input: $i) { errors { code } } }",
        json!({ "i": { "username": name, "email": format!("{name}@example.com"), "password": "password123" } }),
    )
    .await;
    let data = gql(
        url,
        None,
        "mutation($i: SignInUserInput!) { signInUser(input: $i) { token } }",
        json!({ "i": { "email": format!("{name}@example.com"), "password": "password123" } }),
    )
    .await;
    data["signInUser"]["token"].as_str().unwrap().to_owned()
}

/// SIGKILL a server while its deliveries are in flight: after a restart
/// every event is delivered at least once, and a receiver that ignores an
/// id it has processed processes each exactly once.
#[tokio::test]
async fn no_delivery_is_lost_when_a_server_is_killed_mid_flight() {
    const EVENTS: usize = 40;
    let db = TestDatabase::create().await;
    let receiver = Receiver::start().await;
    // Slow enough that the kill lands while requests are open.
    receiver.slow_down(Duration::from_millis(300));
    let (mut first, url) = spawn_server(&db).await;
    let alice = sign_up(&url, "alice").await;
    let bob = sign_up(&url, "bob").await;
    gql(
        &url,
        Some(&alice),
        "mutation($u: String!) { createWebhookEndpoint(input: { url: $u, eventTypes: [COMMENT_CREATED] }) { secret } }",
        json!({ "u": receiver.url }),
    )
    .await;
    let article = gql(
        &url,
        Some(&alice),
        "mutation { createArticle(input: { title: \"Killed\", description: \"d\", body: \"b\", tagList: [] }) { article { id } } }",
        json!({}),
    )
    .await;
    let article_id = article["createArticle"]["article"]["id"].clone();
    for n in 0..EVENTS {
        gql(
            &url,
            Some(&bob),
            "mutation($id: ID!, $b: String!) { addComment(input: { articleId: $id, body: $b }) { comment { id } } }",
            json!({ "id": article_id, "b": format!("comment {n}") }),
        )
        .await;
    }
    receiver.wait_for(5, Duration::from_secs(20)).await;
    first.start_kill().unwrap();
    first.wait().await.unwrap();
    let at_kill = receiver.received().len();
    let pending = db
        .count("SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'")
        .await;
    eprintln!("fault test: killed after {at_kill} requests; {pending} deliveries pending");
    assert!(pending > 0, "the kill must land with deliveries left");

    let (_second, _) = spawn_server(&db).await;
    wait_until(
        &db,
        "SELECT count(*) FROM webhook_deliveries WHERE status = 'succeeded'",
        EVENTS as i64,
        Duration::from_secs(60),
    )
    .await;
    let got = receiver.received();
    let mut processed: HashMap<String, usize> = HashMap::new();
    for r in &got {
        *processed.entry(r.id.clone()).or_default() += 1;
    }
    eprintln!(
        "fault test: {} requests for {} webhook-ids ({} sent more than once)",
        got.len(),
        processed.len(),
        processed.values().filter(|n| **n > 1).count()
    );
    // Every event arrived; deduplicating on the id, each is processed once.
    assert_eq!(processed.len(), EVENTS);
    // The requests open at the kill (received, never answered) were sent
    // again after the restart, under the id they had: a retried delivery
    // keeps its webhook-id, and carries the same message.
    let resent: Vec<&String> = processed
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| id)
        .collect();
    assert!(
        !resent.is_empty(),
        "no webhook-id arrived twice, though requests were open at the kill"
    );
    for id in resent {
        let bodies: std::collections::HashSet<&[u8]> = got
            .iter()
            .filter(|r| &r.id == id)
            .map(|r| r.raw.as_slice())
            .collect();
        assert_eq!(bodies.len(), 1, "{id} carried different messages");
    }
    let bodies: std::collections::HashSet<String> = got
        .iter()
        .map(|r| r.body["data"]["comment"]["id"].to_string())
        .collect();
    assert_eq!(bodies.len(), EVENTS, "one message per comment");
}

/// A job claimed by an instance that shuts down is handed back at once,
/// its interrupted attempt not counted, and another instance runs it:
/// well before the lease would have run out.
#[tokio::test]
async fn a_job_running_at_shutdown_is_handed_back_for_another_instance() {
    let receiver = Receiver::start().await;
    // The attempt is still open when the shutdown's grace runs out.
    receiver.slow_down(Duration::from_secs(30));
    let mut first = TestApp::spawn_with(|c| {
        c.jobs.webhooks.allow_private_addresses = true;
        c.jobs.lease = Duration::from_secs(300);
        c.jobs.shutdown_grace = Duration::from_millis(200);
    })
    .await;
    let alice = first.signed_in_user("alice").await;
    let bob = first.signed_in_user("bob").await;
    let created = first.query_as(
        &alice.token,
        "mutation($u: String!) { createWebhookEndpoint(input: { url: $u, eventTypes: [USER_FOLLOWED] }) { secret } }",
        json!({ "u": receiver.url }),
    )
    .await;
    assert!(
        created.body["data"]["createWebhookEndpoint"]["secret"].is_string(),
        "{}",
        created.body
    );
    first.follow(&bob.token, "alice").await;
    let sent = receiver.wait_for(1, Duration::from_secs(10)).await;
    let delivering =
        "SELECT count(*) FROM jobs WHERE kind = 'webhooks.deliver' AND state = 'running'";
    assert_eq!(first.db.count(delivering).await, 1);

    first.shut_down().await;
    let handed_back =
        "SELECT count(*) FROM jobs WHERE kind = 'webhooks.deliver' AND state = 'queued'
        AND locked_by IS NULL AND attempts = 0 AND last_error = 'interrupted by a shutdown'";
    assert_eq!(first.db.count(handed_back).await, 1);

    receiver.slow_down(Duration::ZERO);
    let _second = TestApp::spawn_on(first.db.share(), |c| {
        c.jobs.webhooks.allow_private_addresses = true;
    })
    .await;
    let got = receiver.wait_for(2, Duration::from_secs(20)).await;
    assert_eq!(got[1].id, sent[0].id, "the same delivery, sent again");
    wait_until(
        &first.db,
        "SELECT count(*) FROM webhook_deliveries WHERE status = 'succeeded'",
        1,
        Duration::from_secs(10),
    )
    .await;
}
