//! Webhooks: endpoints owned by their user, deliveries signed per the
//! Standard Webhooks specification, retried, disabled, and never sent to
//! the server's own network.

use std::time::Duration;

use conduit::webhook_transport::signature;
use serde_json::{Value, json};

use crate::helpers::{Receiver, TestApp};

const CREATE: &str = "mutation($url: String!, $types: [WebhookEventType!]!) {
    createWebhookEndpoint(input: { url: $url, eventTypes: $types }) {
        endpoint { id url eventTypes enabled }
        secret
        errors { path code message }
    }
}";

const ENDPOINTS: &str = "{ viewer { webhookEndpoints { nodes {
    id url enabled disabledReason failingSince
    deliveries { nodes { id webhookId eventType status attempts responseStatus lastError nextAttemptAt deliveredAt payload } }
} } } }";

/// A server that delivers to local receivers, retrying after `schedule`.
async fn app_with_schedule(schedule: &str) -> TestApp {
    let schedule = schedule.parse().unwrap();
    TestApp::spawn_with(|c| {
        c.jobs.webhooks.allow_private_addresses = true;
        // The tests poll their deliveries; the query budget is not under test.
        c.rate_limits.points = 0;
        c.jobs.webhooks.retry_schedule = schedule;
        c.jobs.webhooks.secrets_key = Some(SECRETS_KEY.into());
    })
    .await
}

/// Creates an endpoint for `types` at `url`; returns (id, secret).
async fn create(app: &TestApp, token: &str, url: &str, types: &[&str]) -> (String, String) {
    let response = app
        .query_as(token, CREATE, json!({ "url": url, "types": types }))
        .await;
    let payload = &response.body["data"]["createWebhookEndpoint"];
    assert_eq!(payload["errors"], json!([]), "{}", response.body);
    (
        payload["endpoint"]["id"].as_str().unwrap().to_owned(),
        payload["secret"].as_str().unwrap().to_owned(),
    )
}

async fn endpoints(app: &TestApp, token: &str) -> Vec<Value> {
    let response = app.query_as(token, ENDPOINTS, json!({})).await;
    assert!(response.body["errors"].is_null(), "{}", response.body);
    response.body["data"]["viewer"]["webhookEndpoints"]["nodes"]
        .as_array()
        .unwrap()
        .clone()
}

/// Waits until the viewer's first endpoint's first delivery satisfies `done`.
async fn delivery_when(app: &TestApp, token: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..250 {
        let list = endpoints(app, token).await;
        if let Some(delivery) = list[0]["deliveries"]["nodes"].get(0)
            && done(delivery)
        {
            return delivery.clone();
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    panic!(
        "the delivery never got there: {:?}",
        endpoints(app, token).await
    );
}

const ROTATE: &str = "mutation($id: ID!) {
    rotateWebhookEndpointSecret(input: { id: $id }) { secret }
}";

/// A key the delivering servers of these tests seal secrets under.
const SECRETS_KEY: &str = "a key of the test deployment";

/// Waits until `sql` counts `n`.
async fn count_reaches(app: &TestApp, sql: &str, n: i64) {
    for _ in 0..250 {
        if app.db.count(sql).await == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    panic!("{sql} never counted {n}: {}", app.db.count(sql).await);
}

fn assert_signed(received: &crate::helpers::Received, secret: &str) {
    let expected =
        signature::sign(secret, &received.id, received.timestamp, &received.raw).unwrap();
    assert!(
        received.signature.split(' ').any(|s| s == expected),
        "{} does not carry {expected}",
        received.signature
    );
}

#[tokio::test]
async fn a_follow_is_delivered_signed_with_a_small_payload() {
    let app = app_with_schedule("100ms").await;
    let receiver = Receiver::start().await;
    let alice = app.signed_in_user("alice").await;
    let bob = app.signed_in_user("bob").await;
    let (_, secret) = create(&app, &alice.token, &receiver.url, &["USER_FOLLOWED"]).await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    // The database holds it sealed, not as given.
    let stored = "SELECT count(*) FROM webhook_endpoints WHERE secret LIKE 'sealed:v2:%'";
    assert_eq!(app.db.count(stored).await, 1);
    let plain = format!(
        "SELECT count(*) FROM webhook_endpoints WHERE secret LIKE '%{}%'",
        &secret[6..]
    );
    assert_eq!(app.db.count(&plain).await, 0);

    app.follow(&bob.token, "alice").await;
    let got = receiver.wait_for(1, Duration::from_secs(10)).await;
    let message = &got[0];
    assert!(message.id.starts_with("msg_"), "{}", message.id);
    assert!((chrono::Utc::now().timestamp() - message.timestamp).abs() < 60);
    assert_signed(message, &secret);
    assert_eq!(message.body["type"], "user.followed");
    assert_eq!(message.body["data"]["follower"]["username"], "bob");
    assert!(message.raw.len() < 512, "{} bytes", message.raw.len());

    let delivery = delivery_when(&app, &alice.token, |d| d["status"] == "SUCCEEDED").await;
    assert_eq!(delivery["webhookId"], message.id.as_str());
    assert_eq!(delivery["attempts"], 1);
    assert_eq!(delivery["responseStatus"], 200);
    assert_eq!(delivery["eventType"], "USER_FOLLOWED");

    // Nobody is told what they did themselves: Bob's endpoint for
    // favorites hears nothing of Bob favoriting his own article. Alice's
    // endpoint hears nothing it did not ask for (a favorite of hers).
    let bobs = Receiver::start().await;
    create(&app, &bob.token, &bobs.url, &["ARTICLE_FAVORITED"]).await;
    let own = app.create_article(&bob.token, "Bob's own", &[]).await;
    app.favorite(&bob.token, own["id"].as_str().unwrap()).await;
    let article = app.create_article(&alice.token, "Mine", &[]).await;
    app.favorite(&bob.token, article["id"].as_str().unwrap())
        .await;
    // Then what each should hear, sent after: once it has arrived and
    // every event before it has been fanned out and sent, anything the
    // earlier ones made would have arrived too.
    app.favorite(&alice.token, own["id"].as_str().unwrap())
        .await;
    let carol = app.signed_in_user("carol").await;
    app.follow(&carol.token, "alice").await;
    let heard = bobs.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(heard[0].body["data"]["user"]["username"], "alice");
    receiver.wait_for(2, Duration::from_secs(10)).await;
    count_reaches(
        &app,
        "SELECT count(*) FROM jobs WHERE kind = 'webhooks.fan_out'",
        0,
    )
    .await;
    count_reaches(
        &app,
        "SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'",
        0,
    )
    .await;
    let bob_heard = bobs.received();
    assert_eq!(bob_heard.len(), 1, "{bob_heard:?}");
    let alice_heard: Vec<Value> = receiver.received().into_iter().map(|r| r.body).collect();
    assert_eq!(alice_heard.len(), 2, "{alice_heard:?}");
    assert!(
        alice_heard.iter().all(|b| b["type"] == "user.followed"),
        "{alice_heard:?}"
    );
    assert_eq!(alice_heard[1]["data"]["follower"]["username"], "carol");
}

/// A sealed secret is bound to its endpoint: whoever can write the database
/// cannot make one endpoint sign with another's secret.
#[tokio::test]
async fn a_sealed_secret_copied_onto_another_endpoint_does_not_sign() {
    let app = app_with_schedule("100ms").await;
    let (follows, favorites) = (Receiver::start().await, Receiver::start().await);
    let alice = app.signed_in_user("alice").await;
    let bob = app.signed_in_user("bob").await;
    let carol = app.signed_in_user("carol").await;
    let (_, follow_secret) = create(&app, &alice.token, &follows.url, &["USER_FOLLOWED"]).await;
    let (favorite_id, _) = create(&app, &alice.token, &favorites.url, &["ARTICLE_FAVORITED"]).await;
    app.db
        .execute(&format!(
            "UPDATE webhook_endpoints SET secret =
                 (SELECT secret FROM webhook_endpoints WHERE url = '{}')
             WHERE url = '{}'",
            follows.url, favorites.url
        ))
        .await;

    let article = app.create_article(&alice.token, "Mine", &[]).await;
    let article_id = article["id"].as_str().unwrap();
    app.favorite(&bob.token, article_id).await;
    let failed = "SELECT count(*) FROM webhook_deliveries
        WHERE status = 'failed' AND attempts = 0 AND last_error LIKE '%rotate%'";
    count_reaches(&app, failed, 1).await;
    assert!(favorites.received().is_empty());
    // On its own endpoint the same value signs.
    app.follow(&bob.token, "alice").await;
    let got = follows.wait_for(1, Duration::from_secs(10)).await;
    assert_signed(&got[0], &follow_secret);

    // A new secret is the way out.
    let response = app
        .query_as(&alice.token, ROTATE, json!({ "id": favorite_id }))
        .await;
    let secret = response.body["data"]["rotateWebhookEndpointSecret"]["secret"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", response.body))
        .to_owned();
    app.favorite(&carol.token, article_id).await;
    let got = favorites.wait_for(1, Duration::from_secs(10)).await;
    assert_signed(&got[0], &secret);
}

/// Secrets stored before `WEBHOOK_SECRETS_KEY` was set are not trusted once
/// it is (anyone who could write the database could have put them there);
/// rotating one seals a new one.
#[tokio::test]
async fn a_secret_stored_before_the_key_was_set_signs_nothing_until_rotated() {
    let before = TestApp::spawn_with(|c| {
        c.jobs.webhooks.allow_private_addresses = true;
        c.rate_limits.points = 0;
        c.jobs.workers = 0;
    })
    .await;
    let after = TestApp::spawn_on(before.db.share(), |c| {
        c.jobs.webhooks.allow_private_addresses = true;
        c.rate_limits.points = 0;
        c.jobs.webhooks.retry_schedule = "100ms".parse().unwrap();
        c.jobs.webhooks.secrets_key = Some(SECRETS_KEY.into());
    })
    .await;
    let receiver = Receiver::start().await;
    let alice = before.signed_in_user("alice").await;
    let bob = before.signed_in_user("bob").await;
    let carol = before.signed_in_user("carol").await;
    let (id, old_secret) = create(&before, &alice.token, &receiver.url, &["USER_FOLLOWED"]).await;
    let unsealed = format!("SELECT count(*) FROM webhook_endpoints WHERE secret = '{old_secret}'");
    assert_eq!(before.db.count(&unsealed).await, 1);

    before.follow(&bob.token, "alice").await;
    let delivery = delivery_when(&before, &alice.token, |d| d["status"] == "FAILED").await;
    assert_eq!(delivery["attempts"], 0, "{delivery}");
    let error = delivery["lastError"].as_str().unwrap();
    assert!(error.contains("rotate"), "{error}");
    assert!(receiver.received().is_empty());

    let response = after
        .query_as(&alice.token, ROTATE, json!({ "id": id }))
        .await;
    let secret = response.body["data"]["rotateWebhookEndpointSecret"]["secret"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", response.body))
        .to_owned();
    let sealed = "SELECT count(*) FROM webhook_endpoints WHERE secret LIKE 'sealed:v2:%'";
    assert_eq!(before.db.count(sealed).await, 1);
    before.follow(&carol.token, "alice").await;
    let got = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_signed(&got[0], &secret);
    // The unsealed one, still the previous secret for a day, signs nothing.
    let old = signature::sign(&old_secret, &got[0].id, got[0].timestamp, &got[0].raw).unwrap();
    assert!(
        !got[0].signature.split(' ').any(|s| s == old),
        "{}",
        got[0].signature
    );
}

#[tokio::test]
async fn a_failing_receiver_is_retried_on_schedule_until_it_succeeds() {
    let app = app_with_schedule("300ms,600ms,5s").await;
    let receiver = Receiver::start().await;
    receiver.answer(&[(500, None), (503, None)]);
    let alice = app.signed_in_user("alice").await;
    let bob = app.signed_in_user("bob").await;
    let (_, secret) = create(&app, &alice.token, &receiver.url, &["USER_FOLLOWED"]).await;
    app.follow(&bob.token, "alice").await;

    let got = receiver.wait_for(3, Duration::from_secs(15)).await;
    assert!(
        got.iter().all(|r| r.id == got[0].id),
        "one webhook-id for every attempt"
    );
    for r in &got {
        assert_signed(r, &secret);
    }
    let (first_wait, second_wait) = (got[1].at - got[0].at, got[2].at - got[1].at);
    println!("waits between attempts: {first_wait:?}, {second_wait:?}");
    // The schedule, each step varied by up to a fifth either way.
    assert!(first_wait >= Duration::from_millis(240), "{first_wait:?}");
    assert!(second_wait >= Duration::from_millis(480), "{second_wait:?}");
    let delivery = delivery_when(&app, &alice.token, |d| d["status"] == "SUCCEEDED").await;
    assert_eq!(delivery["attempts"], 3);
    assert_eq!(delivery["responseStatus"], 200);
    assert_eq!(
        endpoints(&app, &alice.token).await[0]["failingSince"],
        Value::Null
    );
}

#[tokio::test]
async fn retry_after_is_honoured_for_429() {
    let app = app_with_schedule("100ms").await;
    let receiver = Receiver::start().await;
    receiver.answer(&[(429, Some("2"))]);
    let alice = app.signed_in_user("alice").await;
    let bob = app.signed_in_user("bob").await;
    create(&app, &alice.token, &receiver.url, &["USER_FOLLOWED"]).await;
    app.follow(&bob.token, "alice").await;
    let got = receiver.wait_for(2, Duration::from_secs(10)).await;
    let wait = got[1].at - got[0].at;
    assert!(wait >= Duration::from_millis(1900), "{wait:?}");
}

#[tokio::test]
async fn a_410_disables_the_endpoint_and_its_owner_sees_why() {
    let app = app_with_schedule("100ms,100ms").await;
    let receiver = Receiver::start().await;
    receiver.answer(&[(410, None)]);
    let alice = app.signed_in_user("alice").await;
    let bob = app.signed_in_user("bob").await;
    let carol = app.signed_in_user("carol").await;
    create(&app, &alice.token, &receiver.url, &["USER_FOLLOWED"]).await;
    app.follow(&bob.token, "alice").await;
    let delivery = delivery_when(&app, &alice.token, |d| d["status"] == "FAILED").await;
    assert_eq!(delivery["responseStatus"], 410);
    let endpoint = &endpoints(&app, &alice.token).await[0];
    assert_eq!(endpoint["enabled"], false);
    assert!(
        endpoint["disabledReason"].as_str().unwrap().contains("410"),
        "{endpoint}"
    );

    // A disabled endpoint gets nothing more. Another endpoint of hers
    // hears the next follow: once it has, that event's fan-out has passed
    // over the disabled one.
    let marker = Receiver::start().await;
    create(&app, &alice.token, &marker.url, &["USER_FOLLOWED"]).await;
    app.follow(&carol.token, "alice").await;
    let heard = marker.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(heard[0].body["data"]["follower"]["username"], "carol");
    let to_disabled = format!(
        "SELECT count(*) FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
         WHERE e.url = '{}'",
        receiver.url
    );
    assert_eq!(app.db.count(&to_disabled).await, 1);
    assert_eq!(receiver.received().len(), 1);
}

#[tokio::test]
async fn an_endpoint_failing_past_the_bound_is_disabled() {
    let app = TestApp::spawn_with(|c| {
        c.jobs.webhooks.allow_private_addresses = true;
        // The tests poll their deliveries; the query budget is not under test.
        c.rate_limits.points = 0;
        c.jobs.webhooks.retry_schedule = "300ms,300ms,300ms,300ms".parse().unwrap();
        c.jobs.webhooks.disable_after = Duration::from_millis(500);
    })
    .await;
    let receiver = Receiver::start().await;
    receiver.answer(&[(500, None); 10]);
    let alice = app.signed_in_user("alice").await;
    let bob = app.signed_in_user("bob").await;
    create(&app, &alice.token, &receiver.url, &["USER_FOLLOWED"]).await;
    app.follow(&bob.token, "alice").await;
    let delivery = delivery_when(&app, &alice.token, |d| d["status"] == "FAILED").await;
    assert!(delivery["attempts"].as_i64().unwrap() >= 2, "{delivery}");
    let endpoint = &endpoints(&app, &alice.token).await[0];
    assert_eq!(endpoint["enabled"], false);
    assert!(
        endpoint["disabledReason"]
            .as_str()
            .unwrap()
            .contains("every delivery failed"),
        "{endpoint}"
    );
}

#[tokio::test]
async fn a_finished_delivery_is_redelivered_with_the_same_id() {
    let app = app_with_schedule("100ms").await;
    let receiver = Receiver::start().await;
    let alice = app.signed_in_user("alice").await;
    let bob = app.signed_in_user("bob").await;
    create(&app, &alice.token, &receiver.url, &["USER_FOLLOWED"]).await;
    app.follow(&bob.token, "alice").await;
    let delivery = delivery_when(&app, &alice.token, |d| d["status"] == "SUCCEEDED").await;
    let redeliver = "mutation($id: ID!) { redeliverWebhookDelivery(input: { id: $id }) {
        delivery { status } errors { code } } }";
    let response = app
        .query_as(&alice.token, redeliver, json!({ "id": delivery["id"] }))
        .await;
    assert_eq!(
        response.body["data"]["redeliverWebhookDelivery"]["errors"],
        json!([]),
        "{}",
        response.body
    );
    let got = receiver.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(got[0].id, got[1].id);

    // Someone else's delivery is not found.
    let response = app
        .query_as(&bob.token, redeliver, json!({ "id": delivery["id"] }))
        .await;
    assert_eq!(
        response.error_code(),
        Some("NOT_FOUND"),
        "{}",
        response.body
    );
}

#[tokio::test]
async fn nobody_else_sees_or_touches_an_endpoint() {
    let app = app_with_schedule("100ms").await;
    let alice = app.signed_in_user("alice").await;
    let bob = app.signed_in_user("bob").await;
    let (id, _) = create(
        &app,
        &alice.token,
        "http://127.0.0.1:9/hook",
        &["USER_FOLLOWED"],
    )
    .await;

    assert!(endpoints(&app, &bob.token).await.is_empty());
    for (document, variables) in [
        (
            "mutation($id: ID!) { updateWebhookEndpoint(input: { id: $id, url: \"http://127.0.0.1:8/x\" }) { endpoint { url } } }",
            json!({ "id": id }),
        ),
        (
            "mutation($id: ID!) { deleteWebhookEndpoint(input: { id: $id }) { deletedId } }",
            json!({ "id": id }),
        ),
        (
            "mutation($id: ID!) { rotateWebhookEndpointSecret(input: { id: $id }) { secret } }",
            json!({ "id": id }),
        ),
    ] {
        let response = app.query_as(&bob.token, document, variables).await;
        assert_eq!(
            response.error_code(),
            Some("NOT_FOUND"),
            "{}",
            response.body
        );
    }
    // Not reachable as a node either.
    let response = app
        .query_as(
            &bob.token,
            "query($id: ID!) { node(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        response.body["data"]["node"],
        Value::Null,
        "{}",
        response.body
    );
    // Anonymous callers are refused.
    let response = app
        .query(
            CREATE,
            json!({ "url": "http://127.0.0.1:9/", "types": ["USER_FOLLOWED"] }),
        )
        .await;
    assert_eq!(response.error_code(), Some("UNAUTHENTICATED"));
    // Alice's endpoint is as she left it.
    let mine = endpoints(&app, &alice.token).await;
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["url"], "http://127.0.0.1:9/hook");
}

#[tokio::test]
async fn endpoints_per_user_are_bounded_and_inputs_checked() {
    let app = TestApp::spawn_with(|c| {
        c.jobs.webhooks.allow_private_addresses = true;
        // The tests poll their deliveries; the query budget is not under test.
        c.rate_limits.points = 0;
        c.jobs.webhooks.max_endpoints = 2;
    })
    .await;
    let alice = app.signed_in_user("alice").await;
    // Checked while there is room, so only the input can be at fault.
    let too_long = format!("http://127.0.0.1:9/{}", "a".repeat(3000));
    for (url, types, path, code) in [
        ("not a url", json!(["USER_FOLLOWED"]), "url", "INVALID"),
        (
            "ftp://127.0.0.1/",
            json!(["USER_FOLLOWED"]),
            "url",
            "INVALID",
        ),
        (
            "http://u:p@127.0.0.1:9/",
            json!(["USER_FOLLOWED"]),
            "url",
            "INVALID",
        ),
        (
            too_long.as_str(),
            json!(["USER_FOLLOWED"]),
            "url",
            "TOO_LONG",
        ),
        // Allowing private addresses never opens cloud metadata.
        (
            "http://169.254.169.254/latest/meta-data/",
            json!(["USER_FOLLOWED"]),
            "url",
            "REFUSED",
        ),
        ("http://127.0.0.1:9/", json!([]), "eventTypes", "BLANK"),
    ] {
        let response = app
            .query_as(&alice.token, CREATE, json!({ "url": url, "types": types }))
            .await;
        let payload = &response.body["data"]["createWebhookEndpoint"];
        let errors = payload["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 1, "{url}: {}", response.body);
        assert_eq!(errors[0]["code"], code, "{url}: {}", response.body);
        assert_eq!(errors[0]["path"], path, "{url}: {}", response.body);
        assert_eq!(payload["secret"], Value::Null);
    }
    assert!(endpoints(&app, &alice.token).await.is_empty());
    // An event type that does not exist is refused before anything runs.
    let response = app
        .query_as(
            &alice.token,
            CREATE,
            json!({ "url": "http://127.0.0.1:9/", "types": ["NO_SUCH_EVENT"] }),
        )
        .await;
    assert_eq!(
        response.error_code(),
        Some("GRAPHQL_VALIDATION_FAILED"),
        "{}",
        response.body
    );
    assert!(endpoints(&app, &alice.token).await.is_empty());

    // The same checks when an endpoint is changed, each input alone.
    let (id, _) = create(
        &app,
        &alice.token,
        "http://127.0.0.1:9/",
        &["USER_FOLLOWED"],
    )
    .await;
    let update = "mutation($id: ID!, $url: String, $types: [WebhookEventType!]) {
        updateWebhookEndpoint(input: { id: $id, url: $url, eventTypes: $types }) {
            endpoint { url } errors { path code }
        }
    }";
    for (variables, path, code) in [
        (
            json!({ "id": id, "url": "ftp://127.0.0.1/" }),
            "url",
            "INVALID",
        ),
        (json!({ "id": id, "types": [] }), "eventTypes", "BLANK"),
    ] {
        let response = app.query_as(&alice.token, update, variables).await;
        let errors = &response.body["data"]["updateWebhookEndpoint"]["errors"];
        assert_eq!(
            *errors,
            json!([{ "path": path, "code": code }]),
            "{}",
            response.body
        );
    }
    let unchanged = endpoints(&app, &alice.token).await;
    assert_eq!(unchanged.len(), 1);
    assert_eq!(unchanged[0]["url"], "http://127.0.0.1:9/");

    create(
        &app,
        &alice.token,
        "http://127.0.0.1:9/",
        &["USER_FOLLOWED"],
    )
    .await;
    let response = app
        .query_as(
            &alice.token,
            CREATE,
            json!({ "url": "http://127.0.0.1:9/", "types": ["USER_FOLLOWED"] }),
        )
        .await;
    let payload = &response.body["data"]["createWebhookEndpoint"];
    assert_eq!(
        payload["errors"],
        json!([{ "path": "url", "code": "LIMIT_REACHED", "message": "an account may have at most 2 webhook endpoints" }]),
        "{}",
        response.body
    );
    assert_eq!(payload["secret"], Value::Null);
    assert_eq!(endpoints(&app, &alice.token).await.len(), 2);
}

#[tokio::test]
async fn private_and_metadata_addresses_are_refused_at_registration() {
    let app = TestApp::spawn().await;
    let alice = app.signed_in_user("alice").await;
    for url in [
        "http://127.0.0.1:8080/hook",
        "http://[::1]/hook",
        "http://10.0.0.7/hook",
        "http://172.20.1.1/hook",
        "http://192.168.1.20/hook",
        "http://100.64.1.1/hook",
        "http://169.254.10.10/hook",
        "http://[fe80::1]/hook",
        "http://224.0.0.251/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:127.0.0.1]/hook",
        // IPv6 forms that carry or stand for an address of the inside.
        "http://[::127.0.0.1]/hook",
        "http://[::10.0.0.1]/hook",
        "http://[64:ff9b::a9fe:a9fe]/hook",
        "http://[64:ff9b:1::a00:1]/hook",
        "http://[2002:a00:1::1]/hook",
        "http://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/hook",
        "http://[fec0::1]/hook",
        "http://[fd00::1]/hook",
        "http://[2001:db8::1]/hook",
        "http://0.0.0.0/hook",
        // A name that resolves to 127.0.0.1.
        "http://localhost:8080/hook",
    ] {
        let response = app
            .query_as(
                &alice.token,
                CREATE,
                json!({ "url": url, "types": ["USER_FOLLOWED"] }),
            )
            .await;
        let errors = &response.body["data"]["createWebhookEndpoint"]["errors"];
        assert_eq!(errors[0]["code"], "REFUSED", "{url}: {}", response.body);
        assert_eq!(errors[0]["path"], "url");
    }
    assert!(endpoints(&app, &alice.token).await.is_empty());
}

/// What the server's resolver makes of a name stays on the server: a name
/// of the inside and a name that leads nowhere get one and the same answer.
#[tokio::test]
async fn a_refused_url_does_not_tell_what_its_name_resolves_to() {
    let app = TestApp::spawn().await;
    let alice = app.signed_in_user("alice").await;
    let mut messages = Vec::new();
    for url in [
        // Resolves to 127.0.0.1 (and ::1).
        "http://localhost:8080/hook",
        // Resolves to nothing.
        "http://nothing-here.invalid/hook",
    ] {
        let response = app
            .query_as(
                &alice.token,
                CREATE,
                json!({ "url": url, "types": ["USER_FOLLOWED"] }),
            )
            .await;
        let errors = &response.body["data"]["createWebhookEndpoint"]["errors"];
        assert_eq!(errors[0]["code"], "REFUSED", "{url}: {}", response.body);
        assert_eq!(errors[0]["path"], "url", "{url}: {}", response.body);
        let message = errors[0]["message"].as_str().unwrap().to_owned();
        for detail in ["127.0.0.1", "::1", "resolve", "loopback", "nothing-here"] {
            assert!(!message.contains(detail), "{url}: {message}");
        }
        messages.push(message);
    }
    assert_eq!(messages[0], messages[1]);
    assert!(endpoints(&app, &alice.token).await.is_empty());
}

#[tokio::test]
async fn addresses_are_checked_again_when_connecting() {
    // One instance registers with private addresses allowed and runs no
    // jobs; the other delivers with them refused, as a name's address
    // could change between registration and delivery.
    let registering = TestApp::spawn_with(|c| {
        c.jobs.webhooks.allow_private_addresses = true;
        // The tests poll their deliveries; the query budget is not under test.
        c.rate_limits.points = 0;
        c.jobs.workers = 0;
    })
    .await;
    let _delivering = TestApp::spawn_on(registering.db.share(), |c| {
        c.jobs.webhooks.retry_schedule = "100ms".parse().unwrap();
    })
    .await;
    let receiver = Receiver::start().await;
    let name_url = receiver.url.replace("127.0.0.1", "localhost");
    let alice = registering.signed_in_user("alice").await;
    let bob = registering.signed_in_user("bob").await;
    create(&registering, &alice.token, &name_url, &["USER_FOLLOWED"]).await;
    registering.follow(&bob.token, "alice").await;
    let delivery = delivery_when(&registering, &alice.token, |d| d["status"] == "FAILED").await;
    let error = delivery["lastError"].as_str().unwrap();
    assert!(error.contains("refused"), "{error}");
    // The owner is not told where the name led.
    assert!(
        !error.contains("127.0.0.1") && !error.contains("loopback"),
        "{error}"
    );
    assert!(receiver.received().is_empty());
}

/// A receiver that answers every request with a `307` to `to`; returns its
/// URL and how many requests it got.
async fn redirecting_to(to: &str) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::{Arc, atomic::AtomicUsize, atomic::Ordering};
    let hits = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    let to = to.to_owned();
    let counted = hits.clone();
    let router = axum::Router::new().route(
        "/hooks",
        axum::routing::post(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            let to = to.clone();
            async move { axum::response::Redirect::temporary(&to) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, hits)
}

/// A redirect could lead anywhere, addresses the guard refuses included:
/// it is an answer like any other that is not 2xx, never followed.
#[tokio::test]
async fn a_redirect_is_a_failed_attempt_and_is_not_followed() {
    let app = app_with_schedule("100ms").await;
    let target = Receiver::start().await;
    let (url, hits) = redirecting_to(&target.url).await;
    let alice = app.signed_in_user("alice").await;
    let bob = app.signed_in_user("bob").await;
    create(&app, &alice.token, &url, &["USER_FOLLOWED"]).await;
    app.follow(&bob.token, "alice").await;
    // Both attempts answered 307; had either been followed, the target
    // would have had the request before the attempt was recorded.
    let delivery = delivery_when(&app, &alice.token, |d| d["status"] == "FAILED").await;
    assert_eq!(delivery["responseStatus"], 307, "{delivery}");
    assert_eq!(delivery["attempts"], 2, "{delivery}");
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert!(target.received().is_empty());
}

#[tokio::test]
async fn retry_after_is_honoured_for_5xx() {
    let app = app_with_schedule("100ms").await;
    let receiver = Receiver::start().await;
    receiver.answer(&[(503, Some("2"))]);
    let alice = app.signed_in_user("alice").await;
    let bob = app.signed_in_user("bob").await;
    create(&app, &alice.token, &receiver.url, &["USER_FOLLOWED"]).await;
    app.follow(&bob.token, "alice").await;
    let got = receiver.wait_for(2, Duration::from_secs(10)).await;
    let wait = got[1].at - got[0].at;
    assert!(wait >= Duration::from_millis(1900), "{wait:?}");
}

/// However long a receiver asks to be left alone, the next attempt comes
/// within six hours.
#[tokio::test]
async fn retry_after_is_capped_at_six_hours() {
    let app = app_with_schedule("100ms").await;
    let receiver = Receiver::start().await;
    // A day.
    receiver.answer(&[(503, Some("86400"))]);
    let alice = app.signed_in_user("alice").await;
    let bob = app.signed_in_user("bob").await;
    create(&app, &alice.token, &receiver.url, &["USER_FOLLOWED"]).await;
    app.follow(&bob.token, "alice").await;
    let delivery = delivery_when(&app, &alice.token, |d| d["attempts"] == 1).await;
    assert_eq!(delivery["status"], "PENDING", "{delivery}");
    let next: chrono::DateTime<chrono::Utc> =
        delivery["nextAttemptAt"].as_str().unwrap().parse().unwrap();
    let wait = next - chrono::Utc::now();
    let six_hours = chrono::TimeDelta::hours(6);
    assert!(
        wait <= six_hours && wait > six_hours - chrono::TimeDelta::minutes(1),
        "next attempt in {wait}"
    );
}

/// An endpoint holds at most `WEBHOOK_MAX_PENDING` undelivered deliveries;
/// events past it are not queued for it, and are counted.
#[tokio::test]
async fn events_past_the_pending_bound_are_not_queued() {
    let app = TestApp::spawn_with(|c| {
        c.jobs.webhooks.allow_private_addresses = true;
        c.rate_limits.points = 0;
        // Every attempt fails (nothing listens there), and the next is far.
        c.jobs.webhooks.retry_schedule = "1h".parse().unwrap();
        c.jobs.webhooks.max_pending = 2;
    })
    .await;
    let alice = app.signed_in_user("alice").await;
    create(
        &app,
        &alice.token,
        "http://127.0.0.1:9/hook",
        &["USER_FOLLOWED"],
    )
    .await;
    let skipped = [("outcome", "skipped")];
    let before = app
        .scrape()
        .await
        .value("webhook_deliveries_total", &skipped);
    for name in ["bob", "carol", "dave", "erin"] {
        let follower = app.signed_in_user(name).await;
        app.follow(&follower.token, "alice").await;
        // Each event fanned out before the next (a fan-out is a job of its
        // own, deleted when done), so each sees the backlog the last left.
        count_reaches(
            &app,
            "SELECT count(*) FROM jobs WHERE kind = 'webhooks.fan_out'",
            0,
        )
        .await;
    }
    assert_eq!(
        app.db
            .count("SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'")
            .await,
        2
    );
    assert_eq!(
        app.db
            .count("SELECT count(*) FROM webhook_deliveries")
            .await,
        2
    );
    let after = app
        .scrape()
        .await
        .value("webhook_deliveries_total", &skipped);
    assert!(after - before >= 2.0, "skipped: {before} then {after}");
}
