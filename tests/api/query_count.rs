//! Relationship fields never cost a query per row: the statements a page
//! costs do not grow with its size. Counted at the connection.

use serde_json::json;

use crate::helpers::TestApp;

/// The Conduit home page, signed in.
const HOME_PAGE: &str = "query($first: Int!) {
    articles(first: $first) {
        edges { node {
            slug title description createdAt tagList favoritesCount viewerHasFavorited
            author { username image followedByViewer followers { totalCount } }
        } }
        pageInfo { hasNextPage endCursor }
    }
}";

const ARTICLE_PAGE: &str = "query($slug: String!) {
    article(slug: $slug) {
        title body createdAt tagList favoritesCount viewerHasFavorited
        author { username bio image followedByViewer followers { totalCount } }
        comments { id body createdAt author { username image } }
    }
}";

/// 100 articles by 10 authors, each with tags, some favorited and followed
/// by the viewer, some commented.
async fn populate(app: &TestApp) -> String {
    populate_with(app, 100).await
}

/// `articles` articles by 10 authors, as `populate`; returns the viewer's
/// token.
pub(crate) async fn populate_with(app: &TestApp, articles: u32) -> String {
    let viewer = app.signed_in_user("viewer").await;
    app.db
        .execute(&format!(
            "INSERT INTO users (username, email, password_hash)
             SELECT 'author' || i, 'author' || i || '@example.com', 'x' FROM generate_series(1, 10) i;
             INSERT INTO articles (author_id, slug, title, description, body, created_at)
             SELECT u.id, 'article-' || i, 'Article ' || i, 'about', 'body', now() - i * interval '1 minute'
             FROM generate_series(1, {articles}) i
             JOIN users u ON u.username = 'author' || (1 + i % 10);
             INSERT INTO tags (name) SELECT 'tag' || i FROM generate_series(1, 5) i;
             INSERT INTO article_tags (article_id, tag_id, position)
             SELECT a.id, t.id, 0 FROM articles a JOIN tags t ON t.name = 'tag' || (1 + length(a.slug) % 5);
             INSERT INTO favorites (user_id, article_id)
             SELECT v.id, a.id FROM users v, articles a WHERE v.username = 'viewer' AND length(a.slug) % 2 = 0;
             INSERT INTO follows (follower_id, followee_id)
             SELECT v.id, u.id FROM users v, users u WHERE v.username = 'viewer' AND u.username IN ('author1', 'author2');
             INSERT INTO comments (article_id, author_id, body)
             SELECT a.id, u.id, 'Comment by ' || u.username FROM articles a, users u
             WHERE a.slug = 'article-1' AND u.username LIKE 'author%';"
        ))
        .await;
    viewer.token
}

async fn statements_for(
    app: &TestApp,
    token: &str,
    query: &str,
    variables: serde_json::Value,
) -> (u64, serde_json::Value) {
    let before = app.statements();
    let response = app.query_as(token, query, variables).await;
    assert!(response.body["errors"].is_null(), "{:?}", response.body);
    (app.statements() - before, response.body)
}

/// The home page's statements as the documentation states them: every
/// "home page costs N SQL statements ... (M when anonymous)" and every
/// "home page's N statements" in the README and `docs/`, by file. The
/// phrases are the marker: wherever the text moves, the test finds it.
fn documented_home_page_statements() -> Vec<(String, u64, Option<u64>)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    let mut folders = vec![root.join("docs")];
    while let Some(folder) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
    }
    let number_after = |text: &str, at: usize| -> Option<(u64, usize)> {
        let digits: String = text[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        Some((digits.parse().ok()?, at + digits.len()))
    };
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        // One line per paragraph's words, whatever the wrapping.
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let name = file.strip_prefix(root).unwrap().display().to_string();
        for (at, marker) in text.match_indices("home page costs ") {
            let (signed_in, end) = number_after(&text, at + marker.len())
                .unwrap_or_else(|| panic!("{name}: no figure after {marker:?}"));
            assert!(
                text[end..].starts_with(" SQL statements"),
                "{name}: {}",
                &text[at..end + 40]
            );
            let sentence = &text[end..end + text[end..].find('.').unwrap_or(text.len() - end)];
            let anonymous = sentence.find(" when anonymous)").map(|close| {
                let open = sentence[..close]
                    .rfind('(')
                    .expect("an opening parenthesis");
                sentence[open + 1..close]
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}: {sentence}"))
            });
            found.push((name.clone(), signed_in, anonymous));
        }
        for (at, marker) in text.match_indices("home page's ") {
            if let Some((figure, end)) = number_after(&text, at + marker.len())
                && text[end..].starts_with(" statements")
            {
                found.push((name.clone(), figure, None));
            }
        }
    }
    found
}

/// What the home page costs, signed in and anonymous, for 100 articles.
async fn home_page_statements(app: &TestApp, token: &str) -> (u64, u64) {
    let (signed_in, _) = statements_for(app, token, HOME_PAGE, json!({ "first": 100 })).await;
    let before = app.statements();
    let anonymous = app.query(HOME_PAGE, json!({ "first": 100 })).await;
    assert!(anonymous.body["errors"].is_null(), "{:?}", anonymous.body);
    (signed_in, app.statements() - before)
}

#[tokio::test]
async fn the_documented_home_page_costs_are_the_measured_ones() {
    let app = TestApp::spawn().await;
    let token = populate(&app).await;
    let (signed_in, anonymous) = home_page_statements(&app, &token).await;
    let documented = documented_home_page_statements();
    assert!(
        documented
            .iter()
            .any(|(_, _, anonymous)| anonymous.is_some()),
        "no \"home page costs N SQL statements ... (M when anonymous)\" in the README or docs/: {documented:?}"
    );
    for (file, documented_signed_in, documented_anonymous) in documented {
        assert_eq!(
            documented_signed_in, signed_in,
            "{file} says the signed-in home page costs {documented_signed_in} statements; it costs {signed_in}"
        );
        if let Some(documented_anonymous) = documented_anonymous {
            assert_eq!(
                documented_anonymous, anonymous,
                "{file} says the anonymous home page costs {documented_anonymous} statements; it costs {anonymous}"
            );
        }
    }
}

#[tokio::test]
async fn the_home_page_costs_the_same_statements_for_1_20_and_100_articles() {
    let app = TestApp::spawn().await;
    let token = populate(&app).await;
    let mut counts = Vec::new();
    for first in [1, 20, 100] {
        let (statements, body) =
            statements_for(&app, &token, HOME_PAGE, json!({ "first": first })).await;
        let edges = body["data"]["articles"]["edges"].as_array().unwrap();
        assert_eq!(edges.len(), first as usize);
        assert!(
            edges
                .iter()
                .all(|e| e["node"]["tagList"].as_array().unwrap().len() == 1)
        );
        assert!(
            edges
                .iter()
                .any(|e| e["node"]["viewerHasFavorited"] == true)
                || first == 1
        );
        counts.push(statements);
    }
    println!("home page statements for 1, 20, 100 articles: {counts:?}");
    assert!(counts.iter().all(|c| *c == counts[0]), "{counts:?}");
    // Session check, articles (their tags with them), authors, favorites,
    // follows.
    assert_eq!(counts[0], 5, "{counts:?}");

    let before = app.statements();
    let anonymous = app.query(HOME_PAGE, json!({ "first": 100 })).await;
    assert!(anonymous.body["errors"].is_null());
    let anonymous_count = app.statements() - before;
    println!("anonymous home page statements for 100 articles: {anonymous_count}");
    assert_eq!(anonymous_count, 2, "articles with their tags, authors");
}

#[tokio::test]
async fn the_article_page_costs_a_fixed_handful_of_statements() {
    let app = TestApp::spawn().await;
    let token = populate(&app).await;
    let (statements, body) =
        statements_for(&app, &token, ARTICLE_PAGE, json!({ "slug": "article-1" })).await;
    assert_eq!(
        body["data"]["article"]["comments"]
            .as_array()
            .unwrap()
            .len(),
        10
    );
    println!("article page statements: {statements}");
    // Session check, article, tags, favorites, authors (article's and
    // comments', in up to two batches), follows, comments.
    assert!(statements <= 8, "{statements}");
}

/// The benchmark's documents (`scripts/bench/documents/`): what each
/// scenario costs in statements is fixed here, so CI notices when a change
/// adds a round trip, without timing anything.
mod bench_scenarios {
    use serde_json::json;

    use super::{populate, statements_for};
    use crate::helpers::TestApp;

    const HOME_ANONYMOUS: &str =
        include_str!("../../scripts/bench/documents/home_anonymous.graphql");
    const HOME_SIGNED_IN: &str =
        include_str!("../../scripts/bench/documents/home_signed_in.graphql");
    const FEED: &str = include_str!("../../scripts/bench/documents/feed.graphql");
    const ARTICLE: &str = include_str!("../../scripts/bench/documents/article.graphql");
    const WRITES: &str = include_str!("../../scripts/bench/documents/writes.graphql");
    const SIGN_IN: &str = include_str!("../../scripts/bench/documents/sign_in.graphql");

    async fn count(
        app: &TestApp,
        token: Option<&str>,
        document: &str,
        operation: Option<&str>,
        variables: serde_json::Value,
    ) -> u64 {
        let before = app.statements();
        let response = app
            .post(
                json!({ "query": document, "operationName": operation, "variables": variables }),
                token,
            )
            .await;
        assert!(response.body["errors"].is_null(), "{}", response.body);
        let payload = response.body["data"].as_object().unwrap().values().next();
        assert!(
            payload.is_none_or(|p| p["errors"].as_array().is_none_or(Vec::is_empty)),
            "{}",
            response.body
        );
        app.statements() - before
    }

    #[tokio::test]
    async fn reads_cost_the_same_statements_for_every_page_size() {
        let app = TestApp::spawn().await;
        let token = populate(&app).await;
        for (name, token, document, expected) in [
            ("(a) home, anonymous", None, HOME_ANONYMOUS, 2),
            (
                "(b) home, signed in",
                Some(token.as_str()),
                HOME_SIGNED_IN,
                5,
            ),
            ("(c) feed", Some(token.as_str()), FEED, 5),
        ] {
            let mut counts = Vec::new();
            for first in [1, 20, 100] {
                counts.push(count(&app, token, document, None, json!({ "first": first })).await);
            }
            println!("{name}: statements for first 1, 20, 100: {counts:?}");
            assert_eq!(counts, [expected; 3], "{name}");
        }
        let (article, body) =
            statements_for(&app, &token, ARTICLE, json!({ "slug": "article-1" })).await;
        assert_eq!(
            body["data"]["article"]["comments"]
                .as_array()
                .unwrap()
                .len(),
            10
        );
        println!("(d) article page: {article} statements");
        assert_eq!(article, 7, "(d) article page");
    }

    #[tokio::test]
    async fn writes_and_sign_in_cost_a_fixed_handful_of_statements() {
        let app = TestApp::spawn().await;
        let token = populate(&app).await;
        let article = app
            .query(
                "{ article(slug: \"article-2\") { id author { id } } }",
                json!({}),
            )
            .await
            .body["data"]["article"]
            .clone();
        let (article_id, author_id) = (article["id"].clone(), article["author"]["id"].clone());
        let mut counts = Vec::new();
        for (operation, variables) in [
            (
                "AddComment",
                json!({ "articleId": article_id, "body": "Nice." }),
            ),
            ("Favorite", json!({ "id": article_id })),
            ("Unfavorite", json!({ "id": article_id })),
            ("Follow", json!({ "id": author_id })),
            ("Unfollow", json!({ "id": author_id })),
        ] {
            let statements = count(&app, Some(&token), WRITES, Some(operation), variables).await;
            counts.push((operation, statements));
        }
        let sign_in = count(
            &app,
            None,
            SIGN_IN,
            None,
            json!({ "email": "viewer@example.com", "password": crate::helpers::PASSWORD }),
        )
        .await;
        counts.push(("SignIn", sign_in));
        println!("(e) writes and (f) sign-in: {counts:?}");
        // A write that can cause webhooks names its request in its
        // transaction (one statement), so the jobs it enqueues carry the id.
        // Every request with a mutation then reads the last event's id (one
        // statement) and answers once the response cache applied it.
        assert_eq!(
            counts,
            [
                ("AddComment", 7),
                ("Favorite", 9),
                ("Unfavorite", 8),
                ("Follow", 9),
                ("Unfollow", 8),
                ("SignIn", 6),
            ]
        );
    }
}

#[tokio::test]
async fn lists_fetch_bodies_only_when_asked_in_one_statement_for_the_page() {
    let app = TestApp::spawn().await;
    let token = populate(&app).await;
    let without = "query($first: Int!) { articles(first: $first) { nodes { slug } } }";
    let with = "query($first: Int!) { articles(first: $first) { nodes { slug body } } }";
    let mut counts = Vec::new();
    for first in [1, 20, 100] {
        let (plain, _) = statements_for(&app, &token, without, json!({ "first": first })).await;
        let (bodies, body) = statements_for(&app, &token, with, json!({ "first": first })).await;
        let nodes = body["data"]["articles"]["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), first as usize);
        assert!(nodes.iter().all(|n| n["body"] == "body"), "{body:?}");
        counts.push((plain, bodies));
    }
    println!("statements without and with bodies for 1, 20, 100 articles: {counts:?}");
    assert!(
        counts.iter().all(|(plain, bodies)| *bodies == plain + 1),
        "{counts:?}"
    );

    // A single article carries its body: no second statement.
    let one = "query($slug: String!) { article(slug: $slug) { body } }";
    let (single, _) = statements_for(&app, &token, one, json!({ "slug": "article-1" })).await;
    let (slug_only, _) = statements_for(
        &app,
        &token,
        "query($slug: String!) { article(slug: $slug) { slug } }",
        json!({ "slug": "article-1" }),
    )
    .await;
    assert_eq!(single, slug_only);
}
