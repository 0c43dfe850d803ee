//! GraphQL over WebSocket (`graphql-transport-ws`): each rule of the
//! protocol, raw frame by raw frame, and each subscription with two users
//! on two sockets.

use std::time::Duration;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use crate::helpers::{Relay, Socket, TestApp, TestDatabase};

const COMMENTS: &str = "subscription($a: ID!, $after: String) {
    commentEvents(articleId: $a, after: $after) {
        cursor change commentId comment { body author { username } }
    }
}";

async fn comment(app: &TestApp, token: &str, article: &str, body: &str) -> String {
    let response = app
        .query_as(
            token,
            "mutation($i: AddCommentInput!) { addComment(input: $i) { comment { id } errors { code } } }",
            json!({ "i": { "articleId": article, "body": body } }),
        )
        .await;
    let id = &response.body["data"]["addComment"]["comment"]["id"];
    id.as_str()
        .unwrap_or_else(|| panic!("{:?}", response.body))
        .to_owned()
}

/// A new article's global id.
async fn new_article(app: &TestApp, token: &str, title: &str) -> String {
    let article = app.create_article(token, title, &[]).await;
    article["id"].as_str().unwrap().to_owned()
}

/// Returns once the server has handled every message `socket` sent before:
/// it handles a socket's messages in order, so its pong comes after.
async fn handled(socket: &mut Socket) {
    socket
        .send(json!({ "type": "ping", "payload": { "handled": true } }))
        .await;
    assert_eq!(
        socket.recv().await,
        json!({ "type": "pong", "payload": { "handled": true } })
    );
}

fn event(message: &Value) -> &Value {
    &message["payload"]["data"]
}

/// The cursor of the last event recorded: a subscription resuming from it
/// misses nothing committed later, however long it takes to start.
async fn cursor_now(app: &TestApp) -> String {
    let id = app
        .db
        .count("SELECT coalesce(max(id), 0) FROM events")
        .await;
    URL_SAFE_NO_PAD.encode(format!("event:{id}"))
}

#[tokio::test]
async fn connection_init_is_required_within_the_timeout_and_only_once() {
    let app =
        TestApp::spawn_with(|c| c.subscriptions.init_timeout = Duration::from_millis(300)).await;
    let mut silent = app.socket().await;
    assert_eq!(silent.closed().await.0, 4408);

    let mut twice = app.socket().await;
    twice.init(None).await;
    assert_eq!(twice.recv().await["type"], "connection_ack");
    twice.init(None).await;
    assert_eq!(twice.closed().await.0, 4429);

    let mut early = app.socket().await;
    early.subscribe("1", "{ tags }", json!({})).await;
    assert_eq!(early.closed().await, (4401, "Unauthorized".to_owned()));
}

#[tokio::test]
async fn invalid_messages_and_missing_subprotocols_close_the_socket() {
    let app = TestApp::spawn().await;
    for bad in [
        "not json",
        r#"{"type":"nope"}"#,
        r#"{"type":"subscribe","id":"1"}"#,
        "[]",
    ] {
        let mut socket = app.acked_socket(None).await;
        socket.send_text(bad).await;
        assert_eq!(socket.closed().await.0, 4400, "{bad}");
    }
    let mut plain = app.socket_with_protocol(None).await;
    assert_eq!(plain.closed().await.0, 4406);
}

#[tokio::test]
async fn pings_get_pongs_and_the_server_pings() {
    let app = TestApp::spawn_with(|c| c.subscriptions.ping_every = Duration::from_secs(1)).await;
    let mut socket = app.acked_socket(None).await;
    socket
        .send(json!({ "type": "ping", "payload": { "n": 1 } }))
        .await;
    assert_eq!(
        socket.recv().await,
        json!({ "type": "pong", "payload": { "n": 1 } })
    );
    // The server's own ping, which `recv` skips.
    let frame = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            socket.send(json!({ "type": "pong" })).await;
            let message = socket.raw_next().await;
            if message["type"] == "ping" {
                return message;
            }
        }
    })
    .await
    .expect("the server pings");
    assert_eq!(frame["type"], "ping");
}

#[tokio::test]
async fn queries_and_mutations_run_over_the_socket_and_complete() {
    let app = TestApp::spawn().await;
    let session = app.signed_in_user("jake").await;
    let mut socket = app.acked_socket(Some(&session.token)).await;
    socket
        .subscribe("q", "{ viewer { user { username } } }", json!({}))
        .await;
    let next = socket.expect("q", "next").await;
    assert_eq!(event(&next)["viewer"]["user"]["username"], "jake");
    socket.expect("q", "complete").await;

    socket
        .subscribe(
            "m",
            "mutation($i: CreateArticleInput!) { createArticle(input: $i) { article { title } } }",
            json!({ "i": { "title": "Over a socket", "description": "d", "body": "b", "tagList": [] } }),
        )
        .await;
    let next = socket.expect("m", "next").await;
    assert_eq!(
        event(&next)["createArticle"]["article"]["title"],
        "Over a socket"
    );
    socket.expect("m", "complete").await;

    // A document that does not validate is an `error`, with no `complete`.
    socket.subscribe("bad", "{ nope }", json!({})).await;
    let error = socket.expect("bad", "error").await;
    assert_eq!(
        error["payload"][0]["extensions"]["code"],
        "GRAPHQL_VALIDATION_FAILED"
    );
    // The same limits as HTTP.
    let deep = format!(
        "{{ user(username: \"jake\") {{ {}username{} }} }}",
        "articles { edges { node { author { ".repeat(4),
        " } } } }".repeat(4)
    );
    socket.subscribe("deep", &deep, json!({})).await;
    let error = socket.expect("deep", "error").await;
    assert_eq!(
        error["payload"][0]["extensions"]["code"],
        "QUERY_TOO_COMPLEX"
    );
    // Neither refusal is followed by a `complete`: the next operation's
    // answer is the next message.
    socket.subscribe("after", "{ tags }", json!({})).await;
    socket.expect("after", "next").await;
    socket.expect("after", "complete").await;
}

#[tokio::test]
async fn bad_credentials_are_refused_at_init() {
    let app = TestApp::spawn().await;
    let mut socket = app.socket().await;
    socket.init(Some("not-a-jwt")).await;
    let (code, reason) = socket.closed().await;
    assert_eq!(code, 4403, "{reason}");
}

#[tokio::test]
async fn comments_reach_the_article_s_subscribers_and_only_them() {
    let app = TestApp::spawn().await;
    let jake = app.signed_in_user("jake").await;
    let anne = app.signed_in_user("anne").await;
    let watched = new_article(&app, &jake.token, "Watched").await;
    let other = new_article(&app, &jake.token, "Other").await;

    // Resuming from now, the subscriptions miss nothing written after this
    // however long the server takes to start them.
    let after = cursor_now(&app).await;
    let mut reader = app.acked_socket(None).await;
    reader
        .subscribe("c", COMMENTS, json!({ "a": watched, "after": after }))
        .await;
    let mut elsewhere = app.acked_socket(Some(&anne.token)).await;
    elsewhere
        .subscribe("c", COMMENTS, json!({ "a": other, "after": after }))
        .await;

    let id = comment(&app, &anne.token, &watched, "First!").await;
    let added = reader.expect("c", "next").await;
    let added = &event(&added)["commentEvents"];
    assert_eq!(added["change"], "ADDED");
    assert_eq!(added["commentId"], id.as_str());
    assert_eq!(added["comment"]["body"], "First!");
    assert_eq!(added["comment"]["author"]["username"], "anne");

    let deleted = app
        .query_as(
            &anne.token,
            "mutation($id: ID!) { deleteComment(input: { id: $id }) { clientMutationId } }",
            json!({ "id": id }),
        )
        .await;
    assert!(deleted.body["errors"].is_null(), "{:?}", deleted.body);
    let gone = reader.expect("c", "next").await;
    let gone = &event(&gone)["commentEvents"];
    assert_eq!(
        (gone["change"].as_str(), gone["comment"].is_null()),
        (Some("DELETED"), true)
    );

    // Another article's subscriber saw neither: the first event it gets is
    // its own article's comment, written after them.
    comment(&app, &anne.token, &other, "Elsewhere").await;
    let first = elsewhere.expect("c", "next").await;
    assert_eq!(
        event(&first)["commentEvents"]["comment"]["body"],
        "Elsewhere",
        "another article's subscriber saw only its own article"
    );

    // `complete` from the client stops the stream: the id is free again
    // (a running one would close the socket with 4409), and the comment
    // written meanwhile arrives once, from the new subscription's replay.
    let before_unseen = cursor_now(&app).await;
    reader.send(json!({ "id": "c", "type": "complete" })).await;
    handled(&mut reader).await;
    comment(&app, &anne.token, &watched, "Unseen").await;
    reader
        .subscribe(
            "c",
            COMMENTS,
            json!({ "a": watched, "after": before_unseen }),
        )
        .await;
    comment(&app, &anne.token, &watched, "Marker").await;
    let mut bodies = Vec::new();
    for _ in 0..2 {
        let message = reader.expect("c", "next").await;
        bodies.push(event(&message)["commentEvents"]["comment"]["body"].clone());
    }
    assert_eq!(bodies, vec![json!("Unseen"), json!("Marker")]);
}

#[tokio::test]
async fn a_resumed_subscription_replays_what_it_missed_then_goes_live_exactly_once() {
    let app = TestApp::spawn().await;
    let jake = app.signed_in_user("jake").await;
    let article = new_article(&app, &jake.token, "Busy").await;
    let after = cursor_now(&app).await;
    let mut socket = app.acked_socket(None).await;
    socket
        .subscribe("c", COMMENTS, json!({ "a": article, "after": after }))
        .await;
    comment(&app, &jake.token, &article, "one").await;
    let first = socket.expect("c", "next").await;
    let cursor = event(&first)["commentEvents"]["cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    drop(socket);

    // Missed while away, and one rolled back, which recorded nothing; the
    // favorite is the article's event, not one of its comments.
    comment(&app, &jake.token, &article, "two").await;
    app.favorite(&jake.token, &article).await;
    comment(&app, &jake.token, &article, "three").await;
    app.db
        .execute(
            "BEGIN; INSERT INTO comments (article_id, author_id, body)
             SELECT id, author_id, 'rolled back' FROM articles LIMIT 1; ROLLBACK;",
        )
        .await;

    let mut again = app.acked_socket(None).await;
    again
        .subscribe("c", COMMENTS, json!({ "a": article, "after": cursor }))
        .await;
    let mut bodies = Vec::new();
    for _ in 0..2 {
        let message = again.expect("c", "next").await;
        bodies.push(event(&message)["commentEvents"]["comment"]["body"].clone());
    }
    comment(&app, &jake.token, &article, "four").await;
    comment(&app, &jake.token, &article, "five").await;
    for _ in 0..2 {
        let live = again.expect("c", "next").await;
        bodies.push(event(&live)["commentEvents"]["comment"]["body"].clone());
    }
    // "four" once: a duplicate would come before "five".
    assert_eq!(
        bodies,
        vec![json!("two"), json!("three"), json!("four"), json!("five")]
    );
}

#[tokio::test]
async fn article_changes_and_the_feed_are_pushed() {
    let app = TestApp::spawn().await;
    let jake = app.signed_in_user("jake").await;
    let anne = app.signed_in_user("anne").await;
    let marker = app.signed_in_user("marker").await;
    let article = new_article(&app, &jake.token, "Liked").await;
    app.follow(&anne.token, "marker").await;

    let after = cursor_now(&app).await;
    let mut watcher = app.acked_socket(None).await;
    watcher
        .subscribe(
            "a",
            "subscription($a: ID!, $after: String) { articleEvents(articleId: $a, after: $after) { change article { favoritesCount } } }",
            json!({ "a": article, "after": after }),
        )
        .await;
    let feed = "subscription { feedEvents { cursor article { title author { username } } } }";
    let mut follower = app.acked_socket(Some(&anne.token)).await;
    follower
        .subscribe("f", FEED, json!({ "after": after }))
        .await;

    app.favorite(&anne.token, &article).await;
    let update = watcher.expect("a", "next").await;
    assert_eq!(
        event(&update)["articleEvents"],
        json!({ "change": "UPDATED", "article": { "favoritesCount": 1 } })
    );

    // Anne does not follow Jake yet: his next article is not in her feed.
    // Her feed passes events on in order, so once the marker author's
    // later article has arrived, Jake's has been dealt with.
    app.create_article(&jake.token, "Before the follow", &[])
        .await;
    app.create_article(&marker.token, "Marker", &[]).await;
    assert_eq!(feed_until(&mut follower, "Marker").await, vec!["Marker"]);
    app.follow(&anne.token, "jake").await;
    app.create_article(&jake.token, "After the follow", &[])
        .await;
    let published = follower.expect("f", "next").await;
    assert_eq!(
        event(&published)["feedEvents"]["article"],
        json!({ "title": "After the follow", "author": { "username": "jake" } })
    );

    // The feed is the viewer's own: an anonymous socket may not have one.
    let mut anonymous = app.acked_socket(None).await;
    anonymous.subscribe("f", feed, json!({})).await;
    let refused = anonymous.recv().await;
    let code = if refused["type"] == "error" {
        refused["payload"][0]["extensions"]["code"].clone()
    } else {
        refused["payload"]["errors"][0]["extensions"]["code"].clone()
    };
    assert_eq!(code, "UNAUTHENTICATED", "{refused}");
}

#[tokio::test]
async fn a_socket_ends_when_its_token_expires_or_its_session_signs_out() {
    let app = TestApp::spawn_with(|c| c.access_token_ttl = Duration::from_secs(2)).await;
    let jake = app.signed_in_user("jake").await;
    let mut expiring = app.acked_socket(Some(&jake.token)).await;
    let (code, reason) = expiring.closed().await;
    assert_eq!(code, 4403, "{reason}");
    assert!(reason.contains("expired"), "{reason}");

    let app = TestApp::spawn().await;
    let anne = app.signed_in_user("anne").await;
    let mut socket = app.acked_socket(Some(&anne.token)).await;
    let out = app
        .query_as(
            &anne.token,
            "mutation { signOut(input: {}) { errors { code } } }",
            json!({}),
        )
        .await;
    assert!(out.body["errors"].is_null(), "{:?}", out.body);
    let (code, reason) = socket.closed().await;
    assert_eq!(code, 4403, "{reason}");
}

/// An account soft-deleted by whoever writes to the database (here an
/// operator's SQL) is signed out everywhere: each of its sockets closes
/// with 4403 at once, with nothing sent after the deletion.
#[tokio::test]
async fn a_soft_deleted_account_s_sockets_close_at_once() {
    let app = TestApp::spawn().await;
    let jake = app.signed_in_user("jake").await;
    let laptop = app.another_session("jake@example.com").await;
    let anne = app.signed_in_user("anne").await;
    let article = new_article(&app, &anne.token, "Watched").await;
    let after = cursor_now(&app).await;
    let mut sockets = Vec::new();
    for token in [&jake.token, &laptop] {
        let mut socket = app.acked_socket(Some(token)).await;
        socket
            .subscribe("c", COMMENTS, json!({ "a": article, "after": after }))
            .await;
        sockets.push(socket);
    }
    comment(&app, &anne.token, &article, "Seen").await;
    for socket in &mut sockets {
        let seen = socket.expect("c", "next").await;
        assert_eq!(event(&seen)["commentEvents"]["comment"]["body"], "Seen");
    }

    app.db
        .execute("UPDATE users SET deleted_at = now() WHERE username = 'jake'")
        .await;
    for socket in &mut sockets {
        match socket.next_or_close().await {
            Err((code, reason)) => assert_eq!(code, 4403, "{reason}"),
            Ok(message) => panic!("a deleted account's socket was sent {message}"),
        }
    }
    let live = app
        .db
        .count(
            "SELECT count(*) FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE u.username = 'jake' AND s.revoked_at IS NULL",
        )
        .await;
    assert_eq!(live, 0, "every session of the deleted account is revoked");
    let mut again = app.socket().await;
    again.init(Some(&jake.token)).await;
    assert_eq!(again.closed().await.0, 4403);
}

/// A sign-out that commits after a socket's session was checked, but
/// before the server had the check's answer, still closes the socket: the
/// socket listens for sign-outs before it checks. The relay holds back the
/// check's answer while the sign-out commits and the instance's event bus
/// announces it.
#[tokio::test]
async fn a_sign_out_between_the_session_check_and_the_ack_closes_the_socket() {
    let db = TestDatabase::create().await;
    let relay = Relay::start(&db.url).await;
    let through_relay = relay.url.clone();
    let app = TestApp::spawn_on(db, |c| c.database_url = Some(through_relay)).await;
    let jake = app.signed_in_user("jake").await;
    let mut announced = app.state.events.revocations();
    let mut socket = app.socket().await;

    relay.hold_next_true();
    socket.init(Some(&jake.token)).await;
    tokio::time::timeout(Duration::from_secs(10), relay.held())
        .await
        .expect("the session check answers");
    app.db
        .execute(
            "UPDATE sessions SET revoked_at = now()
             WHERE user_id = (SELECT id FROM users WHERE username = 'jake')",
        )
        .await;
    tokio::time::timeout(Duration::from_secs(10), announced.recv())
        .await
        .expect("the event bus announces the sign-out")
        .unwrap();
    relay.release();

    // The check said the session lived, so the socket is acked; then the
    // sign-out it heard while checking closes it.
    assert_eq!(socket.recv().await["type"], "connection_ack");
    match socket.next_or_close().await {
        Err((code, reason)) => assert_eq!(code, 4403, "{reason}"),
        Ok(message) => panic!("a signed-out socket was sent {message}"),
    }
}

#[tokio::test]
async fn subscriptions_per_socket_and_duplicate_ids_are_bounded() {
    let app = TestApp::spawn_with(|c| c.subscriptions.max_per_socket = 1).await;
    let jake = app.signed_in_user("jake").await;
    let article = new_article(&app, &jake.token, "Bounded").await;
    let mut socket = app.acked_socket(None).await;
    socket
        .subscribe("1", COMMENTS, json!({ "a": article }))
        .await;
    socket
        .subscribe("2", COMMENTS, json!({ "a": article }))
        .await;
    let refused = socket.expect("2", "error").await;
    assert_eq!(
        refused["payload"][0]["extensions"]["rule"],
        "subscriptionsPerSocket"
    );
    socket
        .subscribe("1", COMMENTS, json!({ "a": article }))
        .await;
    assert_eq!(
        socket.closed().await,
        (4409, "Subscriber for 1 already exists".to_owned())
    );
}

#[tokio::test]
async fn shutting_down_closes_sockets_with_going_away() {
    let mut app = TestApp::spawn().await;
    let mut socket = app.acked_socket(None).await;
    app.trigger_shutdown();
    assert_eq!(socket.closed().await.0, 1001);
}

/// Two instances on one database; the listening connections are killed
/// and an instance is restarted while comments stream in. A client that
/// reconnects with its last cursor sees every comment once, in order.
#[tokio::test]
async fn across_instances_lost_listeners_and_restarts_every_event_arrives_once_in_order() {
    let writer = TestApp::spawn().await;
    let mut reader = TestApp::spawn_on(writer.db.share(), |_| {}).await;
    let jake = writer.signed_in_user("jake").await;
    let article = new_article(&writer, &jake.token, "Streamed").await;
    let total = 60;
    let after = cursor_now(&writer).await;
    let mut socket = reader.acked_socket(None).await;
    socket
        .subscribe("c", COMMENTS, json!({ "a": article, "after": after }))
        .await;

    let writes = {
        let (address, token, article) =
            (writer.address.clone(), jake.token.clone(), article.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            for i in 0..total {
                let response = client
                    .post(format!("{address}/graphql"))
                    .header("Authorization", format!("Token {token}"))
                    .json(&json!({
                        "query": "mutation($i: AddCommentInput!) { addComment(input: $i) { errors { code } } }",
                        "variables": { "i": { "articleId": article, "body": format!("c{i}") } }
                    }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        })
    };

    let mut seen: Vec<String> = Vec::new();
    let mut cursor = None;
    let mut killed = false;
    let mut restarted = None;
    while seen.len() < total {
        if !killed && seen.len() >= 15 {
            eprintln!("fault test: listeners killed after {} events", seen.len());
            writer
                .db
                .execute(&format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                     WHERE application_name = '{}'",
                    conduit::events::LISTENER_NAME
                ))
                .await;
            killed = true;
        }
        if restarted.is_none() && seen.len() >= 30 {
            // The reader's instance goes away (its socket closes with 1001
            // after what it already sent); a new one takes its place and
            // the client resumes from its cursor.
            eprintln!("fault test: instance restarted after {} events", seen.len());
            reader.trigger_shutdown();
            loop {
                match socket.next_or_close().await {
                    Ok(message) => record(&message, &mut seen, &mut cursor),
                    Err((code, reason)) => {
                        assert_eq!(code, 1001, "{reason}");
                        break;
                    }
                }
            }
            reader.shut_down().await;
            let replacement = TestApp::spawn_on(writer.db.share(), |_| {}).await;
            socket = replacement.acked_socket(None).await;
            socket
                .subscribe("c", COMMENTS, json!({ "a": article, "after": cursor }))
                .await;
            restarted = Some(replacement);
            continue;
        }
        match socket.next_or_close().await {
            Ok(message) => record(&message, &mut seen, &mut cursor),
            Err(close) => panic!("closed: {close:?}"),
        }
    }
    writes.await.unwrap();
    let expected: Vec<String> = (0..total).map(|i| format!("c{i}")).collect();
    assert_eq!(seen, expected);
    // No duplicate: the next event is one written after all of them.
    comment(&writer, &jake.token, &article, "marker").await;
    let next = socket.expect("c", "next").await;
    assert_eq!(event(&next)["commentEvents"]["comment"]["body"], "marker");
    eprintln!(
        "fault test: {total} comments written, {} received once each, in order",
        seen.len()
    );
}

/// Notes a comment event: its body, and its cursor to resume from.
fn record(message: &Value, seen: &mut Vec<String>, cursor: &mut Option<String>) {
    assert_eq!(message["type"], "next", "{message}");
    let event = &event(message)["commentEvents"];
    seen.push(event["comment"]["body"].as_str().unwrap().to_owned());
    *cursor = Some(event["cursor"].as_str().unwrap().to_owned());
}

#[tokio::test]
async fn sockets_per_client_per_instance_and_message_size_are_bounded() {
    let app = TestApp::spawn_with(|c| {
        c.subscriptions.max_sockets_per_client = 1;
        c.subscriptions.max_message_bytes = 4096;
    })
    .await;
    // A signed-in socket counts against its user, no longer its address:
    // the address has room for the next, whose init finds Jake's share
    // taken.
    let jake = app.signed_in_user("jake").await;
    let _first = app.acked_socket(Some(&jake.token)).await;
    let mut second = app.socket().await;
    second.init(Some(&jake.token)).await;
    assert_eq!(second.closed().await.0, 4429);

    let anne = app.signed_in_user("anne").await;
    let mut big = app.acked_socket(Some(&anne.token)).await;
    big.subscribe("1", &format!("{{ tags {} }}", " ".repeat(8192)), json!({}))
        .await;
    assert_eq!(big.closed().await.0, 1009);

    // An anonymous socket stays the address's.
    let _anonymous = app.acked_socket(None).await;
    assert_eq!(app.try_socket().await.err(), Some(429));

    let full = TestApp::spawn_with(|c| c.subscriptions.max_sockets = 1).await;
    let _only = full.acked_socket(None).await;
    let url = full.url("/graphql").replacen("http://", "ws://", 1);
    let refused = tokio_tungstenite::connect_async(url).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503)
        }
        other => panic!("a socket past MAX_WEBSOCKETS was not refused: {other:?}"),
    }
}

#[tokio::test]
async fn pages_on_origins_cors_refuses_may_not_open_sockets() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let app = TestApp::spawn_with(|c| {
        c.cors_allowed_origins = Some(conduit::config::CorsOrigins::List(vec![
            "https://conduit.example.com".into(),
        ]))
    })
    .await;
    let url = app.url("/graphql").replacen("http://", "ws://", 1);
    let open = |origin: &'static str| {
        let mut request = url.clone().into_client_request().unwrap();
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
        request.headers_mut().insert(
            "sec-websocket-protocol",
            "graphql-transport-ws".parse().unwrap(),
        );
        tokio_tungstenite::connect_async(request)
    };
    match open("https://evil.example").await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        other => panic!("a socket from another origin was not refused: {other:?}"),
    }
    assert!(open("https://conduit.example.com").await.is_ok());
    let same: &'static str = Box::leak(app.address.clone().into_boxed_str());
    assert!(open(same).await.is_ok(), "same origin");
}

#[tokio::test]
async fn each_subscribe_is_charged_to_the_rate_limit_and_readyz_turns_first_on_shutdown() {
    use base64::Engine as _;
    let mut app = TestApp::spawn_with(|c| {
        c.rate_limits.points = 20;
        c.shutdown_drain = Some(Duration::from_secs(3));
    })
    .await;
    // Written as an operator would, so no request spends the budget first.
    let id = uuid::Uuid::new_v4();
    app.db
        .execute(&format!(
            "INSERT INTO users (id, username, email, password_hash) VALUES ('{id}', 'jake', 'jake@example.com', 'x');
             INSERT INTO articles (id, author_id, slug, title, description, body)
             VALUES ('{id}', '{id}', 'charged', 'Charged', 'd', 'b');"
        ))
        .await;
    let article = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("Article:{id}"));
    let mut socket = app.acked_socket(None).await;
    // Costs 14 of the anonymous address's 20: the first fits, the second
    // does not.
    let costly = "subscription($a: ID!) { commentEvents(articleId: $a) {
        cursor change commentId
        comment { id body createdAt updatedAt author { id username bio image } }
    } }";
    socket.subscribe("1", costly, json!({ "a": article })).await;
    socket.subscribe("2", costly, json!({ "a": article })).await;
    let refused = socket.recv().await;
    let code = if refused["type"] == "error" {
        refused["payload"][0]["extensions"]["code"].clone()
    } else {
        refused["payload"]["errors"][0]["extensions"]["code"].clone()
    };
    assert_eq!(
        (refused["id"].as_str(), code),
        (Some("2"), json!("RATE_LIMITED")),
        "{refused}"
    );

    app.trigger_shutdown();
    // Still serving while it drains, but no longer ready.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
        if ready.status() == 503 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a draining instance still answered /readyz with {}",
            ready.status()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Sockets stay open meanwhile: this one still answers.
    handled(&mut socket).await;
    assert_eq!(socket.closed().await.0, 1001);
}

#[tokio::test]
async fn a_client_that_reads_too_slowly_is_closed_with_1013_not_buffered_forever() {
    let app = TestApp::spawn_with(|c| c.subscriptions.send_queue = 4).await;
    let jake = app.signed_in_user("jake").await;
    let article = new_article(&app, &jake.token, "Firehose").await;
    let after = cursor_now(&app).await;
    let mut socket = app.acked_socket(None).await;
    socket
        .subscribe("c", COMMENTS, json!({ "a": article, "after": after }))
        .await;
    // Live once the first comment arrives (the firehose must not be
    // replayed: that many missed events would be refused).
    comment(&app, &jake.token, &article, "first").await;
    socket.expect("c", "next").await;
    // The client reads nothing while about 15 MB of events come its way:
    // more than the kernel's socket buffers hold, so the server's queue
    // fills.
    let body = "x".repeat(10_000);
    let total = 1500;
    for _ in 0..total {
        comment(&app, &jake.token, &article, &body).await;
    }
    let mut received = 0;
    let close = loop {
        match socket.next_or_close().await {
            Ok(message) => {
                assert_eq!(message["type"], "next", "{message}");
                received += 1;
            }
            Err(close) => break close,
        }
    };
    assert_eq!(close.0, 1013, "{close:?}");
    assert!(
        received < total,
        "{received} of {total} arrived before the close"
    );
    eprintln!("slow reader: {received} of {total} events, then {close:?}");
}

const FEED: &str = "subscription($after: String) {
    feedEvents(after: $after) { cursor article { title author { username } } }
}";

/// `n` readers, signed in, each with a socket subscribed to its feed from
/// `after`; the odd ones follow `author`, all follow `marker`. Written as
/// an operator would (signing up costs a password hash each), with tokens
/// issued by the server's keys.
async fn feed_readers(app: &TestApp, prefix: &str, n: usize, after: &str) -> Vec<(Socket, bool)> {
    let mut readers = Vec::new();
    for i in 0..n {
        let (user, session) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        let follows_author = i % 2 == 1;
        let followed = if follows_author {
            "'author', 'marker'"
        } else {
            "'marker'"
        };
        app.db
            .execute(&format!(
                "INSERT INTO users (id, username, email, password_hash)
                 VALUES ('{user}', '{prefix}{i}', '{prefix}{i}@example.com', 'x');
                 INSERT INTO sessions (id, user_id, expires_at)
                 VALUES ('{session}', '{user}', now() + interval '1 day');
                 INSERT INTO follows (follower_id, followee_id)
                 SELECT '{user}', id FROM users WHERE username IN ({followed});"
            ))
            .await;
        let (token, _) = app
            .state
            .jwt
            .issue(user, session, chrono::Utc::now())
            .unwrap();
        let mut socket = app.acked_socket(Some(&token)).await;
        socket.subscribe("f", FEED, json!({ "after": after })).await;
        readers.push((socket, follows_author));
    }
    readers
}

/// The titles `socket`'s feed receives up to and including `last`.
async fn feed_until(socket: &mut Socket, last: &str) -> Vec<String> {
    let mut titles = Vec::new();
    loop {
        let message = socket.expect("f", "next").await;
        let title = event(&message)["feedEvents"]["article"]["title"]
            .as_str()
            .unwrap()
            .to_owned();
        titles.push(title.clone());
        if title == last {
            return titles;
        }
    }
}

/// Whether a publication belongs in a feed is looked up once for every
/// feed subscription of the instance: a publication costs the same
/// statements for 2 subscribers as for 20, and reaches exactly the
/// followers of its author.
#[tokio::test]
async fn a_publication_costs_the_same_statements_for_2_and_20_feed_subscriptions() {
    let app = TestApp::spawn().await;
    let author = app.signed_in_user("author").await;
    let marker = app.signed_in_user("marker").await;
    let mut costs = Vec::new();
    for (round, n) in [2, 20].into_iter().enumerate() {
        let after = cursor_now(&app).await;
        let mut readers = feed_readers(&app, &format!("r{round}_"), n, &after).await;
        // Every feed has replayed what it missed, and is live, once it has
        // received this.
        let ready = format!("Ready {round}");
        app.create_article(&marker.token, &ready, &[]).await;
        for (socket, _) in &mut readers {
            feed_until(socket, &ready).await;
        }

        let before = app.statements();
        let published = format!("Published {round}");
        let after = format!("After {round}");
        app.create_article(&author.token, &published, &[]).await;
        // Published by an author everyone follows: once every feed has it,
        // every feed has dealt with the one before.
        app.create_article(&marker.token, &after, &[]).await;
        for (socket, follows_author) in &mut readers {
            let titles = feed_until(socket, &after).await;
            let expected = if *follows_author {
                vec![published.clone(), after.clone()]
            } else {
                vec![after.clone()]
            };
            assert_eq!(titles, expected, "follows the author: {follows_author}");
        }
        costs.push(app.statements() - before);
    }
    println!("two publications with 2 and 20 feed subscriptions: {costs:?} statements");
    assert_eq!(costs[0], costs[1], "{costs:?}");
}

/// A socket counts against its address from the upgrade: one address
/// cannot hold more than MAX_WEBSOCKETS_PER_CLIENT sockets that never send
/// `connection_init`; the next upgrade is refused with 429 until one
/// closes.
#[tokio::test]
async fn sockets_that_never_initialise_count_against_their_address() {
    let app = TestApp::spawn_with(|c| c.subscriptions.max_sockets_per_client = 2).await;
    let mut first = app.socket().await;
    let _second = app.socket().await;
    assert_eq!(app.try_socket().await.err(), Some(429));

    first.close().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let _third = loop {
        match app.try_socket().await {
            Ok(socket) => break socket,
            Err(429) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(status) => panic!("a closed socket's place was not given back: {status}"),
        }
    };
}

const ARTICLE_EVENTS: &str = "subscription($a: ID!, $after: String) {
    articleEvents(articleId: $a, after: $after) { cursor change article { title } }
}";

/// Edits the body of `article` (an `UPDATED` event).
async fn edit(app: &TestApp, token: &str, article: &str, body: &str) {
    let response = app
        .query_as(
            token,
            "mutation($i: UpdateArticleInput!) { updateArticle(input: $i) { errors { code } } }",
            json!({ "i": { "id": article, "body": body } }),
        )
        .await;
    assert!(response.body["errors"].is_null(), "{:?}", response.body);
    assert_eq!(
        response.body["data"]["updateArticle"]["errors"],
        json!([]),
        "{:?}",
        response.body
    );
}

/// The event id a cursor names.
fn event_id(cursor: &Value) -> i64 {
    let raw = URL_SAFE_NO_PAD.decode(cursor.as_str().unwrap()).unwrap();
    String::from_utf8(raw).unwrap()["event:".len()..]
        .parse()
        .unwrap()
}

/// A client of `articleEvents` that loses its socket and resumes from its
/// last cursor gets each change made while it was away once, then the live
/// ones: the article's deletion, made last, is the very next event after
/// them.
#[tokio::test]
async fn article_events_resume_from_a_cursor_with_nothing_missed_or_repeated() {
    let app = TestApp::spawn().await;
    let jake = app.signed_in_user("jake").await;
    let anne = app.signed_in_user("anne").await;
    let article = new_article(&app, &jake.token, "Edited").await;
    let after = cursor_now(&app).await;
    let mut socket = app.acked_socket(None).await;
    socket
        .subscribe("a", ARTICLE_EVENTS, json!({ "a": article, "after": after }))
        .await;
    edit(&app, &jake.token, &article, "one").await;
    let first = socket.expect("a", "next").await;
    let mut cursors = vec![event(&first)["articleEvents"]["cursor"].clone()];
    drop(socket);

    // While away: an edit, a favorite, another edit.
    edit(&app, &jake.token, &article, "two").await;
    app.favorite(&anne.token, &article).await;
    edit(&app, &jake.token, &article, "three").await;

    let mut again = app.acked_socket(None).await;
    again
        .subscribe(
            "a",
            ARTICLE_EVENTS,
            json!({ "a": article, "after": cursors[0] }),
        )
        .await;
    for _ in 0..3 {
        let replayed = again.expect("a", "next").await;
        assert_eq!(event(&replayed)["articleEvents"]["change"], "UPDATED");
        cursors.push(event(&replayed)["articleEvents"]["cursor"].clone());
    }
    edit(&app, &jake.token, &article, "four").await;
    let live = again.expect("a", "next").await;
    assert_eq!(event(&live)["articleEvents"]["change"], "UPDATED");
    cursors.push(event(&live)["articleEvents"]["cursor"].clone());

    let deleted = app
        .query_as(
            &jake.token,
            "mutation($id: ID!) { deleteArticle(input: { id: $id }) { clientMutationId } }",
            json!({ "id": article }),
        )
        .await;
    assert!(deleted.body["errors"].is_null(), "{:?}", deleted.body);
    let gone = again.expect("a", "next").await;
    assert_eq!(
        (
            event(&gone)["articleEvents"]["change"].as_str(),
            event(&gone)["articleEvents"]["article"].is_null()
        ),
        (Some("DELETED"), true),
        "{gone}"
    );
    let ids: Vec<i64> = cursors.iter().map(event_id).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "in order, once: {ids:?}"
    );
    let recorded = app
        .db
        .count(&format!(
            "SELECT count(*) FROM events WHERE id > {} AND id < {}
             AND kind IN ('article_updated', 'article_favorites_changed')
             AND article_id = (SELECT id FROM articles WHERE title = 'Edited')",
            ids[0],
            event_id(&event(&gone)["articleEvents"]["cursor"])
        ))
        .await;
    assert_eq!(recorded, 4, "every change after the first was delivered");
}

/// A feed that loses its socket and resumes from its last cursor gets the
/// articles published meanwhile by the authors it follows, once, in order,
/// then the live ones; an author it does not follow stays out.
#[tokio::test]
async fn feed_events_resume_from_a_cursor_with_nothing_missed_or_repeated() {
    let app = TestApp::spawn().await;
    let jake = app.signed_in_user("jake").await;
    let bob = app.signed_in_user("bob").await;
    let anne = app.signed_in_user("anne").await;
    app.follow(&anne.token, "jake").await;
    let after = cursor_now(&app).await;
    let mut socket = app.acked_socket(Some(&anne.token)).await;
    socket.subscribe("f", FEED, json!({ "after": after })).await;
    app.create_article(&jake.token, "one", &[]).await;
    let first = socket.expect("f", "next").await;
    assert_eq!(event(&first)["feedEvents"]["article"]["title"], "one");
    let cursor = event(&first)["feedEvents"]["cursor"].clone();
    drop(socket);

    app.create_article(&jake.token, "two", &[]).await;
    app.create_article(&bob.token, "not followed", &[]).await;
    app.create_article(&jake.token, "three", &[]).await;

    let mut again = app.acked_socket(Some(&anne.token)).await;
    again.subscribe("f", FEED, json!({ "after": cursor })).await;
    assert_eq!(feed_until(&mut again, "three").await, vec!["two", "three"]);
    app.create_article(&jake.token, "four", &[]).await;
    app.create_article(&bob.token, "still not followed", &[])
        .await;
    app.create_article(&jake.token, "five", &[]).await;
    // "four" once: a duplicate would come before "five".
    assert_eq!(feed_until(&mut again, "five").await, vec!["four", "five"]);
}

/// A client more than 500 events behind is told to reload rather than fed
/// them (`BAD_USER_INPUT`); one 499 behind gets all of them, then the live
/// ones.
#[tokio::test]
async fn more_than_500_missed_events_are_refused_and_499_are_replayed() {
    // A replay is queued for the socket at once: room for all of it, so
    // that a client reading as fast as it can is not taken for a slow one.
    let app = TestApp::spawn_with(|c| c.subscriptions.send_queue = 1024).await;
    let jake = app.signed_in_user("jake").await;
    let article = new_article(&app, &jake.token, "Busy").await;
    let after = cursor_now(&app).await;
    // Written as an operator would: one statement, an event per comment.
    let write = |n: usize| {
        format!(
            "INSERT INTO comments (article_id, author_id, body)
             SELECT a.id, a.author_id, 'missed ' || n
             FROM articles a, generate_series(1, {n}) n WHERE a.title = 'Busy'"
        )
    };
    app.db.execute(&write(499)).await;
    let mut caught_up = app.acked_socket(None).await;
    caught_up
        .subscribe("c", COMMENTS, json!({ "a": article, "after": after }))
        .await;
    for _ in 0..499 {
        let message = caught_up.expect("c", "next").await;
        assert_eq!(event(&message)["commentEvents"]["change"], "ADDED");
    }
    comment(&app, &jake.token, &article, "live").await;
    let live = caught_up.expect("c", "next").await;
    assert_eq!(event(&live)["commentEvents"]["comment"]["body"], "live");

    // With "live", 500 events came after `after`; one more makes 501.
    app.db.execute(&write(1)).await;
    let mut behind = app.acked_socket(None).await;
    behind
        .subscribe("c", COMMENTS, json!({ "a": article, "after": after }))
        .await;
    let refused = behind.recv().await;
    let code = if refused["type"] == "error" {
        refused["payload"][0]["extensions"]["code"].clone()
    } else {
        refused["payload"]["errors"][0]["extensions"]["code"].clone()
    };
    assert_eq!(
        (refused["id"].as_str(), code),
        (Some("c"), json!("BAD_USER_INPUT")),
        "{refused}"
    );
    if refused["type"] == "next" {
        // Refused as the stream started: it ends there.
        behind.expect("c", "complete").await;
    }
    // The socket stays open for the reload's subscription, from now.
    let now = cursor_now(&app).await;
    behind
        .subscribe("r", COMMENTS, json!({ "a": article, "after": now }))
        .await;
    comment(&app, &jake.token, &article, "after the reload").await;
    let fresh = behind.expect("r", "next").await;
    assert_eq!(
        event(&fresh)["commentEvents"]["comment"]["body"],
        "after the reload"
    );
}
