//! Profiles, follows and the feed.

use serde_json::json;

use crate::helpers::TestApp;

const UNFOLLOW: &str = "mutation($id: ID!) {
    unfollowUser(input: { id: $id }) { user { username followedByViewer followers { totalCount } } }
}";

#[tokio::test]
async fn follow_and_unfollow_are_idempotent_and_counted() {
    let app = TestApp::spawn().await;
    app.signed_in_user("jake").await;
    let anne = app.signed_in_user("anne").await;
    let bob = app.signed_in_user("bob").await;
    for _ in 0..2 {
        let response = app.follow(&anne.token, "jake").await;
        assert_eq!(
            response.body["data"]["followUser"],
            json!({ "user": { "username": "jake", "followedByViewer": true, "followers": { "totalCount": 1 } }, "errors": [] })
        );
    }
    app.follow(&bob.token, "jake").await;
    let profile = app
        .query_as(
            &anne.token,
            "{ user(username: \"jake\") { followedByViewer followers { totalCount edges { node { username } } nodes { username } pageInfo { hasNextPage } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        profile.body["data"]["user"],
        json!({
            "followedByViewer": true,
            "followers": {
                "totalCount": 2,
                "edges": [{ "node": { "username": "bob" } }, { "node": { "username": "anne" } }],
                "nodes": [{ "username": "bob" }, { "username": "anne" }],
                "pageInfo": { "hasNextPage": false }
            }
        })
    );
    let jake_id = app.user_id("jake").await;
    for _ in 0..2 {
        let response = app
            .query_as(&anne.token, UNFOLLOW, json!({ "id": jake_id }))
            .await;
        assert_eq!(
            response.body["data"]["unfollowUser"]["user"],
            json!({ "username": "jake", "followedByViewer": false, "followers": { "totalCount": 1 } })
        );
    }
    let anonymous = app
        .query(
            "{ user(username: \"jake\") { followedByViewer } }",
            json!({}),
        )
        .await;
    assert_eq!(anonymous.body["data"]["user"]["followedByViewer"], false);
}

#[tokio::test]
async fn following_yourself_is_refused_and_unknown_users_are_not_found() {
    let app = TestApp::spawn().await;
    let jake = app.signed_in_user("jake").await;
    let response = app.try_follow(&jake.token, "jake").await;
    assert_eq!(
        response.body["data"]["followUser"],
        json!({ "user": null, "errors": [{ "path": "id", "code": "INVALID" }] })
    );
    assert_eq!(app.db.count("SELECT count(*) FROM follows").await, 0);
    let ghost = crate::articles::base64_id("User", &uuid::Uuid::new_v4().to_string());
    let response = app
        .query_as(
            &jake.token,
            "mutation($id: ID!) { followUser(input: { id: $id }) { errors { code } } }",
            json!({ "id": ghost }),
        )
        .await;
    assert_eq!(response.error_code(), Some("NOT_FOUND"));
    let response = app
        .query(
            "mutation($id: ID!) { followUser(input: { id: $id }) { errors { code } } }",
            json!({ "id": ghost }),
        )
        .await;
    assert_eq!(response.error_code(), Some("UNAUTHENTICATED"));
}

#[tokio::test]
async fn the_feed_shows_followed_authors_newest_first() {
    let app = TestApp::spawn().await;
    let jake = app.signed_in_user("jake").await;
    let anne = app.signed_in_user("anne").await;
    let bob = app.signed_in_user("bob").await;
    let reader = app.signed_in_user("reader").await;
    let feed = "{ viewer { feed { edges { node { title author { username followedByViewer } } } pageInfo { hasNextPage } } } }";

    let empty = app.query_as(&reader.token, feed, json!({})).await;
    assert_eq!(
        empty.body["data"]["viewer"]["feed"],
        json!({ "edges": [], "pageInfo": { "hasNextPage": false } })
    );

    app.create_article(&jake.token, "Jake 1", &[]).await;
    app.create_article(&anne.token, "Anne 1", &[]).await;
    app.create_article(&bob.token, "Bob 1", &[]).await;
    app.create_article(&jake.token, "Jake 2", &[]).await;
    app.create_article(&reader.token, "Mine", &[]).await;
    app.follow(&reader.token, "jake").await;
    app.follow(&reader.token, "anne").await;

    let response = app.query_as(&reader.token, feed, json!({})).await;
    let titles: Vec<_> = response.body["data"]["viewer"]["feed"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["node"]["title"].clone(),
                e["node"]["author"]["followedByViewer"].clone(),
            )
        })
        .collect();
    assert_eq!(
        titles,
        vec![
            (json!("Jake 2"), json!(true)),
            (json!("Anne 1"), json!(true)),
            (json!("Jake 1"), json!(true))
        ]
    );
}

#[tokio::test]
async fn profiles_list_authored_and_favorited_articles() {
    let app = TestApp::spawn().await;
    let jake = app.signed_in_user("jake").await;
    let anne = app.signed_in_user("anne").await;
    let first = app.create_article(&jake.token, "First", &[]).await;
    app.create_article(&jake.token, "Second", &[]).await;
    app.favorite(&anne.token, first["id"].as_str().unwrap())
        .await;
    let response = app
        .query(
            "{ jake: user(username: \"jake\") { articles { edges { node { title } } } }
               anne: user(username: \"anne\") { favoriteArticles { edges { node { title favoritesCount } } } articles { edges { node { title } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        response.body["data"],
        json!({
            "jake": { "articles": { "edges": [{ "node": { "title": "Second" } }, { "node": { "title": "First" } }] } },
            "anne": {
                "favoriteArticles": { "edges": [{ "node": { "title": "First", "favoritesCount": 1 } }] },
                "articles": { "edges": [] }
            }
        })
    );
}
