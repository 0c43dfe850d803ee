//! The response cache: a public page changes on the next request after any
//! write that changes it, on the instance that wrote and, through the
//! event bus, on another within a second; no viewer ever gets another's
//! data; and a cached answer is the uncached one, byte for byte.

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use conduit::config::{Config, ResponseCacheStore};

use crate::helpers::{TestApp, TestDatabase};

/// A page every kind of write changes: the home page, an article with its
/// comments and its author's followers, a user lookup that finds nobody
/// at first, the tags and a favorites list.
const PAGE: &str = "query Page($slug: String!) {
    articles(first: 10) { edges { node { slug title favoritesCount tagList author { username bio } } } }
    article(slug: $slug) { title comments { body } author { username followers { totalCount } } }
    newbie: user(username: \"newbie\") { username }
    tags
    favorites: articles(first: 10, favoritedBy: \"ann\") { edges { node { slug } } }
}";

/// Two instances with the cache on one database (in their memory, or in
/// one Redis namespace of the test's own), and a third with it off, whose
/// answers are the truth.
async fn instances(store: ResponseCacheStore) -> (TestApp, TestApp, TestApp) {
    instances_with(store, |_| {}).await
}

/// [`instances`], each configured further by `configure`.
pub async fn instances_with(
    store: ResponseCacheStore,
    configure: impl Fn(&mut Config),
) -> (TestApp, TestApp, TestApp) {
    let prefix = format!("conduit:test:{}:", uuid::Uuid::new_v4());
    let cached = |c: &mut Config| {
        configure(c);
        c.jobs.workers = 0;
        c.response_cache.store = store;
        c.response_cache.redis_prefix = prefix.clone();
        c.redis.url =
            std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    };
    let a = TestApp::spawn_on(TestDatabase::create().await, cached).await;
    let b = TestApp::spawn_on(a.db.share(), cached).await;
    let truth = TestApp::spawn_on(a.db.share(), |c| {
        configure(c);
        c.jobs.workers = 0;
        c.response_cache.store = ResponseCacheStore::Off;
    })
    .await;
    (a, b, truth)
}

/// The page as `app` answers it, and the statements that cost.
/// How long a test waits for another instance's bus to hear a write
/// before it fails: a bound for a broken bus, not the delay promised (the
/// benchmark measures that).
const CONVERGED_WITHIN: Duration = Duration::from_secs(30);

async fn page(app: &TestApp, slug: &str) -> (Value, u64) {
    let before = app.statements();
    let response = app.query(PAGE, json!({ "slug": slug })).await;
    assert!(response.body["errors"].is_null(), "{}", response.body);
    (response.body, app.statements() - before)
}

/// Waits until every instance's bus has applied every event recorded so
/// far (it runs a notification and a read behind a write): an
/// invalidation that lands while a page is read refuses to keep that page.
async fn heard_everything(apps: &[&TestApp]) {
    let last = apps[0]
        .db
        .count("SELECT coalesce(max(id), 0) FROM events")
        .await;
    let deadline = Instant::now() + CONVERGED_WITHIN;
    while apps
        .iter()
        .any(|app| app.response_cache.applied_id() < last)
    {
        assert!(
            Instant::now() < deadline,
            "a bus is {CONVERGED_WITHIN:?} behind the writes"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Makes `app` keep the page, proven by a second read that costs no
/// statement; returns it.
async fn warm(app: &TestApp, slug: &str) -> Value {
    let (first, _) = page(app, slug).await;
    let (again, statements) = page(app, slug).await;
    assert_eq!(again, first);
    assert_eq!(statements, 0, "the second read is answered from the cache");
    first
}

async fn mutate(app: &TestApp, token: &str, query: &str, input: Value) -> Value {
    let response = app.query_as(token, query, json!({ "input": input })).await;
    assert!(response.body["errors"].is_null(), "{}", response.body);
    response.body["data"].clone()
}

#[tokio::test]
async fn every_kind_of_write_changes_the_cached_page_here_and_on_another_instance() {
    every_kind_of_write_changes_the_page(ResponseCacheStore::Memory).await;
}

#[tokio::test]
async fn with_redis_every_kind_of_write_changes_the_shared_page_on_every_instance() {
    every_kind_of_write_changes_the_page(ResponseCacheStore::Redis).await;
}

async fn every_kind_of_write_changes_the_page(store: ResponseCacheStore) {
    let (a, b, truth) = instances(store).await;
    if store == ResponseCacheStore::Redis {
        // One instance's answer is the other's: B's first read is a hit.
        let jake = a.signed_in_user("sharer").await.token;
        let slug = a.create_article(&jake, "Shared", &["redis"]).await["slug"]
            .as_str()
            .unwrap()
            .to_owned();
        heard_everything(&[&a, &b]).await;
        let on_a = warm(&a, &slug).await;
        let (on_b, statements) = page(&b, &slug).await;
        assert_eq!(on_b, on_a);
        assert_eq!(statements, 0, "instance B reads what A kept");
    }
    let jake = a.signed_in_user("jake").await.token;
    let ann = a.signed_in_user("ann").await.token;
    let stable = a.create_article(&jake, "Stable", &["rust"]).await;
    let moving = a.create_article(&jake, "Moving", &["go"]).await;
    let slug = stable["slug"].as_str().unwrap().to_owned();
    let (stable_id, moving_id) = (stable["id"].clone(), moving["id"].clone());
    let jake_id = a.user_id("jake").await;

    let comment_id = std::sync::Arc::new(std::sync::Mutex::new(Value::Null));
    type Write<'a> = (&'a str, &'a str, &'a str, Value);
    let writes: Vec<Write> = vec![
        (
            "createArticle",
            "jake",
            "mutation($input: CreateArticleInput!) { createArticle(input: $input) { errors { code } } }",
            json!({ "title": "Fresh", "description": "d", "body": "b", "tagList": ["new"] }),
        ),
        (
            "updateArticle",
            "jake",
            "mutation($input: UpdateArticleInput!) { updateArticle(input: $input) { errors { code } } }",
            json!({ "id": moving_id, "title": "Moved", "tagList": ["go", "moved"] }),
        ),
        (
            "favoriteArticle",
            "ann",
            "mutation($input: FavoriteArticleInput!) { favoriteArticle(input: $input) { clientMutationId } }",
            json!({ "id": stable_id }),
        ),
        (
            "unfavoriteArticle",
            "ann",
            "mutation($input: UnfavoriteArticleInput!) { unfavoriteArticle(input: $input) { clientMutationId } }",
            json!({ "id": stable_id }),
        ),
        (
            "addComment",
            "ann",
            "mutation($input: AddCommentInput!) { addComment(input: $input) { comment { id } errors { code } } }",
            json!({ "articleId": stable_id, "body": "First!" }),
        ),
        (
            "deleteComment",
            "ann",
            "mutation($input: DeleteCommentInput!) { deleteComment(input: $input) { clientMutationId } }",
            Value::Null,
        ),
        (
            "followUser",
            "ann",
            "mutation($input: FollowUserInput!) { followUser(input: $input) { errors { code } } }",
            json!({ "id": jake_id }),
        ),
        (
            "unfollowUser",
            "ann",
            "mutation($input: UnfollowUserInput!) { unfollowUser(input: $input) { clientMutationId } }",
            json!({ "id": jake_id }),
        ),
        (
            "updateUser",
            "jake",
            "mutation($input: UpdateUserInput!) { updateUser(input: $input) { errors { code } } }",
            json!({ "bio": "Writes about Rust." }),
        ),
        (
            "createUser",
            "",
            "mutation($input: CreateUserInput!) { createUser(input: $input) { errors { code } } }",
            json!({ "username": "newbie", "email": "newbie@example.com", "password": crate::helpers::PASSWORD }),
        ),
        (
            "deleteArticle",
            "jake",
            "mutation($input: DeleteArticleInput!) { deleteArticle(input: $input) { clientMutationId } }",
            json!({ "id": moving_id }),
        ),
    ];

    let mut seen_by_b = Vec::new();
    for (name, who, document, input) in writes {
        heard_everything(&[&a, &b]).await;
        let before_a = warm(&a, &slug).await;
        let before_b = warm(&b, &slug).await;
        assert_eq!(before_a, before_b);

        let input = if name == "deleteComment" {
            json!({ "id": comment_id.lock().unwrap().clone() })
        } else {
            input
        };
        let data = match who {
            "jake" => mutate(&a, &jake, document, input).await,
            "ann" => mutate(&a, &ann, document, input).await,
            _ => {
                let response = a.query(document, json!({ "input": input })).await;
                response.body["data"].clone()
            }
        };
        if name == "addComment" {
            *comment_id.lock().unwrap() = data["addComment"]["comment"]["id"].clone();
        }
        let (expected, _) = page(&truth, &slug).await;
        assert_ne!(expected, before_a, "{name} changes the page");

        // The instance that wrote: the very next request.
        let (after_a, _) = page(&a, &slug).await;
        assert_eq!(after_a, expected, "{name}: the next request here");

        // Another instance: once its bus has heard the write. (How soon
        // is measured by scripts/bench/bench.py's `timeouts` figures, not
        // here.)
        let started = Instant::now();
        loop {
            let (after_b, _) = page(&b, &slug).await;
            if after_b == expected {
                break;
            }
            assert!(
                started.elapsed() < CONVERGED_WITHIN,
                "{name}: instance B still answers {after_b} after {CONVERGED_WITHIN:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        seen_by_b.push((name, started.elapsed()));
    }
    println!("another instance saw each write after: {seen_by_b:?}");
}

/// Documents a client might send, public and viewer-specific alike.
const DOCUMENTS: &[&str] = &[
    "{ articles(first: 5) { edges { node { slug favoritesCount viewerHasFavorited author { username followedByViewer } } } } }",
    "{ articles(first: 5) { edges { node { slug favoritesCount author { username } } } } }",
    "query($u: String!) { user(username: $u) { username email bio followedByViewer followers { totalCount } } }",
    "query($u: String!) { user(username: $u) { username bio followers { totalCount } } }",
    "{ viewer { user { username email } } }",
    "{ viewer { feed(first: 5) { edges { node { slug viewerHasFavorited } } } } }",
    "{ tags articles(first: 3) { nodes { slug author { username email } } } }",
    "query($u: String!) { user(username: $u) { favoriteArticles(first: 5) { nodes { slug viewerHasFavorited } } } }",
];

#[tokio::test]
async fn no_viewer_ever_gets_another_viewers_data_and_cached_answers_are_the_uncached_ones() {
    no_viewer_gets_another_viewers_data(ResponseCacheStore::Memory).await;
}

#[tokio::test]
async fn with_redis_no_viewer_ever_gets_another_viewers_data() {
    no_viewer_gets_another_viewers_data(ResponseCacheStore::Redis).await;
}

async fn no_viewer_gets_another_viewers_data(store: ResponseCacheStore) {
    let (a, _b, truth) = instances(store).await;
    let jake = a.signed_in_user("jake").await.token;
    let ann = a.signed_in_user("ann").await.token;
    let bob = a.signed_in_user("bob").await.token;
    let mut articles = Vec::new();
    for title in ["One", "Two", "Three"] {
        articles.push(a.create_article(&jake, title, &["x"]).await["id"].clone());
    }
    a.follow(&ann, "jake").await;
    a.favorite(&ann, articles[0].as_str().unwrap()).await;

    let viewers = [None, Some(&jake), Some(&ann), Some(&bob)];
    let mut rng = StdRng::seed_from_u64(17);
    let hits_before = a.response_cache.hits();
    for step in 0..400 {
        let viewer = viewers[rng.random_range(0..viewers.len())];
        if step % 25 == 24 {
            // Now and then a write: a favorite that toggles.
            let article = articles[rng.random_range(0..articles.len())].clone();
            let token = viewer.unwrap_or(&bob);
            a.query_as(
                token,
                "mutation($id: ID!) { favoriteArticle(input: { id: $id }) { clientMutationId } }",
                json!({ "id": article }),
            )
            .await;
            continue;
        }
        let document = DOCUMENTS[rng.random_range(0..DOCUMENTS.len())];
        let username = ["jake", "ann", "bob"][rng.random_range(0..3)];
        let variables = json!({ "u": username });
        let body = json!({ "query": document, "variables": variables });
        let answer = a.post(body.clone(), viewer.map(String::as_str)).await;
        let expected = truth.post(body, viewer.map(String::as_str)).await;
        assert_eq!(
            answer.body, expected.body,
            "step {step}: {document} for {viewer:?}"
        );
    }
    // The public documents were answered from the cache at times: the
    // comparison above covered cached answers, not only fresh ones.
    let hits = a.response_cache.hits() - hits_before;
    assert!(hits > 20, "only {hits} answers came from the cache");
}

/// Waits until `app` answers `query` as `truth` does; panics with both
/// answers past [`CONVERGED_WITHIN`].
async fn converges(app: &TestApp, truth: &TestApp, query: &str, variables: Value) {
    let deadline = Instant::now() + CONVERGED_WITHIN;
    loop {
        let expected = truth.query(query, variables.clone()).await.body;
        let got = app.query(query, variables.clone()).await.body;
        if got == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "still stale after {CONVERGED_WITHIN:?}:\n got {got}\n expected {expected}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn rows_removed_for_good_leave_no_cached_page_behind() {
    let (a, b, truth) = instances(ResponseCacheStore::Memory).await;
    let jake = a.signed_in_user("jake").await.token;
    let ann = a.signed_in_user("ann").await.token;
    let gone = a.signed_in_user("gone").await.token;
    let kept = a.create_article(&jake, "Kept", &["x"]).await;
    a.create_article(&gone, "Gone with its author", &["y"])
        .await;
    let comment = a
        .query_as(
            &ann,
            "mutation($input: AddCommentInput!) { addComment(input: $input) { comment { id } } }",
            json!({ "input": { "articleId": kept["id"], "body": "soon gone" } }),
        )
        .await;
    assert!(comment.body["errors"].is_null(), "{}", comment.body);
    a.follow(&gone, "jake").await;
    let pages = [
        // Only the lists' shape: no row of them is shown.
        "{ articles(first: 1) { pageInfo { hasNextPage } } tags }",
        "query($slug: String!) { article(slug: $slug) { commentsConnection(first: 5) { pageInfo { hasNextPage } } comments { body } } }",
        "{ user(username: \"jake\") { followers { totalCount } } }",
        "{ articles(first: 5) { nodes { title author { username } } } }",
    ];
    let variables = json!({ "slug": kept["slug"] });
    for page in pages {
        for app in [&a, &b] {
            app.query(page, variables.clone()).await;
            let before = app.response_cache.hits();
            let again = app.query(page, variables.clone()).await;
            assert_eq!(app.response_cache.hits(), before + 1, "{page} is kept");
            assert_eq!(again.body, truth.query(page, variables.clone()).await.body);
        }
    }

    // A comment removed in psql, and an account an operator deleted and
    // retention then purged with all it owned.
    a.db.execute("DELETE FROM comments").await;
    a.db.execute(
        "UPDATE users SET deleted_at = now() - interval '40 days' WHERE username = 'gone'",
    )
    .await;
    conduit::services::retention::soft_deleted(&a.state.db, 30, 500)
        .await
        .expect("retention purges");
    assert_eq!(
        a.db.count("SELECT count(*) FROM users WHERE username = 'gone'")
            .await,
        0
    );
    for page in pages {
        for app in [&a, &b] {
            converges(app, &truth, page, variables.clone()).await;
        }
    }
}

#[tokio::test]
async fn a_favorite_changes_the_article_not_the_lists_by_tag_or_the_tags() {
    let (a, _b, truth) = instances(ResponseCacheStore::Memory).await;
    let jake = a.signed_in_user("jake").await.token;
    let ann = a.signed_in_user("ann").await.token;
    a.create_article(&jake, "Untouched", &["rust"]).await;
    let liked = a.create_article(&jake, "Liked", &["go"]).await;
    // The tags and a list by tag that does not show the liked article.
    let by_tag = "{ articles(tag: \"rust\") { nodes { slug title } } tags }";
    let counted = "query($slug: String!) { article(slug: $slug) { favoritesCount } }";
    let variables = json!({ "slug": liked["slug"] });
    a.query(by_tag, json!({})).await;
    assert_eq!(
        a.query(counted, variables.clone()).await.body["data"]["article"]["favoritesCount"],
        0
    );

    let favorited = a.favorite(&ann, liked["id"].as_str().unwrap()).await;
    assert_eq!(
        favorited.body["data"]["favoriteArticle"]["article"]["favoritesCount"],
        1
    );
    let changes =
        a.db.count("SELECT count(*) FROM events WHERE kind = 'article_favorites_changed'")
            .await;
    assert_eq!(changes, 1, "the event says what changed");
    let before = a.response_cache.hits();
    let kept = a.query(by_tag, json!({})).await;
    assert_eq!(
        a.response_cache.hits(),
        before + 1,
        "the list by tag and the tags are still kept"
    );
    assert_eq!(kept.body, truth.query(by_tag, json!({})).await.body);
    let count = a.query(counted, variables.clone()).await;
    assert_eq!(count.body["data"]["article"]["favoritesCount"], 1);
}

fn hash(document: &str) -> String {
    Sha256::digest(document.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn get(
    app: &TestApp,
    document: &str,
    with_text: bool,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let extensions = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash(document) } });
    let mut params = vec![("extensions", extensions.to_string())];
    if with_text {
        params.push(("query", document.to_owned()));
    }
    let mut request = app.client.get(app.url("/graphql")).query(&params);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn anonymous_gets_by_hash_are_public_with_an_etag_and_revalidate_to_304() {
    let app = TestApp::spawn().await;
    let jake = app.signed_in_user("jake").await.token;
    app.create_article(&jake, "Cached", &["http"]).await;
    let public = "{ articles(first: 5) { nodes { slug title author { username } } } }";
    let private = "{ articles(first: 5) { nodes { slug viewerHasFavorited } } }";

    // Registered with its text: not a URL a CDN can key on.
    let registered = get(&app, public, true, &[]).await;
    assert_eq!(registered.status(), 200);
    assert_eq!(header(&registered, "cache-control"), "private, no-cache");

    let by_hash = get(&app, public, false, &[]).await;
    assert_eq!(by_hash.status(), 200);
    assert_eq!(header(&by_hash, "cache-control"), "public, max-age=60");
    assert!(header(&by_hash, "vary").contains("Authorization"));
    let etag = header(&by_hash, "etag");
    assert!(etag.starts_with('"') && etag.len() > 10, "{etag}");
    let body = by_hash.text().await.unwrap();

    let revalidated = get(&app, public, false, &[("If-None-Match", &etag)]).await;
    assert_eq!(revalidated.status(), 304);
    assert_eq!(header(&revalidated, "etag"), etag);
    assert_eq!(header(&revalidated, "cache-control"), "public, max-age=60");
    assert!(revalidated.text().await.unwrap().is_empty());

    // The uncached server's answer has the same validator.
    let truth = TestApp::spawn_on(app.db.share(), |c| {
        c.response_cache.store = ResponseCacheStore::Off
    })
    .await;
    let uncached = get(&truth, public, true, &[]).await;
    assert_eq!(header(&uncached, "etag"), etag);
    assert_eq!(uncached.text().await.unwrap(), body);

    // A write changes the validator: the old one gets the new page.
    app.create_article(&jake, "Newer", &["http"]).await;
    let changed = get(&app, public, false, &[("If-None-Match", &etag)]).await;
    assert_eq!(changed.status(), 200);
    assert_ne!(header(&changed, "etag"), etag);

    // Signed in: the browser's own, revalidated each time.
    let token = format!("Token {jake}");
    let signed_in = get(&app, public, false, &[("Authorization", &token)]).await;
    assert_eq!(header(&signed_in, "cache-control"), "private, no-cache");

    // Viewer-specific data is never public, even anonymously by hash.
    get(&app, private, true, &[]).await;
    let viewer_specific = get(&app, private, false, &[]).await;
    assert_eq!(viewer_specific.status(), 200);
    assert_eq!(
        header(&viewer_specific, "cache-control"),
        "private, no-cache"
    );

    // POST, mutations and errors are never stored.
    let post = app
        .client
        .post(app.url("/graphql"))
        .json(&json!({ "query": public }))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&post, "cache-control"), "no-store");
    let failed = app
        .client
        .get(app.url("/graphql"))
        .query(&[("query", "{ nope }")])
        .send()
        .await
        .unwrap();
    assert_eq!(header(&failed, "cache-control"), "no-store");
}

/// Headers that belong to one caller, which a shared cache would hand on.
const PER_CALLER: [&str; 6] = [
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "retry-after",
    "www-authenticate",
    "set-cookie",
];

fn per_caller_headers(response: &reqwest::Response) -> Vec<&str> {
    PER_CALLER
        .into_iter()
        .filter(|name| response.headers().contains_key(*name))
        .collect()
}

/// A public answer, which a CDN keeps and hands to everyone, carries no
/// caller's headers; answers for one caller still tell it its budget.
#[tokio::test]
async fn public_answers_carry_no_per_caller_headers() {
    let app = TestApp::spawn().await;
    let jake = app.signed_in_user("jake").await.token;
    let public = "{ tags articles(first: 3) { nodes { slug } } }";

    let registered = get(&app, public, true, &[]).await;
    assert_eq!(header(&registered, "cache-control"), "private, no-cache");
    assert!(registered.headers().contains_key("x-ratelimit-remaining"));

    // Made, then answered from the response cache.
    for _ in 0..2 {
        let by_hash = get(&app, public, false, &[]).await;
        assert_eq!(by_hash.status(), 200);
        assert_eq!(header(&by_hash, "cache-control"), "public, max-age=60");
        assert_eq!(per_caller_headers(&by_hash), Vec::<&str>::new());
        assert!(by_hash.headers().contains_key("x-request-id"));
    }

    let token = format!("Token {jake}");
    let signed_in = get(&app, public, false, &[("Authorization", &token)]).await;
    assert_eq!(header(&signed_in, "cache-control"), "private, no-cache");
    assert!(signed_in.headers().contains_key("x-ratelimit-remaining"));

    let post = app
        .client
        .post(app.url("/graphql"))
        .json(&json!({ "query": public }))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&post, "cache-control"), "no-store");
    assert!(post.headers().contains_key("x-ratelimit-remaining"));
}
