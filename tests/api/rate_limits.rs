//! Cost-based rate limits per user and per client address, for both
//! stores, and the much tighter sign-in and sign-up budgets.

use conduit::config::{Config, RateLimitStoreKind};
use serde_json::json;

use crate::helpers::{PASSWORD, TestApp, redis_url};

const CHEAP: &str = "{ tags }";

/// Status, remaining points and the body, for `CHEAP` sent as `token` (or
/// anonymously) from `forwarded_for`.
async fn spend(
    app: &TestApp,
    token: Option<&str>,
    forwarded_for: Option<&str>,
) -> (u16, Option<u64>, serde_json::Value) {
    let mut request = app
        .client
        .post(app.url("/graphql"))
        .json(&json!({ "query": CHEAP }));
    if let Some(token) = token {
        request = request.header("authorization", format!("Token {token}"));
    }
    if let Some(ip) = forwarded_for {
        request = request.header("x-forwarded-for", ip);
    }
    let response = app.send(request).await;
    let remaining = response
        .header("x-ratelimit-remaining")
        .map(|v| v.parse().unwrap());
    (response.status, remaining, response.json())
}

/// Keys of a test's own under the shared Redis.
fn redis_prefix() -> String {
    format!("conduit-test:{}:", uuid::Uuid::new_v4().simple())
}

/// A server counting in Redis under `prefix`, with `settings` besides.
async fn spawn_on_redis(prefix: &str, configure: impl FnOnce(&mut Config)) -> TestApp {
    TestApp::spawn_with(|c| {
        c.rate_limits.store = RateLimitStoreKind::Redis;
        c.redis.url = redis_url();
        c.rate_limits.redis_key_prefix = prefix.to_owned();
        configure(c);
    })
    .await
}

#[tokio::test]
async fn anonymous_clients_spend_a_budget_per_address_and_are_told_so() {
    let app = TestApp::spawn_with(|c| c.rate_limits.points = 3).await;
    for expected in [2, 1, 0] {
        let (status, remaining, _) = spend(&app, None, None).await;
        assert_eq!((status, remaining), (200, Some(expected)));
    }
    let response = app
        .client
        .post(app.url("/graphql"))
        .json(&json!({ "query": CHEAP }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let headers = response.headers().clone();
    assert_eq!(headers["x-ratelimit-limit"], "3");
    assert_eq!(headers["x-ratelimit-remaining"], "0");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let reset: i64 = headers["x-ratelimit-reset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(reset > chrono::Utc::now().timestamp());
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["data"], json!(null));
    let extensions = &body["errors"][0]["extensions"];
    assert_eq!(extensions["code"], "RATE_LIMITED");
    assert!(
        extensions["retryAfter"]
            .as_u64()
            .is_some_and(|s| (1..=60).contains(&s))
    );
}

#[tokio::test]
async fn the_rate_limit_field_reports_the_charge() {
    let app = TestApp::spawn_with(|c| c.rate_limits.points = 1000).await;
    let response = app
        .query("{ rateLimit { cost limit remaining resetAt } }", json!({}))
        .await;
    let rate = &response.body["data"]["rateLimit"];
    let cost = rate["cost"].as_i64().unwrap();
    assert!(cost >= 1);
    assert_eq!(rate["limit"], 1000);
    assert_eq!(rate["remaining"], 1000 - cost);
    let costly = app
        .query("{ articles(first: 50) { edges { node { title author { username } } } } rateLimit { cost remaining } }", json!({}))
        .await;
    let rate = &costly.body["data"]["rateLimit"];
    assert!(
        rate["cost"].as_i64().unwrap() >= 50 * 2,
        "a page costs its size: {rate}"
    );

    let off = TestApp::spawn_with(|c| c.rate_limits.points = 0).await;
    let response = off.query("{ rateLimit { cost } }", json!({})).await;
    assert_eq!(response.body["data"]["rateLimit"], json!(null));
}

#[tokio::test]
async fn forwarded_addresses_count_only_behind_trusted_proxies() {
    let trusting = TestApp::spawn_with(|c| {
        c.rate_limits.points = 2;
        c.trusted_proxy_hops = 1;
    })
    .await;
    for _ in 0..2 {
        assert_eq!(
            spend(&trusting, None, Some("203.0.113.9, 10.0.0.1"))
                .await
                .0,
            200
        );
    }
    assert_eq!(
        spend(&trusting, None, Some("203.0.113.9, 10.0.0.1"))
            .await
            .0,
        429
    );
    assert_eq!(
        spend(&trusting, None, Some("203.0.113.9, 10.0.0.2"))
            .await
            .0,
        200,
        "another client"
    );

    let ignoring = TestApp::spawn_with(|c| c.rate_limits.points = 2).await;
    assert_eq!(spend(&ignoring, None, Some("10.0.0.1")).await.0, 200);
    assert_eq!(spend(&ignoring, None, Some("10.0.0.2")).await.0, 200);
    assert_eq!(
        spend(&ignoring, None, Some("10.0.0.3")).await.0,
        429,
        "a forged header buys nothing"
    );
}

#[tokio::test]
async fn signed_in_users_spend_their_own_budget() {
    let app = TestApp::spawn_with(|c| c.rate_limits.points = 200).await;
    let jake = app.signed_in_user("jake").await;
    let (_, anonymous_left, _) = spend(&app, None, None).await;
    let mut user_left = None;
    for spent in 0.. {
        if user_left == Some(0) {
            break;
        }
        assert!(spent < 200, "200 points never ran out: {user_left:?} left");
        let (status, remaining, _) = spend(&app, Some(&jake.token), None).await;
        assert_eq!(status, 200);
        user_left = remaining;
    }
    assert_eq!(spend(&app, Some(&jake.token), None).await.0, 429);
    let (status, remaining, _) = spend(&app, None, None).await;
    assert_eq!(status, 200, "the address's budget is separate");
    assert_eq!(remaining, anonymous_left.map(|n| n - 1));
}

#[tokio::test]
async fn instances_sharing_redis_share_one_budget() {
    let prefix = redis_prefix();
    let a = spawn_on_redis(&prefix, |c| c.rate_limits.points = 4).await;
    let b = spawn_on_redis(&prefix, |c| c.rate_limits.points = 4).await;
    assert_eq!(spend(&a, None, None).await.1, Some(3));
    assert_eq!(spend(&b, None, None).await.1, Some(2));
    assert_eq!(spend(&a, None, None).await.1, Some(1));
    assert_eq!(spend(&b, None, None).await.1, Some(0));
    assert_eq!(spend(&a, None, None).await.0, 429);
    assert_eq!(spend(&b, None, None).await.0, 429);
}

#[tokio::test]
async fn the_redis_store_refuses_over_budget_users_too() {
    let app = spawn_on_redis(&redis_prefix(), |c| {
        c.rate_limits.points = 100;
        c.rate_limits.sign_in_per_account = 2;
    })
    .await;
    app.sign_up("jake", "jake@example.com").await;
    assert_eq!(
        app.sign_in("jake@example.com", "wrong password")
            .await
            .status,
        200
    );
    assert_eq!(app.sign_in("jake@example.com", PASSWORD).await.status, 200);
    let third = app.sign_in("jake@example.com", PASSWORD).await;
    assert_eq!(third.status, 429);
    assert_eq!(third.error_code(), Some("RATE_LIMITED"));
}

#[tokio::test]
async fn sign_in_attempts_are_limited_per_account_and_per_address() {
    let app = TestApp::spawn_with(|c| {
        c.rate_limits.sign_in_per_account = 3;
        c.rate_limits.sign_in_per_address = 5;
    })
    .await;
    app.sign_up("jake", "jake@example.com").await;
    app.sign_up("anne", "anne@example.com").await;
    for _ in 0..3 {
        let response = app.sign_in("JAKE@example.com", "guess-guess").await;
        assert_eq!(
            response.body["data"]["signInUser"]["errors"][0]["code"],
            "INVALID_CREDENTIALS"
        );
    }
    let locked = app.sign_in("jake@example.com", PASSWORD).await;
    assert_eq!(locked.status, 429);
    assert_eq!(locked.error_code(), Some("RATE_LIMITED"));
    assert!(locked.body["data"]["signInUser"].is_null());

    // Another account from the same address still works, until the
    // address's own budget is spent.
    let anne = app.sign_in("anne@example.com", PASSWORD).await;
    assert_eq!(anne.body["data"]["signInUser"]["errors"], json!([]));
    let anne = app.sign_in("anne@example.com", PASSWORD).await;
    assert_eq!(anne.status, 429, "five attempts from this address");
    assert_eq!(app.db.count("SELECT count(*) FROM sessions").await, 1);
}

#[tokio::test]
async fn sign_ups_are_limited_per_address() {
    let app = TestApp::spawn_with(|c| c.rate_limits.sign_up_per_address = 2).await;
    app.sign_up("one", "one@example.com").await;
    app.sign_up("two", "two@example.com").await;
    let third = app
        .query(
            "mutation { createUser(input: { username: \"three\", email: \"three@example.com\", password: \"password123\" }) { user { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(third.status, 429);
    assert_eq!(third.error_code(), Some("RATE_LIMITED"));
    assert_eq!(app.db.count("SELECT count(*) FROM users").await, 2);
}

#[tokio::test]
async fn metrics_count_operations_errors_and_rejections() {
    let app = TestApp::spawn_with(|c| c.rate_limits.points = 1).await;
    // An operation name no other test uses, so its series are this test's.
    let operation = "RateLimitMetricsProbe";
    let document =
        json!({ "query": format!("query {operation} {{ tags }}"), "operationName": operation });
    let ok = [("operation", operation), ("outcome", "ok")];
    let error = [("operation", operation), ("outcome", "error")];
    let rate_limited = [("code", "RATE_LIMITED")];
    let rejected = [("budget", "queries")];
    let before = app.scrape().await;

    assert_eq!(app.post(document.clone(), None).await.status, 200);
    const REFUSED: usize = 3;
    for _ in 0..REFUSED {
        let refused = app.post(document.clone(), None).await;
        assert_eq!(
            refused.error_code(),
            Some("RATE_LIMITED"),
            "{}",
            refused.body
        );
    }

    let after = app.scrape().await;
    let delta = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };
    let text = after.text();
    assert_eq!(delta("graphql_requests_total", &ok), 1.0, "{text}");
    assert_eq!(
        delta("graphql_requests_total", &error),
        REFUSED as f64,
        "{text}"
    );
    assert_eq!(
        delta(
            "graphql_request_duration_seconds_count",
            &[("operation", operation)]
        ),
        (1 + REFUSED) as f64,
        "{text}"
    );
    // Shared by every test of the process: other tests can only add to it.
    assert!(
        delta("graphql_errors_total", &rate_limited) >= REFUSED as f64,
        "{text}"
    );
    assert!(
        delta("rate_limit_rejections_total", &rejected) >= REFUSED as f64,
        "{text}"
    );
    for gauge in ["db_pool_connections", "db_pool_checkouts_timed_out_total"] {
        assert!(after.has(gauge), "missing {gauge} in:\n{text}");
    }
}

/// A store that fails (here a real Redis answering WRONGTYPE for the keys
/// it is asked to count) refuses sign-in, which must never go unmetered,
/// and admits queries, which must not go down with it.
#[tokio::test]
async fn a_failing_store_refuses_sign_in_and_admits_queries() {
    let prefix = redis_prefix();
    let app = spawn_on_redis(&prefix, |c| c.rate_limits.points = 100).await;
    app.sign_up("jake", "jake@example.com").await;
    let mut redis = conduit::redis::connect(&redis_url()).await.unwrap();
    for key in ["signin:a:jake@example.com", "q:ip:127.0.0.1"] {
        redis::cmd("DEL")
            .arg(format!("{prefix}{key}"))
            .query_async::<()>(&mut redis)
            .await
            .unwrap();
        redis::cmd("HSET")
            .arg(format!("{prefix}{key}"))
            .arg("not")
            .arg("a counter")
            .query_async::<()>(&mut redis)
            .await
            .unwrap();
    }

    let refused = app.sign_in("jake@example.com", PASSWORD).await;
    assert_eq!(refused.status, 503, "{:?}", refused.body);
    assert_eq!(refused.error_code(), Some("SERVICE_UNAVAILABLE"));
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert!(refused.body["data"]["signInUser"].is_null());
    assert_eq!(app.db.count("SELECT count(*) FROM sessions").await, 0);

    let (status, remaining, body) = spend(&app, None, None).await;
    assert_eq!((status, remaining), (200, None), "{body}");
    assert_eq!(body["data"]["tags"], json!([]));
}

/// When a document is charged: one the static limits refuse costs
/// nothing; one within them is charged before it runs, even if it then
/// fails validation; each member of a batch is charged on its own.
#[tokio::test]
async fn documents_are_charged_once_within_the_limits_and_batch_members_each() {
    let app = TestApp::spawn_with(|c| c.rate_limits.points = 10_000).await;
    // What `CHEAP` costs, read from two in a row.
    let (_, first, _) = spend(&app, None, None).await;
    let (_, second, _) = spend(&app, None, None).await;
    let (first, second) = (first.unwrap(), second.unwrap());
    let cheap = first - second;
    assert!(cheap >= 1, "{first} then {second}");
    // What sending `body` costs: the remaining points of the `CHEAP`
    // before it and of the one after, less the second `CHEAP`.
    let cost_of = |body: serde_json::Value| {
        let app = &app;
        async move {
            let (_, before, _) = spend(app, None, None).await;
            let response = app.post(body, None).await;
            let (_, after, _) = spend(app, None, None).await;
            (before.unwrap() - after.unwrap() - cheap, response)
        }
    };

    // Refused by the limits (31 aliases, 30 allowed): not charged.
    let fields: String = (0..31).map(|i| format!("a{i}: tags ")).collect();
    let (cost, response) = cost_of(json!({ "query": format!("{{ {fields} }}") })).await;
    assert_eq!(
        response.error_code(),
        Some("QUERY_TOO_COMPLEX"),
        "{}",
        response.body
    );
    assert_eq!(cost, 0, "a refused document is not charged");

    // Within the limits but not valid: charged all the same.
    let (cost, response) = cost_of(json!({ "query": "{ tags nope }" })).await;
    assert_eq!(
        response.error_code(),
        Some("GRAPHQL_VALIDATION_FAILED"),
        "{}",
        response.body
    );
    assert!(
        cost >= 1,
        "an invalid document within the limits is charged: {cost}"
    );

    // A batch of three: each member charged as if sent alone.
    let (cost, response) = cost_of(json!([
        { "query": CHEAP }, { "query": CHEAP }, { "query": CHEAP }
    ]))
    .await;
    assert_eq!(
        response.body.as_array().map(Vec::len),
        Some(3),
        "{}",
        response.body
    );
    assert_eq!(cost, 3 * cheap, "each member charged");
}
