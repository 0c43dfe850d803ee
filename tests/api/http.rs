//! The HTTP surface: request ids, health, GET rules, error masking, pool
//! saturation and graceful shutdown.

use std::time::Duration;

use conduit::config::AppEnv;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::TestApp;

#[tokio::test]
async fn every_response_has_a_request_id_and_plain_incoming_ids_are_kept() {
    let app = TestApp::spawn().await;
    let generated = app.client.get(app.url("/healthz")).send().await.unwrap();
    let id = generated.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");

    let kept = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "client-trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(kept.headers()["x-request-id"], "client-trace-42");

    let replaced = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "has spaces <and> symbols")
        .send()
        .await
        .unwrap();
    let id = replaced.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
}

#[tokio::test]
async fn readyz_fails_when_the_database_is_gone() {
    let app = TestApp::spawn().await;
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.json::<Value>().await.unwrap()["status"], "ready");

    app.db.drop_now().await;
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert_eq!(
        ready.json::<Value>().await.unwrap()["status"],
        "unavailable"
    );
    // The process itself is still up.
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn get_runs_queries_and_refuses_mutations() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .get(app.url("/graphql"))
        .query(&[("query", "{ viewer { user { username } } }")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({ "data": { "viewer": null } })
    );

    let response = app
        .client
        .get(app.url("/graphql"))
        .query(&[(
            "query",
            "mutation { createUser(input: {username: \"x\", email: \"x@example.com\", password: \"password1\"}) { errors { code } } }",
        )])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    assert_eq!(app.db.count("SELECT count(*) FROM users").await, 0);
}

/// Every error a client sees carries `extensions.code`, those that
/// async-graphql raises itself included.
#[tokio::test]
async fn parse_and_validation_errors_have_codes() {
    let app = TestApp::spawn().await;
    let cases = [
        ("{ tags", json!({}), "GRAPHQL_PARSE_FAILED"),
        ("{ nope }", json!({}), "GRAPHQL_VALIDATION_FAILED"),
        (
            "query($n: Int!) { articles(first: $n) { totalCount } }",
            json!({ "n": "ten" }),
            "GRAPHQL_VALIDATION_FAILED",
        ),
        (
            "query Named { tags }",
            json!(null),
            "GRAPHQL_VALIDATION_FAILED",
        ),
    ];
    let before = app.scrape().await;
    for (query, variables, code) in cases {
        let mut body = json!({ "query": query, "variables": variables });
        if query.starts_with("query Named") {
            body["operationName"] = json!("Other");
        }
        let response = app.post(body, None).await;
        let errors = response.body["errors"].as_array().expect("errors");
        assert!(!errors.is_empty(), "{query}");
        for error in errors {
            assert_eq!(error["extensions"]["code"], code, "{query}: {error}");
        }
    }
    // Metrics count them under the same codes (other tests' errors can
    // only add to the counts).
    let after = app.scrape().await;
    for (code, sent) in [
        ("GRAPHQL_PARSE_FAILED", 1.0),
        ("GRAPHQL_VALIDATION_FAILED", 3.0),
    ] {
        let counted = after.value("graphql_errors_total", &[("code", code)])
            - before.value("graphql_errors_total", &[("code", code)]);
        assert!(counted >= sent, "{code}: {counted} of {sent} counted");
    }
}

#[tokio::test]
async fn browsers_get_graphiql() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .get(app.url("/graphql"))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self';"), "{csp}");
    assert!(!csp.contains("unsafe"), "{csp}");
    let html = response.text().await.unwrap();
    assert!(html.contains("/graphiql/graphiql.min.js"));
    assert!(!html.contains("https://"), "no CDN");

    for (file, content_type) in [
        ("graphiql.min.js", "text/javascript"),
        ("graphiql.min.css", "text/css"),
        ("react.production.min.js", "text/javascript"),
        ("init.js", "text/javascript"),
    ] {
        let asset = app
            .client
            .get(app.url(&format!("/graphiql/{file}")))
            .send()
            .await
            .unwrap();
        assert_eq!(asset.status(), 200, "{file}");
        assert!(
            asset.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(content_type)
        );
        assert_eq!(asset.headers()["content-security-policy"], csp.as_str());
        assert!(asset.bytes().await.unwrap().len() > 100, "{file}");
    }
    let missing = app
        .client
        .get(app.url("/graphiql/../Cargo.toml"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn production_hides_graphiql_and_the_schema_from_anonymous_clients() {
    let app = TestApp::spawn_with(|c| {
        c.app_env = AppEnv::Production;
        c.jwt_secret = Some("Zq4v8N2wXk7Lp1Rt6Ym3Hs9Bd5Gf0Jc-prod".into());
        c.jobs.webhooks.secrets_key = Some("Wm5Tg8Qa2Lr7Zx0Kc4Vb9Nh1Jd6Fp3Ys-seal".into());
    })
    .await;
    let page = app
        .client
        .get(app.url("/graphql"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert!(
        !page
            .text()
            .await
            .unwrap()
            .to_lowercase()
            .contains("graphiql")
    );
    let asset = app
        .client
        .get(app.url("/graphiql/graphiql.min.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(asset.status(), 404);

    let introspection = app
        .query(
            "{ __schema { queryType { name } } __type(name: \"User\") { name } }",
            json!({}),
        )
        .await;
    assert_eq!(
        introspection.body["data"],
        json!({ "__schema": null, "__type": null }),
        "{:?}",
        introspection.body
    );

    let typo = app
        .query("{ viewr { user { username } } }", json!({}))
        .await;
    let message = typo.body["errors"][0]["message"].as_str().unwrap();
    assert!(!message.contains("Did you mean"), "{message}");

    let session = app.signed_in_user("jake").await;
    let introspection = app
        .query_as(
            &session.token,
            "{ __schema { queryType { name } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        introspection.body["data"]["__schema"]["queryType"]["name"],
        "Query"
    );
}

#[tokio::test]
async fn internal_errors_are_masked_and_carry_the_request_id() {
    let app = TestApp::spawn().await;
    app.db
        .execute("ALTER TABLE users RENAME TO users_moved")
        .await;
    let response = app
        .client
        .post(app.url("/graphql"))
        .json(&json!({ "query": "{ user(username: \"jake\") { username } }" }))
        .send()
        .await
        .unwrap();
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let text = response.text().await.unwrap();
    assert!(
        !text.contains("users") && !text.contains("relation"),
        "{text}"
    );
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        body,
        json!({
            "data": null,
            "errors": [{
                "message": "internal server error",
                "locations": [{ "line": 1, "column": 3 }],
                "path": ["user"],
                "extensions": { "code": "INTERNAL_SERVER_ERROR", "requestId": request_id }
            }]
        })
    );
}

/// A connection holding a lock on `users` until it rolls back, so queries
/// on that table block.
async fn lock_users(app: &TestApp) -> AsyncPgConnection {
    let mut locker = AsyncPgConnection::establish(&app.db.url).await.unwrap();
    locker
        .batch_execute("BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    locker
}

#[tokio::test]
async fn a_saturated_pool_answers_timeout_instead_of_hanging() {
    let app = TestApp::spawn_with(|c| {
        c.database_pool_size = 1;
        c.database_acquire_timeout = Duration::from_millis(300);
    })
    .await;
    // Hold a lock so the one pooled connection blocks inside a query.
    let mut locker = lock_users(&app).await;
    let query = "{ user(username: \"jake\") { username } }";
    let blocked = app.query(query, json!({}));
    let waiting = async {
        // The pool's one connection is taken once its query waits for the
        // lock; the next request then waits for a connection. (How soon
        // it gives up is measured by scripts/bench/bench.py.)
        app.db.until_waiting_for_locks(1).await;
        let response = app.query(query, json!({})).await;
        locker.batch_execute("ROLLBACK").await.unwrap();
        response
    };
    let (blocked, waiting) = tokio::join!(blocked, waiting);
    assert_eq!(waiting.error_code(), Some("TIMEOUT"), "{:?}", waiting.body);
    assert_eq!(blocked.body, json!({ "data": { "user": null } }));
}

#[tokio::test]
async fn a_query_past_the_statement_timeout_is_cancelled() {
    let app =
        TestApp::spawn_with(|c| c.database_statement_timeout = Duration::from_millis(300)).await;
    let mut locker = lock_users(&app).await;
    let response = app
        .query("{ user(username: \"jake\") { username } }", json!({}))
        .await;
    assert_eq!(
        response.error_code(),
        Some("TIMEOUT"),
        "{:?}",
        response.body
    );
    locker.batch_execute("ROLLBACK").await.unwrap();
}

#[tokio::test]
async fn a_request_past_its_time_is_cancelled_with_timeout() {
    let app = TestApp::spawn_with(|c| c.request_timeout = Duration::from_secs(1)).await;
    let mut locker = lock_users(&app).await;
    let response = app
        .query("{ user(username: \"jake\") { username } }", json!({}))
        .await;
    assert_eq!(response.status, 503);
    assert_eq!(response.error_code(), Some("TIMEOUT"));
    locker.batch_execute("ROLLBACK").await.unwrap();
}

const UPDATE_USER: &str = "mutation($input: UpdateUserInput!) {
    updateUser(input: $input) { user { bio } errors { code } }
}";

/// `request` held up by `locker`'s transaction: once it waits for the
/// lock, the lock is held until its answer arrives or, should the server
/// wait for the write, for `held_for`, past the request timeout; then
/// `locker` rolls back, letting the write go on.
async fn held_up<F: std::future::Future>(
    app: &TestApp,
    locker: &mut AsyncPgConnection,
    request: F,
    held_for: Duration,
) -> F::Output {
    let mut request = std::pin::pin!(request);
    let answered = tokio::select! {
        answer = &mut request => Some(answer),
        () = async {
            app.db.until_waiting_for_locks(1).await;
            tokio::time::sleep(held_for).await;
        } => None,
    };
    locker.batch_execute("ROLLBACK").await.unwrap();
    match answered {
        Some(answer) => answer,
        None => request.await,
    }
}

/// A mutation held up past the request timeout answers what happened: its
/// result with its write in place, or `TIMEOUT` with nothing written; never
/// `TIMEOUT` over a write that lands afterwards, which a client retrying
/// would make twice.
#[tokio::test]
async fn a_mutation_past_the_request_timeout_answers_what_happened() {
    let app = TestApp::spawn_with(|c| c.request_timeout = Duration::from_secs(1)).await;
    let jake = app.signed_in_user("jake").await;
    let mut locker = AsyncPgConnection::establish(&app.db.url).await.unwrap();
    let held_for = Duration::from_millis(2500);

    // A write in a service's transaction, waiting for a row lock.
    locker
        .batch_execute("BEGIN; SELECT 1 FROM users WHERE username = 'jake' FOR UPDATE")
        .await
        .unwrap();
    let update = app.query_as(
        &jake.token,
        UPDATE_USER,
        json!({ "input": { "bio": "written late" } }),
    );
    let updated = held_up(&app, &mut locker, update, held_for).await;
    let written = app
        .db
        .count("SELECT count(*) FROM users WHERE bio = 'written late'")
        .await;
    match updated.error_code() {
        Some("TIMEOUT") => assert_eq!(written, 0, "{}", updated.body),
        _ => {
            assert_eq!(
                updated.body["data"]["updateUser"]["user"]["bio"], "written late",
                "{}",
                updated.body
            );
            assert_eq!(written, 1);
        }
    }

    // A write that commits on its own: a sign-up whose username an
    // unfinished transaction holds.
    locker
        .batch_execute(
            "BEGIN; INSERT INTO users (username, email, password_hash) \
             VALUES ('racer', 'held@example.com', 'not a hash')",
        )
        .await
        .unwrap();
    let sign_up = app.query(
        "mutation($input: CreateUserInput!) {
            createUser(input: $input) { user { username } errors { code } }
        }",
        json!({ "input": {
            "username": "racer",
            "email": "racer@example.com",
            "password": crate::helpers::PASSWORD,
        } }),
    );
    let signed_up = held_up(&app, &mut locker, sign_up, held_for).await;
    let written = app
        .db
        .count("SELECT count(*) FROM users WHERE email = 'racer@example.com'")
        .await;
    match signed_up.error_code() {
        Some("TIMEOUT") => assert_eq!(written, 0, "{}", signed_up.body),
        _ => {
            assert_eq!(
                signed_up.body["data"]["createUser"]["user"]["username"], "racer",
                "{}",
                signed_up.body
            );
            assert_eq!(written, 1);
        }
    }
}

/// A JSON-array batch runs its operations one after another, in order, as
/// async-graphql's own batches do: the second write lands last even when
/// the first is the slower.
#[tokio::test]
async fn a_batch_runs_its_mutations_in_order() {
    let app = TestApp::spawn().await;
    let jake = app.signed_in_user("jake").await;
    for round in 0..3 {
        let (first, second) = (format!("first {round}"), format!("second {round}"));
        // A new password makes the first the slower: it is hashed first.
        let new_password = format!("{} {round}", crate::helpers::PASSWORD);
        let batch = json!([
            { "query": UPDATE_USER, "variables": { "input": { "bio": first, "password": new_password } } },
            { "query": UPDATE_USER, "variables": { "input": { "bio": second } } },
        ]);
        let response = app.post(batch, Some(&jake.token)).await;
        assert_eq!(
            (
                &response.body[0]["data"]["updateUser"]["user"]["bio"],
                &response.body[1]["data"]["updateUser"]["user"]["bio"],
            ),
            (&json!(first), &json!(second)),
            "{}",
            response.body
        );
        let now = app
            .query_as(&jake.token, "{ viewer { user { bio } } }", json!({}))
            .await;
        assert_eq!(now.body["data"]["viewer"]["user"]["bio"], json!(second));
    }
}

#[tokio::test]
async fn requests_past_the_concurrency_limit_are_shed() {
    let app = TestApp::spawn_with(|c| c.max_concurrent_requests = 1).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    // Hold the one slot with a request whose body never finishes arriving.
    let mut stream = TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /graphql HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // Shed once the server has taken the request in.
    let response = until_healthz_answers(&app, 503).await;
    assert_eq!(response.headers()["retry-after"], "1");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "TIMEOUT");
    // Served again once it has let the abandoned one go.
    drop(stream);
    until_healthz_answers(&app, 200).await;
}

/// The first `/healthz` answer with `status`, retried until then; panics
/// with the last status after ten seconds.
async fn until_healthz_answers(app: &TestApp, status: u16) -> reqwest::Response {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let response = app.client.get(app.url("/healthz")).send().await.unwrap();
        if response.status() == status {
            return response;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "after 10s /healthz still answered {} rather than {status}",
            response.status()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn graceful_shutdown_finishes_the_request_in_flight() {
    // One request at a time, so the server says when it holds this one.
    let mut app = TestApp::spawn_with(|c| c.max_concurrent_requests = 1).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let body = json!({ "query": "{ viewer { user { username } } }" }).to_string();
    let (first, rest) = body.split_at(10);

    let mut stream = TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /graphql HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(first.as_bytes()).await.unwrap();
    until_healthz_answers(&app, 503).await;

    // The rest of the body comes once the server has stopped accepting.
    app.trigger_shutdown();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(&address).await.is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "after 10s of shutting down the server still accepted connections"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stream.write_all(rest.as_bytes()).await.unwrap();

    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut response))
        .await
        .expect("response within 5s")
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.ends_with(r#"{"data":{"viewer":null}}"#),
        "{response}"
    );

    app.shut_down().await;
    assert!(
        TcpStream::connect(&address).await.is_err(),
        "new connections are refused"
    );
}

#[tokio::test]
async fn the_binary_shuts_down_cleanly_on_sigterm() {
    let db = crate::helpers::TestDatabase::create().await;
    let crate::helpers::ServerProcess {
        mut child,
        url,
        mut lines,
    } = crate::helpers::ServerProcess::start(&db, &[]).await;

    let response = reqwest::get(format!("{url}/healthz")).await.unwrap();
    assert_eq!(response.status(), 200);

    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id().unwrap() as i32, libc::SIGTERM) };
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits within 10s after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
    let mut rest = Vec::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        rest.push(line);
    }
    let rest = rest.join("\n");
    assert!(rest.contains("SIGTERM received"), "{rest}");
    assert!(rest.contains("in-flight requests finished"), "{rest}");
}

#[tokio::test]
async fn responses_follow_graphql_over_http_negotiation() {
    let app = TestApp::spawn().await;
    let send = |accept: Option<&'static str>, query: &'static str| {
        let mut request = app
            .client
            .post(app.url("/graphql"))
            .json(&json!({ "query": query }));
        if let Some(accept) = accept {
            request = request.header("accept", accept);
        }
        request.send()
    };
    let modern = Some("application/graphql-response+json, application/json;q=0.9");

    // A result, whichever the client accepts.
    for accept in [None, Some("application/json"), Some("*/*"), modern] {
        let response = send(accept, "{ tags }").await.unwrap();
        assert_eq!(response.status(), 200, "{accept:?}");
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        let expected = if accept == modern {
            "application/graphql-response+json"
        } else {
            "application/json"
        };
        assert!(
            content_type.starts_with(expected),
            "{accept:?}: {content_type}"
        );
    }

    // Request errors: 400 and no `data` for the new media type, the legacy
    // 200 with `data: null` for application/json.
    for query in ["{ tags", "{ nope }"] {
        let response = send(modern, query).await.unwrap();
        assert_eq!(response.status(), 400, "{query}");
        let body: Value = response.json().await.unwrap();
        assert!(body.get("data").is_none(), "{body}");
        assert!(body["errors"][0]["message"].is_string());

        let response = send(Some("application/json"), query).await.unwrap();
        assert_eq!(response.status(), 200, "{query}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["data"], Value::Null);
    }

    // A field error is not a request error: 200 with partial data.
    let response = send(modern, "{ tags node(id: \"bad\") { id } }")
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}
