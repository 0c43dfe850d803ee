//! Persisted documents over HTTP: Apollo's automatic persisted queries, in
//! memory and shared through Redis, and the trusted-documents mode.

use conduit::{
    config::{Config, PersistedQueryStore},
    graphql::persisted::sha256_hex,
};
use serde_json::{Value, json};

use crate::helpers::{GraphQLResponse, TestApp, redis_url, test_config};

/// A document no other test (or earlier run, through Redis) has sent.
fn fresh_document() -> String {
    format!(
        "# {}\nquery Tags {{ tags(first: 3) }}",
        uuid::Uuid::new_v4().simple()
    )
}

fn by_hash(hash: &str) -> Value {
    json!({ "extensions": { "persistedQuery": { "version": 1, "sha256Hash": hash } } })
}

fn with_text(hash: &str, text: &str) -> Value {
    json!({
        "query": text,
        "extensions": { "persistedQuery": { "version": 1, "sha256Hash": hash } },
    })
}

async fn get(app: &TestApp, query_string: &str) -> GraphQLResponse {
    let request = app
        .client
        .get(app.url(&format!("/graphql?{query_string}")))
        .header("accept", "application/json");
    app.send(request).await.into_graphql()
}

fn extensions_param(hash: &str) -> String {
    url::form_urlencoded::byte_serialize(
        json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } })
            .to_string()
            .as_bytes(),
    )
    .collect()
}

#[tokio::test]
async fn automatic_persisted_queries_register_once_then_run_by_hash() {
    let app = TestApp::spawn().await;
    let text = fresh_document();
    let hash = sha256_hex(&text);

    let unknown = app.post(by_hash(&hash), None).await;
    assert_eq!(unknown.status, 200, "{}", unknown.body);
    assert_eq!(
        unknown.body["errors"][0]["message"],
        "PersistedQueryNotFound"
    );
    assert_eq!(unknown.error_code(), Some("PERSISTED_QUERY_NOT_FOUND"));

    let registered = app.post(with_text(&hash, &text), None).await;
    assert_eq!(registered.body["data"]["tags"], json!([]));

    let known = app.post(by_hash(&hash), None).await;
    assert_eq!(known.body, json!({ "data": { "tags": [] } }));

    // GET works too (what CDNs cache), for queries.
    let over_get = get(&app, &format!("extensions={}", extensions_param(&hash))).await;
    assert_eq!(
        (over_get.status, &over_get.body["data"]["tags"]),
        (200, &json!([]))
    );
}

#[tokio::test]
async fn a_hash_that_does_not_match_the_text_is_refused_and_not_kept() {
    let app = TestApp::spawn().await;
    let text = fresh_document();
    let wrong = sha256_hex("{ something else }");

    let refused = app.post(with_text(&wrong, &text), None).await;
    assert_eq!(
        refused.error_code(),
        Some("BAD_USER_INPUT"),
        "{}",
        refused.body
    );
    assert!(refused.body["data"].is_null());
    let later = app.post(by_hash(&wrong), None).await;
    assert_eq!(later.error_code(), Some("PERSISTED_QUERY_NOT_FOUND"));

    for malformed in [
        json!({ "extensions": { "persistedQuery": { "version": 2, "sha256Hash": wrong } } }),
        json!({ "extensions": { "persistedQuery": { "version": 1, "sha256Hash": "abc" } } }),
        json!({ "extensions": { "persistedQuery": "yes" } }),
    ] {
        let response = app.post(malformed, None).await;
        assert_eq!(
            response.error_code(),
            Some("BAD_USER_INPUT"),
            "{}",
            response.body
        );
    }
}

#[tokio::test]
async fn persisted_documents_meet_the_same_limits_and_method_rules() {
    let app = TestApp::spawn_with(|c| {
        c.limits.max_depth = 3;
        c.limits.max_cost = 50;
    })
    .await;
    let deep = "query Deep { viewer { user { articles { edges { node { title } } } } } }";
    let hash = sha256_hex(deep);
    let first = app.post(with_text(&hash, deep), None).await;
    assert_eq!(first.error_code(), Some("QUERY_TOO_COMPLEX"));
    let again = app.post(by_hash(&hash), None).await;
    assert_eq!(again.error_code(), Some("PERSISTED_QUERY_NOT_FOUND"));

    // A document kept is measured again with each request's variables.
    let page = "query Page($n: Int) { articles(first: $n) { nodes { slug } } }";
    let hash = sha256_hex(page);
    let with_variables = |n: i64| {
        let mut request = by_hash(&hash);
        request["variables"] = json!({ "n": n });
        request
    };
    let mut registration = with_variables(1);
    registration["query"] = json!(page);
    let kept = app.post(registration, None).await;
    assert!(kept.body["errors"].is_null(), "{}", kept.body);
    let costly = app.post(with_variables(100), None).await;
    assert_eq!(
        costly.error_code(),
        Some("QUERY_TOO_COMPLEX"),
        "the hash is no way around the limits: {}",
        costly.body
    );

    let mutation = "mutation Out { signOut(input: {}) { errors { message } } }";
    let hash = sha256_hex(mutation);
    app.post(with_text(&hash, mutation), None).await;
    let over_get = get(&app, &format!("extensions={}", extensions_param(&hash))).await;
    assert_eq!(over_get.status, 405, "{}", over_get.body);
}

#[tokio::test]
async fn instances_sharing_redis_share_persisted_queries() {
    let settings = |c: &mut Config| {
        c.persisted_queries = PersistedQueryStore::Redis;
        c.redis.url = redis_url();
    };
    let a = TestApp::spawn_with(settings).await;
    let b = TestApp::spawn_with(settings).await;
    let text = fresh_document();
    let hash = sha256_hex(&text);
    assert_eq!(
        b.post(by_hash(&hash), None).await.error_code(),
        Some("PERSISTED_QUERY_NOT_FOUND")
    );
    a.post(with_text(&hash, &text), None).await;
    let on_b = b.post(by_hash(&hash), None).await;
    assert_eq!(on_b.body, json!({ "data": { "tags": [] } }));
}

#[tokio::test]
async fn hash_only_requests_are_refused_when_persisted_queries_are_off() {
    let app = TestApp::spawn_with(|c| c.persisted_queries = PersistedQueryStore::Off).await;
    let text = fresh_document();
    let hash = sha256_hex(&text);
    let refused = app.post(by_hash(&hash), None).await;
    assert_eq!(refused.error_code(), Some("PERSISTED_QUERY_NOT_SUPPORTED"));
    // Text with a hash still runs; nothing is kept.
    let with = app.post(with_text(&hash, &text), None).await;
    assert_eq!(with.body["data"]["tags"], json!([]));
}

/// A server that runs only `documents`.
async fn trusted_app(documents: &[&str]) -> (TestApp, tempfile_path::Path) {
    let manifest: serde_json::Map<String, Value> = documents
        .iter()
        .map(|d| (sha256_hex(d), json!(d)))
        .collect();
    let path = tempfile_path::Path::new(&Value::Object(manifest).to_string());
    let app = TestApp::spawn_with(|c| c.trusted_documents = Some(path.as_str().into())).await;
    (app, path)
}

#[tokio::test]
async fn trusted_documents_run_and_everything_else_is_refused() {
    let tags = "query Tags { tags(first: 3) }";
    let viewer = "query Me { viewer { user { username } } }";
    let (app, _manifest) = trusted_app(&[tags, viewer]).await;

    let by_hash_ok = app.post(by_hash(&sha256_hex(tags)), None).await;
    assert_eq!(by_hash_ok.body, json!({ "data": { "tags": [] } }));
    let prefixed = app
        .post(by_hash(&format!("sha256:{}", sha256_hex(viewer))), None)
        .await;
    assert_eq!(prefixed.body, json!({ "data": { "viewer": null } }));
    let verbatim = app.query(tags, json!({})).await;
    assert_eq!(verbatim.body, json!({ "data": { "tags": [] } }));

    let other = "{ tags }";
    let refused = app.query(other, json!({})).await;
    assert_eq!(refused.status, 200);
    assert_eq!(refused.error_code(), Some("PERSISTED_QUERY_NOT_TRUSTED"));
    assert!(refused.body.get("data").is_none_or(Value::is_null));

    let strict = app
        .send(
            app.client
                .post(app.url("/graphql"))
                .header("accept", "application/graphql-response+json")
                .json(&json!({ "query": other })),
        )
        .await;
    assert_eq!(strict.status, 400);

    let registration = app.post(with_text(&sha256_hex(other), other), None).await;
    assert_eq!(
        registration.error_code(),
        Some("PERSISTED_QUERY_NOT_TRUSTED")
    );
    let after = app.post(by_hash(&sha256_hex(other)), None).await;
    assert_eq!(after.error_code(), Some("PERSISTED_QUERY_NOT_FOUND"));

    let swapped = app.post(with_text(&sha256_hex(tags), other), None).await;
    assert_eq!(swapped.error_code(), Some("PERSISTED_QUERY_NOT_TRUSTED"));

    let batch = app
        .post(
            json!([by_hash(&sha256_hex(tags)), { "query": other }]),
            None,
        )
        .await;
    assert_eq!(batch.error_code(), Some("PERSISTED_QUERY_NOT_TRUSTED"));
}

#[tokio::test]
async fn a_manifest_that_does_not_check_out_stops_start_up() {
    let db = crate::helpers::TestDatabase::create().await;
    let bad = tempfile_path::Path::new(&json!({ sha256_hex("{ a }"): "{ b }" }).to_string());
    let not_json = tempfile_path::Path::new("[1, 2");
    for (manifest, expected) in [
        (bad.as_str(), "does not have that SHA-256"),
        (not_json.as_str(), "is not a JSON object"),
        ("/nonexistent/manifest.json", "failed to read"),
    ] {
        let config = test_config(&db.url, |c| c.trusted_documents = Some(manifest.into()));
        let error = match conduit::startup::Application::build(&config).await {
            Ok(_) => panic!("{manifest} was accepted"),
            Err(e) => format!("{e:#}"),
        };
        assert!(error.contains(expected), "{error}");
    }
    db.drop_now().await;
}

/// A file in the temporary directory, removed on drop.
mod tempfile_path {
    pub struct Path(std::path::PathBuf);

    impl Path {
        pub fn new(contents: &str) -> Self {
            let path = std::env::temp_dir().join(format!(
                "conduit-manifest-{}.json",
                uuid::Uuid::new_v4().simple()
            ));
            std::fs::write(&path, contents).unwrap();
            Self(path)
        }

        pub fn as_str(&self) -> &str {
            self.0.to_str().unwrap()
        }
    }

    impl Drop for Path {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// Whether Redis holds the automatic persisted query `hash`.
async fn kept_in_redis(hash: &str) -> bool {
    let mut redis = conduit::redis::connect(&redis_url()).await.unwrap();
    redis::cmd("EXISTS")
        .arg(format!("conduit:apq:{hash}"))
        .query_async(&mut redis)
        .await
        .unwrap()
}

/// Whether `app` knows `hash`, by the answer to the hash alone (which is
/// refused before anything is charged).
async fn known(app: &TestApp, hash: &str) -> bool {
    let response = app.post(by_hash(hash), None).await;
    response.error_code() != Some("PERSISTED_QUERY_NOT_FOUND")
}

/// A server keeping automatic persisted queries in `store`.
async fn spawn_keeping_in(
    store: PersistedQueryStore,
    configure: impl FnOnce(&mut Config),
) -> TestApp {
    TestApp::spawn_with(|c| {
        c.persisted_queries = store;
        c.redis.url = redis_url();
        configure(c);
    })
    .await
}

/// Only a document that parses and is within the limits is kept: anything
/// else sent with its hash is refused with its code and written nowhere.
async fn only_documents_within_the_limits_are_kept(store: PersistedQueryStore) {
    let app = spawn_keeping_in(store, |c| c.limits.max_depth = 3).await;
    let marker = uuid::Uuid::new_v4().simple();
    let unparseable = format!("# {marker}\nquery Tags {{ tags(first: 3)");
    let too_deep = format!(
        "# {marker}\nquery Deep {{ viewer {{ user {{ articles {{ edges {{ node {{ title }} }} }} }} }} }}"
    );
    for (text, code) in [
        (unparseable, "GRAPHQL_PARSE_FAILED"),
        (too_deep, "QUERY_TOO_COMPLEX"),
    ] {
        let hash = sha256_hex(&text);
        let refused = app.post(with_text(&hash, &text), None).await;
        assert_eq!(refused.error_code(), Some(code), "{}", refused.body);
        assert!(!known(&app, &hash).await, "{text} was kept");
        if matches!(store, PersistedQueryStore::Redis) {
            assert!(!kept_in_redis(&hash).await, "{text} was written to Redis");
        }
    }

    let text = fresh_document();
    let hash = sha256_hex(&text);
    let registered = app.post(with_text(&hash, &text), None).await;
    assert_eq!(registered.body, json!({ "data": { "tags": [] } }));
    assert!(known(&app, &hash).await);
    if matches!(store, PersistedQueryStore::Redis) {
        assert!(kept_in_redis(&hash).await);
    }
}

#[tokio::test]
async fn documents_that_fail_to_parse_or_exceed_a_limit_are_not_kept_in_memory() {
    only_documents_within_the_limits_are_kept(PersistedQueryStore::Memory).await;
}

#[tokio::test]
async fn documents_that_fail_to_parse_or_exceed_a_limit_are_not_written_to_redis() {
    only_documents_within_the_limits_are_kept(PersistedQueryStore::Redis).await;
}

/// A fresh document of about 1 KiB.
fn fresh_kib_document() -> String {
    format!("{}\n#{}", fresh_document(), "x".repeat(1000))
}

/// Keeping a document is charged to the caller's budget, on top of running
/// it; once the budget is spent, nothing more is kept.
async fn keeping_a_document_is_charged(store: PersistedQueryStore) {
    let app = spawn_keeping_in(store, |c| c.rate_limits.points = 400).await;
    let remaining = |response: &GraphQLResponse| -> u64 {
        response
            .header("x-ratelimit-remaining")
            .expect("budget headers")
            .parse()
            .unwrap()
    };
    let before = remaining(&app.query("{ tags(first: 3) }", json!({})).await);
    let ran = app.query(&fresh_kib_document(), json!({})).await;
    let running = before - remaining(&ran);
    let text = fresh_kib_document();
    let registered = app.post(with_text(&sha256_hex(&text), &text), None).await;
    assert_eq!(registered.body, json!({ "data": { "tags": [] } }));
    assert!(
        remaining(&ran) - remaining(&registered) > running,
        "keeping a document costs more than running it"
    );

    let mut refused = None;
    for _ in 0..10 {
        let text = fresh_kib_document();
        let hash = sha256_hex(&text);
        let response = app.post(with_text(&hash, &text), None).await;
        if response.error_code() == Some("RATE_LIMITED") {
            refused = Some(hash);
            break;
        }
        assert!(response.body["errors"].is_null(), "{}", response.body);
    }
    let hash = refused.expect("registrations run out of budget");
    assert!(!known(&app, &hash).await, "a refused document was kept");
    if matches!(store, PersistedQueryStore::Redis) {
        assert!(!kept_in_redis(&hash).await);
    }
}

#[tokio::test]
async fn keeping_a_document_in_memory_is_charged_to_the_budget() {
    keeping_a_document_is_charged(PersistedQueryStore::Memory).await;
}

#[tokio::test]
async fn keeping_a_document_in_redis_is_charged_to_the_budget() {
    keeping_a_document_is_charged(PersistedQueryStore::Redis).await;
}
