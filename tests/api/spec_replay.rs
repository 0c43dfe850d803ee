//! Operations written against the public RealWorld GraphQL spec, using
//! every type and field it defines, replayed in a user's order with the
//! answers a client of the spec expects.

use serde_json::{Value, json};

use crate::helpers::TestApp;

async fn run(app: &TestApp, token: Option<&str>, query: &str, variables: Value) -> Value {
    let response = match token {
        Some(token) => app.query_as(token, query, variables).await,
        None => app.query(query, variables).await,
    };
    assert_eq!(response.status, 200, "{:?}", response.body);
    assert!(
        response.body["errors"].is_null(),
        "{query}\n{:?}",
        response.body
    );
    response.body["data"].clone()
}

#[tokio::test]
async fn a_spec_client_session_end_to_end() {
    let app = TestApp::spawn().await;

    let create = "mutation CreateUser($input: CreateUserInput!) {
        createUser(input: $input) { clientMutationId errors { message path } user { id username email bio image } }
    }";
    for name in ["jake", "anne"] {
        let data = run(&app, None, create, json!({ "input": {
            "username": name, "email": format!("{name}@example.com"), "password": "secret-password", "clientMutationId": "c1"
        }})).await;
        assert_eq!(data["createUser"]["clientMutationId"], "c1");
        assert_eq!(data["createUser"]["errors"], json!([]));
    }

    let sign_in = "mutation SignIn($input: SignInUserInput!) {
        signInUser(input: $input) { clientMutationId errors { message path } token viewer { user { username email } } }
    }";
    let mut tokens = Vec::new();
    for name in ["jake", "anne"] {
        let data = run(&app, None, sign_in, json!({ "input": { "email": format!("{name}@example.com"), "password": "secret-password" } })).await;
        tokens.push(data["signInUser"]["token"].as_str().unwrap().to_owned());
    }
    let (jake, anne) = (&tokens[0], &tokens[1]);

    let update_user = "mutation UpdateUser($input: UpdateUserInput!) {
        updateUser(input: $input) { clientMutationId errors { message path } user { username email bio image } }
    }";
    let data = run(
        &app,
        Some(jake),
        update_user,
        json!({ "input": {
            "email": "jake@example.com", "username": "jake", "bio": "I like to skateboard",
            "image": "https://i.stack.imgur.com/xHWG8.jpg", "password": null
        }}),
    )
    .await;
    assert_eq!(data["updateUser"]["user"]["bio"], "I like to skateboard");

    let create_article = "mutation CreateArticle($input: CreateArticleInput!) {
        createArticle(input: $input) { clientMutationId errors { message path } article { id slug title tagList } }
    }";
    let data = run(
        &app,
        Some(jake),
        create_article,
        json!({ "input": {
            "title": "How to train your dragon", "description": "Ever wonder how?",
            "body": "You have to believe", "tagList": ["dragons", "training"]
        }}),
    )
    .await;
    let article_id = data["createArticle"]["article"]["id"].clone();
    let slug = data["createArticle"]["article"]["slug"]
        .as_str()
        .unwrap()
        .to_owned();

    let update_article = "mutation UpdateArticle($input: UpdateArticleInput!) {
        updateArticle(input: $input) { clientMutationId errors { message path } article { title body description tagList } }
    }";
    let data = run(&app, Some(jake), update_article, json!({ "input": {
        "id": article_id, "title": "How to train your dragon", "description": "Ever wonder how?",
        "body": "With two hands", "tagList": ["dragons", "training"]
    }})).await;
    assert_eq!(data["updateArticle"]["article"]["body"], "With two hands");

    let follow = "mutation Follow($input: FollowUserInput!) {
        followUser(input: $input) { clientMutationId user { username followedByViewer } }
    }";
    let jake_id = app.user_id("jake").await;
    let data = run(
        &app,
        Some(anne),
        follow,
        json!({ "input": { "id": jake_id } }),
    )
    .await;
    assert_eq!(
        data["followUser"]["user"],
        json!({ "username": "jake", "followedByViewer": true })
    );

    let favorite = "mutation Favorite($input: FavoriteArticleInput!) {
        favoriteArticle(input: $input) { clientMutationId article { favoritesCount viewerHasFavorited } }
    }";
    let data = run(
        &app,
        Some(anne),
        favorite,
        json!({ "input": { "id": article_id } }),
    )
    .await;
    assert_eq!(
        data["favoriteArticle"]["article"],
        json!({ "favoritesCount": 1, "viewerHasFavorited": true })
    );

    let add_comment = "mutation AddComment($input: AddCommentInput!) {
        addComment(input: $input) { clientMutationId errors { message path } comment { id body } }
    }";
    let data = run(
        &app,
        Some(anne),
        add_comment,
        json!({ "input": { "articleId": article_id, "body": "Thank you so much!" } }),
    )
    .await;
    let comment_id = data["addComment"]["comment"]["id"].clone();

    let article_fields = "id slug title description body tagList createdAt updatedAt favoritesCount viewerHasFavorited
        author { id username email bio image followedByViewer }
        comments { id body createdAt updatedAt author { username } article { slug } }";
    let everything = format!("query Everything($slug: String!, $username: String!) {{
        viewer {{
            user {{ id username email bio image }}
            feed(first: 10) {{ edges {{ cursor node {{ {article_fields} }} }} pageInfo {{ endCursor hasNextPage hasPreviousPage startCursor }} }}
        }}
        user(username: $username) {{
            id username email bio image followedByViewer
            followers(first: 10) {{ totalCount edges {{ cursor node {{ username }} }} nodes {{ username }} pageInfo {{ hasNextPage hasPreviousPage startCursor endCursor }} }}
            articles(first: 10) {{ edges {{ node {{ slug }} }} pageInfo {{ hasNextPage }} }}
            favoriteArticles(first: 10) {{ edges {{ node {{ slug }} }} pageInfo {{ hasNextPage }} }}
        }}
        articles(first: 10, tag: \"dragons\") {{ edges {{ cursor node {{ slug }} }} pageInfo {{ hasNextPage hasPreviousPage }} }}
        article(slug: $slug) {{ {article_fields} }}
        tags
    }}");
    let data = run(
        &app,
        Some(anne),
        &everything,
        json!({ "slug": slug, "username": "jake" }),
    )
    .await;
    assert_eq!(data["viewer"]["user"]["username"], "anne");
    assert_eq!(data["viewer"]["user"]["email"], "anne@example.com");
    assert_eq!(data["viewer"]["feed"]["edges"][0]["node"]["slug"], slug);
    let article = &data["article"];
    assert_eq!(article["title"], "How to train your dragon");
    assert_eq!(article["tagList"], json!(["dragons", "training"]));
    assert_eq!(article["favoritesCount"], 1);
    assert_eq!(article["viewerHasFavorited"], true);
    assert_eq!(article["author"]["username"], "jake");
    assert_eq!(
        article["author"]["email"],
        json!(null),
        "private to its owner"
    );
    assert_eq!(article["author"]["bio"], "I like to skateboard");
    assert_eq!(article["author"]["followedByViewer"], true);
    assert_eq!(article["comments"][0]["body"], "Thank you so much!");
    assert_eq!(article["comments"][0]["author"]["username"], "anne");
    assert_eq!(article["comments"][0]["article"]["slug"], slug);
    assert_eq!(data["user"]["followers"]["totalCount"], 1);
    assert_eq!(
        data["user"]["followers"]["nodes"],
        json!([{ "username": "anne" }])
    );
    assert_eq!(data["user"]["articles"]["edges"][0]["node"]["slug"], slug);
    assert_eq!(data["user"]["favoriteArticles"]["edges"], json!([]));
    assert_eq!(data["articles"]["edges"][0]["node"]["slug"], slug);
    assert_eq!(data["tags"], json!(["dragons", "training"]));

    let unfavorite = "mutation($input: UnfavoriteArticleInput!) { unfavoriteArticle(input: $input) { clientMutationId article { favoritesCount } } }";
    let data = run(
        &app,
        Some(anne),
        unfavorite,
        json!({ "input": { "id": article_id } }),
    )
    .await;
    assert_eq!(data["unfavoriteArticle"]["article"]["favoritesCount"], 0);
    let unfollow = "mutation($input: UnfollowUserInput!) { unfollowUser(input: $input) { clientMutationId user { followedByViewer } } }";
    let data = run(
        &app,
        Some(anne),
        unfollow,
        json!({ "input": { "id": jake_id } }),
    )
    .await;
    assert_eq!(data["unfollowUser"]["user"]["followedByViewer"], false);
    let delete_comment = "mutation($input: DeleteCommentInput!) { deleteComment(input: $input) { clientMutationId comment { id } } }";
    let data = run(
        &app,
        Some(anne),
        delete_comment,
        json!({ "input": { "id": comment_id } }),
    )
    .await;
    assert_eq!(data["deleteComment"]["comment"]["id"], comment_id);
    let delete_article = "mutation($input: DeleteArticleInput!) { deleteArticle(input: $input) { clientMutationId article { id slug } } }";
    let data = run(
        &app,
        Some(jake),
        delete_article,
        json!({ "input": { "id": article_id, "clientMutationId": "d" } }),
    )
    .await;
    assert_eq!(
        data["deleteArticle"],
        json!({ "clientMutationId": "d", "article": { "id": article_id, "slug": slug } })
    );
    let data = run(
        &app,
        None,
        "{ articles { edges { node { slug } } } tags }",
        json!({}),
    )
    .await;
    assert_eq!(data, json!({ "articles": { "edges": [] }, "tags": [] }));
}
