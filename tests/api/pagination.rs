//! Keyset pagination both ways, through ties in `created_at`.

use serde_json::{Value, json};

use crate::helpers::TestApp;

const PAGE: &str = "query($first: Int, $after: String, $last: Int, $before: String) {
    articles(first: $first, after: $after, last: $last, before: $before) {
        edges { cursor node { title } }
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    }
}";

fn titles(connection: &Value) -> Vec<String> {
    connection["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["title"].as_str().unwrap().to_owned())
        .collect()
}

/// A page loop that has not ended after this many pages is a bug (the
/// tests' lists are a few pages long), not a reason to hang.
const MAX_PAGES: usize = 20;

/// The uuid inside an article's global id.
fn uuid_of(global_id: &Value) -> uuid::Uuid {
    use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
    let decoded = URL_SAFE_NO_PAD
        .decode(global_id.as_str().expect("a global id"))
        .expect("base64");
    let decoded = String::from_utf8(decoded).unwrap();
    let uuid = decoded.strip_prefix("Article:").expect("an article id");
    uuid.parse().unwrap()
}

/// The order lists promise, worked out here from what the test made:
/// newest first, and among equal times the greater id first.
fn newest_first(mut rows: Vec<(i64, uuid::Uuid, String)>) -> Vec<String> {
    rows.sort_by_key(|row| std::cmp::Reverse((row.0, row.1)));
    rows.into_iter().map(|(_, _, title)| title).collect()
}

/// Seven articles, A1 to A4 at one and the same time (only their ids
/// order them), A0, A5 and A6 each later; returns the order expected.
async fn seven_articles_with_equal_timestamps(app: &TestApp) -> Vec<String> {
    let jake = app.signed_in_user("jake").await;
    let mut rows = Vec::new();
    for i in 0..7 {
        let title = format!("A{i}");
        let article = app.create_article(&jake.token, &title, &[]).await;
        let day = match i {
            1..=4 => 1,
            0 => 3,
            _ => i,
        };
        app.db
            .execute(&format!(
                "UPDATE articles SET created_at = '2025-01-{day:02}T00:00:00Z' WHERE title = '{title}'"
            ))
            .await;
        rows.push((day, uuid_of(&article["id"]), title));
    }
    let expected = newest_first(rows);
    assert_eq!(expected[..3], ["A6", "A5", "A0"]);
    expected
}

#[tokio::test]
async fn paging_forward_visits_every_article_once() {
    let app = TestApp::spawn().await;
    let everything = seven_articles_with_equal_timestamps(&app).await;
    assert_eq!(everything.len(), 7);

    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        assert!(pages < MAX_PAGES, "paging forward never ended: {seen:?}");
        let response = app.query(PAGE, json!({ "first": 3, "after": after })).await;
        let connection = &response.body["data"]["articles"];
        seen.extend(titles(connection));
        pages += 1;
        let info = &connection["pageInfo"];
        assert_eq!(info["hasPreviousPage"], json!(pages > 1));
        assert_eq!(info["startCursor"], connection["edges"][0]["cursor"]);
        if info["hasNextPage"] == json!(false) {
            break;
        }
        after = info["endCursor"].as_str().map(String::from);
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, everything);
}

#[tokio::test]
async fn paging_backward_visits_every_article_once() {
    let app = TestApp::spawn().await;
    let everything = seven_articles_with_equal_timestamps(&app).await;

    let mut pages: Vec<Vec<String>> = Vec::new();
    let mut before: Option<String> = None;
    loop {
        assert!(
            pages.len() < MAX_PAGES,
            "paging backward never ended: {pages:?}"
        );
        let response = app
            .query(PAGE, json!({ "last": 3, "before": before }))
            .await;
        let connection = &response.body["data"]["articles"];
        pages.push(titles(connection));
        let info = &connection["pageInfo"];
        assert_eq!(info["hasNextPage"], json!(pages.len() > 1));
        if info["hasPreviousPage"] == json!(false) {
            break;
        }
        before = info["startCursor"].as_str().map(String::from);
    }
    assert_eq!(pages.len(), 3);
    assert_eq!(
        pages[0],
        everything[4..].to_vec(),
        "the last page is the oldest three"
    );
    let seen: Vec<String> = pages.into_iter().rev().flatten().collect();
    assert_eq!(seen, everything);
}

#[tokio::test]
async fn a_window_between_two_cursors() {
    let app = TestApp::spawn().await;
    let everything = seven_articles_with_equal_timestamps(&app).await;
    let all = app.query(PAGE, json!({ "first": 7 })).await;
    let cursors: Vec<Value> = all.body["data"]["articles"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["cursor"].clone())
        .collect();
    let window = app
        .query(
            PAGE,
            json!({ "first": 10, "after": cursors[1], "before": cursors[5] }),
        )
        .await;
    assert_eq!(
        titles(&window.body["data"]["articles"]),
        everything[2..5].to_vec()
    );
}

#[tokio::test]
async fn page_sizes_and_cursors_are_checked() {
    let app = TestApp::spawn().await;
    app.signed_in_user("jake").await;
    let cases = [
        json!({ "first": 101 }),
        json!({ "last": 101 }),
        json!({ "first": -1 }),
        json!({ "first": 1, "last": 1 }),
        json!({ "after": "not-a-cursor" }),
        json!({ "before": "MTIzOmFiYw" }),
    ];
    for vars in cases {
        let response = app.query(PAGE, vars.clone()).await;
        assert_eq!(
            response.error_code(),
            Some("BAD_USER_INPUT"),
            "{vars}: {:?}",
            response.body
        );
        assert_eq!(response.body["data"], json!(null));
    }
    let response = app
        .query(
            "{ user(username: \"jake\") { followers(first: 1000) { totalCount } } }",
            json!({}),
        )
        .await;
    assert_eq!(response.error_code(), Some("BAD_USER_INPUT"));
    let empty = app.query(PAGE, json!({ "first": 0 })).await;
    assert_eq!(
        titles(&empty.body["data"]["articles"]),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn the_default_page_is_twenty() {
    let app = TestApp::spawn().await;
    app.signed_in_user("jake").await;
    app.db
        .execute(
            "INSERT INTO articles (author_id, slug, title, description, body)
             SELECT id, 'bulk-' || i, 'Bulk ' || i, '', 'body' FROM users, generate_series(1, 25) i WHERE username = 'jake'",
        )
        .await;
    let response = app.query(PAGE, json!({})).await;
    let connection = &response.body["data"]["articles"];
    assert_eq!(titles(connection).len(), 20);
    assert_eq!(connection["pageInfo"]["hasNextPage"], true);
}

const FEED_PAGE: &str = "query($first: Int, $after: String, $last: Int, $before: String) {
    viewer { feed(first: $first, after: $after, last: $last, before: $before) {
        edges { cursor node { title } }
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    } }
}";

/// The feed merges each followed author's newest articles: pages both ways
/// must still interleave authors in time order, through ties, and leave out
/// authors not followed.
#[tokio::test]
async fn the_feed_pages_both_ways_across_followed_authors() {
    let app = TestApp::spawn().await;
    let reader = app.signed_in_user("reader").await;
    // Minutes after the start each article is moved to: the authors
    // interleaved in time, with a tie across them (ann1 and bob1).
    let minutes = |title: &str| -> i64 {
        if title == "ann1" || title == "bob1" {
            return 100;
        }
        let n: i64 = title[3..].parse().unwrap();
        n * 2 + i64::from(title.starts_with("bob"))
    };
    let mut followed = Vec::new();
    for (author, count) in [("ann", 5), ("bob", 4), ("cid", 3)] {
        let session = app.signed_in_user(author).await;
        for i in 0..count {
            let title = format!("{author}{i}");
            let article = app.create_article(&session.token, &title, &[]).await;
            if author != "cid" {
                followed.push((minutes(&title), uuid_of(&article["id"]), title));
            }
        }
    }
    app.follow(&reader.token, "ann").await;
    app.follow(&reader.token, "bob").await;
    app.db
        .execute(
            "UPDATE articles SET created_at = '2025-01-01'::timestamptz
                 + (CASE WHEN title IN ('ann1', 'bob1') THEN 100 ELSE (substr(title, 4, 1)::int * 2
                    + CASE WHEN title LIKE 'bob%' THEN 1 ELSE 0 END) END) * interval '1 minute'",
        )
        .await;
    let expected = newest_first(followed);
    assert_eq!(expected.len(), 9);

    let feed = |variables: Value| {
        let app = &app;
        let token = reader.token.clone();
        async move {
            let response = app.query_as(&token, FEED_PAGE, variables).await;
            response.body["data"]["viewer"]["feed"].clone()
        }
    };
    let mut forward = Vec::new();
    let mut after: Option<String> = None;
    for pages in 0.. {
        assert!(
            pages < MAX_PAGES,
            "the feed never ended forward: {forward:?}"
        );
        let page = feed(json!({ "first": 2, "after": after })).await;
        forward.extend(titles(&page));
        if page["pageInfo"]["hasNextPage"] == json!(false) {
            break;
        }
        after = page["pageInfo"]["endCursor"].as_str().map(String::from);
    }
    assert_eq!(forward, expected);

    let mut backward: Vec<String> = Vec::new();
    let mut before: Option<String> = None;
    for pages in 0.. {
        assert!(
            pages < MAX_PAGES,
            "the feed never ended backward: {backward:?}"
        );
        let page = feed(json!({ "last": 2, "before": before })).await;
        let mut chunk = titles(&page);
        chunk.extend(backward);
        backward = chunk;
        if page["pageInfo"]["hasPreviousPage"] == json!(false) {
            break;
        }
        before = page["pageInfo"]["startCursor"].as_str().map(String::from);
    }
    assert_eq!(backward, expected);

    // A window between two cursors.
    let all = feed(json!({ "first": 100 })).await;
    let cursor = |i: usize| all["edges"][i]["cursor"].clone();
    let window = feed(json!({ "first": 100, "after": cursor(1), "before": cursor(6) })).await;
    assert_eq!(titles(&window), expected[2..6]);
}
