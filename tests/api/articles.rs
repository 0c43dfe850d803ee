//! Articles, tags, favorites and the lists they appear in.

use serde_json::{Value, json};

use crate::helpers::TestApp;

const CREATE: &str = "mutation($input: CreateArticleInput!) {
    createArticle(input: $input) {
        article { id slug title description body tagList favoritesCount viewerHasFavorited
                  author { username } createdAt updatedAt }
        errors { message path code }
    }
}";

const UPDATE: &str = "mutation($input: UpdateArticleInput!) {
    updateArticle(input: $input) { article { slug title description body tagList } errors { path code } }
}";

const DELETE: &str = "mutation($id: ID!) {
    deleteArticle(input: { id: $id }) { article { slug title } }
}";

fn slugs(connection: &Value) -> Vec<String> {
    connection["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["slug"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn create_article_normalises_tags_and_returns_the_article() {
    let app = TestApp::spawn().await;
    let jake = app.signed_in_user("jake").await;
    let response = app
        .query_as(
            &jake.token,
            CREATE,
            json!({ "input": {
                "title": "  How to train your dragon ", "description": "Ever wonder how?",
                "body": "You have to believe", "tagList": [" Dragons", "training", "DRAGONS", "", "Web   Dev"]
            }}),
        )
        .await;
    let payload = &response.body["data"]["createArticle"];
    assert_eq!(payload["errors"], json!([]));
    let article = &payload["article"];
    assert_eq!(article["title"], "How to train your dragon");
    assert!(
        article["slug"]
            .as_str()
            .unwrap()
            .starts_with("how-to-train-your-dragon-")
    );
    assert_eq!(
        article["tagList"],
        json!(["dragons", "training", "web dev"])
    );
    assert_eq!(article["favoritesCount"], 0);
    assert_eq!(article["viewerHasFavorited"], false);
    assert_eq!(article["author"], json!({ "username": "jake" }));
    assert_eq!(app.db.count("SELECT count(*) FROM article_tags").await, 3);
}

#[tokio::test]
async fn create_article_refuses_bad_input_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let jake = app.signed_in_user("jake").await;
    let many_tags: Vec<String> = (0..11).map(|i| format!("tag{i}")).collect();
    let cases = [
        (
            json!({ "title": " ", "description": "", "body": "", "tagList": [] }),
            json!([["title", "BLANK"], ["body", "BLANK"]]),
        ),
        (
            json!({ "title": "t".repeat(201), "description": "d".repeat(1001), "body": "b", "tagList": [] }),
            json!([["title", "TOO_LONG"], ["description", "TOO_LONG"]]),
        ),
        (
            json!({ "title": "t", "description": "", "body": "b".repeat(100_001), "tagList": many_tags }),
            json!([["body", "TOO_LONG"], ["tagList", "TOO_LONG"]]),
        ),
        (
            json!({ "title": "t", "description": "", "body": "b", "tagList": ["x".repeat(33)] }),
            json!([["tagList", "TOO_LONG"]]),
        ),
    ];
    for (input, expected) in cases {
        let response = app
            .query_as(&jake.token, CREATE, json!({ "input": input }))
            .await;
        let payload = &response.body["data"]["createArticle"];
        assert_eq!(payload["article"], json!(null));
        let got: Vec<_> = payload["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| json!([e["path"], e["code"]]))
            .collect();
        assert_eq!(json!(got), expected);
    }
    let anonymous = app
        .query(
            CREATE,
            json!({ "input": { "title": "t", "description": "d", "body": "b", "tagList": [] } }),
        )
        .await;
    assert_eq!(anonymous.error_code(), Some("UNAUTHENTICATED"));
    assert_eq!(app.db.count("SELECT count(*) FROM articles").await, 0);
    assert_eq!(app.db.count("SELECT count(*) FROM tags").await, 0);
}

#[tokio::test]
async fn strings_that_look_like_code_are_stored_verbatim() {
    let app = TestApp::spawn().await;
    let jake = app.signed_in_user("jake").await;
    let title = "Robert'); DROP TABLE articles;-- <script>alert(1)</script>";
    let body = "line one\nline two\t\u{0007} & <b>bold</b> \"quoted\" 🦀";
    let response = app
        .query_as(&jake.token, CREATE, json!({ "input": { "title": title, "description": "", "body": body, "tagList": ["<img>"] } }))
        .await;
    let article = &response.body["data"]["createArticle"]["article"];
    assert_eq!(article["title"], title);
    assert_eq!(article["body"], body);
    assert_eq!(article["tagList"], json!(["<img>"]));
    let slug = article["slug"].as_str().unwrap();
    assert!(
        slug.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
        "{slug}"
    );
    let read = app
        .query(
            "query($s: String!) { article(slug: $s) { title body } }",
            json!({ "s": slug }),
        )
        .await;
    assert_eq!(
        read.body["data"]["article"],
        json!({ "title": title, "body": body })
    );
}

#[tokio::test]
async fn equal_titles_get_distinct_slugs_and_slugs_follow_the_title() {
    let app = TestApp::spawn().await;
    let jake = app.signed_in_user("jake").await;
    let first = app.create_article(&jake.token, "Same title", &[]).await;
    let second = app.create_article(&jake.token, "Same title", &[]).await;
    assert_ne!(first["slug"], second["slug"]);

    let response = app
        .query_as(
            &jake.token,
            UPDATE,
            json!({ "input": { "id": first["id"], "title": "A new title" } }),
        )
        .await;
    let updated = &response.body["data"]["updateArticle"]["article"];
    assert!(
        updated["slug"]
            .as_str()
            .unwrap()
            .starts_with("a-new-title-")
    );
    assert_eq!(
        updated["description"], "About Same title",
        "omitted fields stay"
    );

    let old = app
        .query(
            "query($s: String!) { article(slug: $s) { title } }",
            json!({ "s": first["slug"] }),
        )
        .await;
    assert_eq!(old.body["data"]["article"], json!(null));
    let new = app
        .query(
            "query($s: String!) { article(slug: $s) { title } }",
            json!({ "s": updated["slug"] }),
        )
        .await;
    assert_eq!(new.body["data"]["article"]["title"], "A new title");
}

#[tokio::test]
async fn only_the_author_edits_or_deletes() {
    let app = TestApp::spawn().await;
    let jake = app.signed_in_user("jake").await;
    let anne = app.signed_in_user("anne").await;
    let article = app.create_article(&jake.token, "Jake's", &["mine"]).await;

    let edit = app
        .query_as(
            &anne.token,
            UPDATE,
            json!({ "input": { "id": article["id"], "title": "Anne's now", "tagList": [] } }),
        )
        .await;
    assert_eq!(edit.error_code(), Some("FORBIDDEN"));
    assert_eq!(edit.body["data"]["updateArticle"], json!(null));
    let delete = app
        .query_as(&anne.token, DELETE, json!({ "id": article["id"] }))
        .await;
    assert_eq!(delete.error_code(), Some("FORBIDDEN"));

    assert_eq!(
        app.db
            .count("SELECT count(*) FROM articles WHERE title = 'Jake''s' AND deleted_at IS NULL")
            .await,
        1
    );
    assert_eq!(app.db.count("SELECT count(*) FROM article_tags").await, 1);

    let edit = app
        .query_as(
            &jake.token,
            UPDATE,
            json!({ "input": { "id": article["id"], "body": "New body", "tagList": ["b", "a"] } }),
        )
        .await;
    assert_eq!(
        edit.body["data"]["updateArticle"]["article"]["body"],
        "New body"
    );
    assert_eq!(
        edit.body["data"]["updateArticle"]["article"]["tagList"],
        json!(["b", "a"])
    );
}

#[tokio::test]
async fn unknown_and_malformed_ids_are_not_found_and_bad_input() {
    let app = TestApp::spawn().await;
    let jake = app.signed_in_user("jake").await;
    let unknown = base64_id("Article", &uuid::Uuid::new_v4().to_string());
    let response = app
        .query_as(&jake.token, DELETE, json!({ "id": unknown }))
        .await;
    assert_eq!(response.error_code(), Some("NOT_FOUND"));
    for bad in [
        "nope",
        &base64_id("Article", "42"),
        &app.user_id("jake").await,
    ] {
        let response = app
            .query_as(&jake.token, DELETE, json!({ "id": bad }))
            .await;
        assert_eq!(response.error_code(), Some("BAD_USER_INPUT"), "{bad}");
    }
    let response = app.try_favorite(&jake.token, &unknown).await;
    assert_eq!(response.error_code(), Some("NOT_FOUND"));
}

pub fn base64_id(kind: &str, id: &str) -> String {
    use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
    URL_SAFE_NO_PAD.encode(format!("{kind}:{id}"))
}

#[tokio::test]
async fn a_deleted_article_vanishes_from_every_list_and_count() {
    let app = TestApp::spawn().await;
    let jake = app.signed_in_user("jake").await;
    let anne = app.signed_in_user("anne").await;
    app.follow(&anne.token, "jake").await;
    let kept = app.create_article(&jake.token, "Kept", &["shared"]).await;
    let gone = app
        .create_article(&jake.token, "Gone", &["shared", "only-gone"])
        .await;
    app.favorite(&anne.token, gone["id"].as_str().unwrap())
        .await;
    app.comment(&anne.token, gone["id"].as_str().unwrap(), "hi")
        .await;

    let deleted = app
        .query_as(&jake.token, DELETE, json!({ "id": gone["id"] }))
        .await;
    assert_eq!(
        deleted.body["data"]["deleteArticle"]["article"]["title"], "Gone",
        "returns the deleted article"
    );

    let lists = app
        .query_as(
            &anne.token,
            "query($slug: String!, $id: ID!) {
                all: articles { edges { node { slug } } }
                tagged: articles(tag: \"shared\") { edges { node { slug } } }
                byAuthor: articles(author: \"jake\") { edges { node { slug } } }
                favorited: articles(favoritedBy: \"anne\") { edges { node { slug } } }
                tags
                article(slug: $slug) { title }
                node(id: $id) { id }
                viewer { feed { edges { node { slug } } } user { favoriteArticles { edges { node { slug } } } } }
                user(username: \"jake\") { articles { edges { node { slug } } } }
            }",
            json!({ "slug": gone["slug"], "id": gone["id"] }),
        )
        .await;
    let data = &lists.body["data"];
    let kept_slug = vec![kept["slug"].as_str().unwrap().to_owned()];
    assert_eq!(slugs(&data["all"]), kept_slug);
    assert_eq!(slugs(&data["tagged"]), kept_slug);
    assert_eq!(slugs(&data["byAuthor"]), kept_slug);
    assert_eq!(slugs(&data["favorited"]), Vec::<String>::new());
    assert_eq!(slugs(&data["viewer"]["feed"]), kept_slug);
    assert_eq!(
        slugs(&data["viewer"]["user"]["favoriteArticles"]),
        Vec::<String>::new()
    );
    assert_eq!(slugs(&data["user"]["articles"]), kept_slug);
    assert_eq!(data["tags"], json!(["shared"]));
    assert_eq!(data["article"], json!(null));
    assert_eq!(data["node"], json!(null));

    let again = app
        .query_as(&jake.token, DELETE, json!({ "id": gone["id"] }))
        .await;
    assert_eq!(again.error_code(), Some("NOT_FOUND"));
    let favorite = app
        .try_favorite(&anne.token, gone["id"].as_str().unwrap())
        .await;
    assert_eq!(favorite.error_code(), Some("NOT_FOUND"));
}

#[tokio::test]
async fn tags_are_most_used_first() {
    let app = TestApp::spawn().await;
    let jake = app.signed_in_user("jake").await;
    app.create_article(&jake.token, "One", &["rare", "common"])
        .await;
    app.create_article(&jake.token, "Two", &["common", "middle"])
        .await;
    app.create_article(&jake.token, "Three", &["COMMON", "middle"])
        .await;
    let response = app.query("{ tags }", json!({})).await;
    assert_eq!(
        response.body["data"]["tags"],
        json!(["common", "middle", "rare"])
    );
    let response = app.query("{ tags(first: 1) }", json!({})).await;
    assert_eq!(response.body["data"]["tags"], json!(["common"]));
    let response = app.query("{ tags(first: 101) }", json!({})).await;
    assert_eq!(response.error_code(), Some("BAD_USER_INPUT"));
}

#[tokio::test]
async fn filters_combine() {
    let app = TestApp::spawn().await;
    let jake = app.signed_in_user("jake").await;
    let anne = app.signed_in_user("anne").await;
    let a = app
        .create_article(&jake.token, "Jake rust", &["rust"])
        .await;
    let b = app.create_article(&jake.token, "Jake go", &["go"]).await;
    let c = app
        .create_article(&anne.token, "Anne rust", &["rust"])
        .await;
    for article in [&a, &b, &c] {
        app.favorite(&anne.token, article["id"].as_str().unwrap())
            .await;
    }
    app.favorite(&jake.token, c["id"].as_str().unwrap()).await;
    let query = "query($tag: String, $author: String, $fav: String) {
        articles(tag: $tag, author: $author, favoritedBy: $fav) { edges { node { slug } } }
    }";
    let cases = [
        (json!({ "tag": "RUST" }), vec![&c, &a]),
        (json!({ "tag": "rust", "author": "jake" }), vec![&a]),
        (json!({ "author": "jake", "fav": "anne" }), vec![&b, &a]),
        (json!({ "tag": "rust", "fav": "jake" }), vec![&c]),
        (json!({ "tag": "go", "author": "anne" }), vec![]),
        (json!({ "author": "nobody" }), vec![]),
        (json!({ "tag": "nothing" }), vec![]),
    ];
    for (vars, expected) in cases {
        let response = app.query(query, vars.clone()).await;
        let expected: Vec<String> = expected
            .iter()
            .map(|a| a["slug"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            slugs(&response.body["data"]["articles"]),
            expected,
            "{vars}"
        );
    }
}

#[tokio::test]
async fn favorites_are_idempotent_and_counted() {
    let app = TestApp::spawn().await;
    let jake = app.signed_in_user("jake").await;
    let anne = app.signed_in_user("anne").await;
    let article = app.create_article(&jake.token, "Popular", &[]).await;
    let id = article["id"].as_str().unwrap();

    for _ in 0..2 {
        let response = app.favorite(&anne.token, id).await;
        assert_eq!(
            response.body["data"]["favoriteArticle"]["article"],
            json!({ "favoritesCount": 1, "viewerHasFavorited": true })
        );
    }
    let unfavorite = "mutation($id: ID!) { unfavoriteArticle(input: { id: $id }) { article { favoritesCount viewerHasFavorited } } }";
    for _ in 0..2 {
        let response = app
            .query_as(&anne.token, unfavorite, json!({ "id": id }))
            .await;
        assert_eq!(
            response.body["data"]["unfavoriteArticle"]["article"],
            json!({ "favoritesCount": 0, "viewerHasFavorited": false })
        );
    }
    let anonymous = app.query(unfavorite, json!({ "id": id })).await;
    assert_unauthenticated_field(&anonymous, "unfavoriteArticle");
}

fn assert_unauthenticated_field(response: &crate::helpers::GraphQLResponse, field: &str) {
    assert_eq!(response.error_code(), Some("UNAUTHENTICATED"));
    assert_eq!(response.body["data"][field], json!(null));
}

#[tokio::test]
async fn concurrent_favorites_keep_the_count_exact() {
    let app = TestApp::spawn_with(|c| c.database_pool_size = 16).await;
    let author = app.signed_in_user("author").await;
    let article = app.create_article(&author.token, "Race", &[]).await;
    let id = article["id"].as_str().unwrap().to_owned();
    let mut fans = Vec::new();
    for i in 0..12 {
        fans.push(app.signed_in_user(&format!("fan{i}")).await);
    }
    // Every fan favorites twice at once, then half of them unfavorite.
    let favorites = fans
        .iter()
        .flat_map(|f| [f, f])
        .map(|f| app.favorite(&f.token, &id));
    futures_util::future::join_all(favorites).await;
    let unfavorite = "mutation($id: ID!) { unfavoriteArticle(input: { id: $id }) { article { favoritesCount } } }";
    let removals = fans
        .iter()
        .take(6)
        .map(|f| app.query_as(&f.token, unfavorite, json!({ "id": id })));
    futures_util::future::join_all(removals).await;

    let response = app
        .query(
            "query($s: String!) { article(slug: $s) { favoritesCount } }",
            json!({ "s": article["slug"] }),
        )
        .await;
    assert_eq!(response.body["data"]["article"]["favoritesCount"], 6);
    assert_eq!(app.db.count("SELECT count(*) FROM favorites").await, 6);
}

#[tokio::test]
async fn later_mutations_in_one_document_see_fresh_answers() {
    let app = TestApp::spawn().await;
    let jake = app.signed_in_user("jake").await;
    let article = app.create_article(&jake.token, "Toggle", &[]).await;
    let response = app
        .query_as(
            &jake.token,
            "mutation($id: ID!) {
                on: favoriteArticle(input: { id: $id }) { article { viewerHasFavorited favoritesCount } }
                off: unfavoriteArticle(input: { id: $id }) { article { viewerHasFavorited favoritesCount } }
            }",
            json!({ "id": article["id"] }),
        )
        .await;
    assert_eq!(
        response.body["data"],
        json!({
            "on": { "article": { "viewerHasFavorited": true, "favoritesCount": 1 } },
            "off": { "article": { "viewerHasFavorited": false, "favoritesCount": 0 } }
        })
    );
}
