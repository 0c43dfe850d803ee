//! Relay `node` and `nodes`.

use serde_json::json;

use crate::helpers::TestApp;

const NODES: &str = "query($ids: [ID!]!) {
    nodes(ids: $ids) {
        __typename id
        ... on User { username }
        ... on Article { title }
        ... on Comment { body }
    }
}";

#[tokio::test]
async fn every_node_type_resolves_by_global_id() {
    let app = TestApp::spawn().await;
    let jake = app.signed_in_user("jake").await;
    let article = app.create_article(&jake.token, "Nodes", &[]).await;
    let comment = app
        .query_as(
            &jake.token,
            "mutation($id: ID!) { addComment(input: { articleId: $id, body: \"A node\" }) { comment { id } } }",
            json!({ "id": article["id"] }),
        )
        .await;
    let comment_id = comment.body["data"]["addComment"]["comment"]["id"].clone();
    let user_id = app.user_id("jake").await;
    let unknown = crate::articles::base64_id("Article", &uuid::Uuid::new_v4().to_string());

    let response = app
        .query(
            NODES,
            json!({ "ids": [user_id, article["id"], comment_id, unknown] }),
        )
        .await;
    assert_eq!(
        response.body["data"]["nodes"],
        json!([
            { "__typename": "User", "id": user_id, "username": "jake" },
            { "__typename": "Article", "id": article["id"], "title": "Nodes" },
            { "__typename": "Comment", "id": comment_id, "body": "A node" },
            null
        ])
    );
    let one = app
        .query(
            "query($id: ID!) { node(id: $id) { id ... on User { email } } }",
            json!({ "id": user_id }),
        )
        .await;
    assert_eq!(
        one.body["data"]["node"],
        json!({ "id": user_id, "email": null })
    );
}

#[tokio::test]
async fn malformed_ids_are_bad_input_and_lists_are_bounded() {
    let app = TestApp::spawn().await;
    for id in [
        "garbage",
        &crate::articles::base64_id("Planet", &uuid::Uuid::new_v4().to_string()),
    ] {
        let response = app
            .query(
                "query($id: ID!) { node(id: $id) { id } }",
                json!({ "id": id }),
            )
            .await;
        assert_eq!(response.error_code(), Some("BAD_USER_INPUT"), "{id}");
    }
    let ids: Vec<String> = (0..101)
        .map(|_| crate::articles::base64_id("User", &uuid::Uuid::new_v4().to_string()))
        .collect();
    let response = app.query(NODES, json!({ "ids": ids })).await;
    assert_eq!(response.error_code(), Some("BAD_USER_INPUT"));
}
