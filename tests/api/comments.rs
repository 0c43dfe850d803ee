//! Comments: adding, listing both ways, deleting.

use serde_json::json;

use crate::helpers::TestApp;

const ADD: &str = "mutation($id: ID!, $body: String!) {
    addComment(input: { articleId: $id, body: $body, clientMutationId: \"c\" }) {
        comment { id body author { username } article { title } createdAt updatedAt }
        errors { path code }
        clientMutationId
    }
}";

const DELETE: &str =
    "mutation($id: ID!) { deleteComment(input: { id: $id }) { comment { body } } }";

#[tokio::test]
async fn comments_are_added_listed_newest_first_and_deleted_by_their_author() {
    let app = TestApp::spawn().await;
    let jake = app.signed_in_user("jake").await;
    let anne = app.signed_in_user("anne").await;
    let article = app.create_article(&jake.token, "Discuss", &[]).await;

    let first = app
        .query_as(
            &anne.token,
            ADD,
            json!({ "id": article["id"], "body": "First!" }),
        )
        .await;
    let payload = &first.body["data"]["addComment"];
    assert_eq!(payload["errors"], json!([]));
    assert_eq!(payload["clientMutationId"], "c");
    assert_eq!(payload["comment"]["author"]["username"], "anne");
    assert_eq!(payload["comment"]["article"]["title"], "Discuss");
    let first_id = payload["comment"]["id"].clone();
    app.query_as(
        &jake.token,
        ADD,
        json!({ "id": article["id"], "body": "Second" }),
    )
    .await;

    let read = app
        .query(
            "query($s: String!) { article(slug: $s) {
                comments { body author { username } }
                commentsConnection(first: 1) { edges { node { body } } pageInfo { hasNextPage endCursor } }
            } }",
            json!({ "s": article["slug"] }),
        )
        .await;
    let data = &read.body["data"]["article"];
    assert_eq!(
        data["comments"],
        json!([{ "body": "Second", "author": { "username": "jake" } }, { "body": "First!", "author": { "username": "anne" } }])
    );
    assert_eq!(
        data["commentsConnection"]["edges"],
        json!([{ "node": { "body": "Second" } }])
    );
    assert_eq!(data["commentsConnection"]["pageInfo"]["hasNextPage"], true);
    let next = app
        .query(
            "query($s: String!, $after: String) { article(slug: $s) { commentsConnection(first: 5, after: $after) { edges { node { body } } pageInfo { hasNextPage hasPreviousPage } } } }",
            json!({ "s": article["slug"], "after": data["commentsConnection"]["pageInfo"]["endCursor"] }),
        )
        .await;
    assert_eq!(
        next.body["data"]["article"]["commentsConnection"],
        json!({ "edges": [{ "node": { "body": "First!" } }], "pageInfo": { "hasNextPage": false, "hasPreviousPage": true } })
    );

    let forbidden = app
        .query_as(&jake.token, DELETE, json!({ "id": first_id }))
        .await;
    assert_eq!(forbidden.error_code(), Some("FORBIDDEN"));
    let deleted = app
        .query_as(&anne.token, DELETE, json!({ "id": first_id }))
        .await;
    assert_eq!(
        deleted.body["data"]["deleteComment"]["comment"]["body"],
        "First!"
    );
    let again = app
        .query_as(&anne.token, DELETE, json!({ "id": first_id }))
        .await;
    assert_eq!(again.error_code(), Some("NOT_FOUND"));
    let read = app
        .query(
            "query($s: String!) { article(slug: $s) { comments { body } } }",
            json!({ "s": article["slug"] }),
        )
        .await;
    assert_eq!(
        read.body["data"]["article"]["comments"],
        json!([{ "body": "Second" }])
    );
}

#[tokio::test]
async fn bad_comments_are_refused_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let jake = app.signed_in_user("jake").await;
    let article = app.create_article(&jake.token, "Quiet", &[]).await;
    for (body, code) in [("   ", "BLANK"), (&*"x".repeat(10_001), "TOO_LONG")] {
        let response = app
            .query_as(
                &jake.token,
                ADD,
                json!({ "id": article["id"], "body": body }),
            )
            .await;
        assert_eq!(
            response.body["data"]["addComment"]["errors"],
            json!([{ "path": "body", "code": code }])
        );
    }
    let anonymous = app
        .query(ADD, json!({ "id": article["id"], "body": "hi" }))
        .await;
    assert_eq!(anonymous.error_code(), Some("UNAUTHENTICATED"));
    app.query_as(
        &jake.token,
        "mutation($id: ID!) { deleteArticle(input: { id: $id }) { article { id } } }",
        json!({ "id": article["id"] }),
    )
    .await;
    let on_deleted = app
        .query_as(
            &jake.token,
            ADD,
            json!({ "id": article["id"], "body": "hello?" }),
        )
        .await;
    assert_eq!(on_deleted.error_code(), Some("NOT_FOUND"));
    assert_eq!(app.db.count("SELECT count(*) FROM comments").await, 0);
}
