//! Data a test starts from: users, sessions, articles, follows,
//! favorites and comments, made through the API as a client would, each
//! checked to have taken (a setup that silently failed would let an
//! assertion about an empty list pass).

use serde_json::{Value, json};

use super::{GraphQLResponse, TestApp};

pub const PASSWORD: &str = "correct horse battery";

/// A signed-in client's tokens.
#[derive(Debug, Clone)]
pub struct Session {
    pub token: String,
    pub refresh_token: String,
}

impl TestApp {
    pub async fn sign_up(&self, username: &str, email: &str) -> Value {
        let response = self
            .query(
                "mutation($input: CreateUserInput!) {
                    createUser(input: $input) { user { id username email } errors { message path code } }
                }",
                json!({ "input": { "username": username, "email": email, "password": PASSWORD } }),
            )
            .await;
        let payload = &response.body["data"]["createUser"];
        assert_eq!(payload["errors"], json!([]), "{:?}", response.body);
        assert_eq!(payload["user"]["username"], username, "{:?}", response.body);
        payload["user"].clone()
    }

    pub async fn sign_in(&self, email: &str, password: &str) -> GraphQLResponse {
        self.query(
            "mutation($input: SignInUserInput!) {
                signInUser(input: $input) {
                    token refreshToken tokenExpiresAt
                    viewer { user { username email } }
                    errors { message path code }
                }
            }",
            json!({ "input": { "email": email, "password": password } }),
        )
        .await
    }

    /// Signs up and in; returns the session.
    pub async fn signed_in_user(&self, username: &str) -> Session {
        let email = format!("{username}@example.com");
        self.sign_up(username, &email).await;
        let response = self.sign_in(&email, PASSWORD).await;
        let payload = &response.body["data"]["signInUser"];
        assert_eq!(payload["errors"], json!([]), "{}", response.body);
        Session {
            token: payload["token"].as_str().expect("token").to_owned(),
            refresh_token: payload["refreshToken"]
                .as_str()
                .expect("refresh")
                .to_owned(),
        }
    }

    /// Signs in again as an existing user (another device); returns its
    /// access token.
    pub async fn another_session(&self, email: &str) -> String {
        let response = self.sign_in(email, PASSWORD).await;
        assert_eq!(
            response.body["data"]["signInUser"]["errors"],
            json!([]),
            "{}",
            response.body
        );
        response.body["data"]["signInUser"]["token"]
            .as_str()
            .expect("token")
            .to_owned()
    }

    pub async fn viewer_username(&self, token: &str) -> GraphQLResponse {
        self.query_as(token, "{ viewer { user { username } } }", json!({}))
            .await
    }

    /// Creates an article as the session's user; returns `{ id slug title tagList }`.
    pub async fn create_article(&self, token: &str, title: &str, tags: &[&str]) -> Value {
        let response = self
            .query_as(
                token,
                "mutation($input: CreateArticleInput!) {
                    createArticle(input: $input) { article { id slug title tagList } errors { path code } }
                }",
                json!({ "input": {
                    "title": title, "description": format!("About {title}"),
                    "body": format!("The body of {title}."), "tagList": tags
                }}),
            )
            .await;
        let payload = &response.body["data"]["createArticle"];
        assert_eq!(payload["errors"], json!([]), "{:?}", response.body);
        assert_eq!(payload["article"]["title"], title, "{:?}", response.body);
        payload["article"].clone()
    }

    /// The global id of a user.
    pub async fn user_id(&self, username: &str) -> String {
        let response = self
            .query(
                "query($u: String!) { user(username: $u) { id } }",
                json!({ "u": username }),
            )
            .await;
        response.body["data"]["user"]["id"]
            .as_str()
            .expect("user exists")
            .to_owned()
    }

    /// Follows `username` as the session's user and checks it took: no
    /// error, and the user now followed by the viewer.
    pub async fn follow(&self, token: &str, username: &str) -> GraphQLResponse {
        let response = self.try_follow(token, username).await;
        let payload = &response.body["data"]["followUser"];
        assert_eq!(payload["errors"], json!([]), "{}", response.body);
        assert_eq!(payload["user"]["username"], username, "{}", response.body);
        assert_eq!(
            payload["user"]["followedByViewer"], true,
            "{}",
            response.body
        );
        response
    }

    /// `followUser`, whatever it answers (for tests of its refusals).
    pub async fn try_follow(&self, token: &str, username: &str) -> GraphQLResponse {
        let id = self.user_id(username).await;
        self.query_as(
            token,
            "mutation($id: ID!) { followUser(input: { id: $id }) { user { username followedByViewer followers { totalCount } } errors { path code } } }",
            json!({ "id": id }),
        )
        .await
    }

    /// Favorites the article as the session's user and checks it took: no
    /// error, and the article now favorited by the viewer.
    pub async fn favorite(&self, token: &str, article_id: &str) -> GraphQLResponse {
        let response = self.try_favorite(token, article_id).await;
        assert!(response.body["errors"].is_null(), "{}", response.body);
        assert_eq!(
            response.body["data"]["favoriteArticle"]["article"]["viewerHasFavorited"], true,
            "{}",
            response.body
        );
        response
    }

    /// `favoriteArticle`, whatever it answers (for tests of its refusals).
    pub async fn try_favorite(&self, token: &str, article_id: &str) -> GraphQLResponse {
        self.query_as(
            token,
            "mutation($id: ID!) { favoriteArticle(input: { id: $id }) { article { favoritesCount viewerHasFavorited } } }",
            json!({ "id": article_id }),
        )
        .await
    }

    /// Comments on the article as the session's user and checks it took;
    /// returns `{ id body }`.
    pub async fn comment(&self, token: &str, article_id: &str, body: &str) -> Value {
        let response = self
            .query_as(
                token,
                "mutation($id: ID!, $body: String!) {
                    addComment(input: { articleId: $id, body: $body }) { comment { id body } errors { path code } }
                }",
                json!({ "id": article_id, "body": body }),
            )
            .await;
        let payload = &response.body["data"]["addComment"];
        assert_eq!(payload["errors"], json!([]), "{}", response.body);
        assert_eq!(payload["comment"]["body"], body, "{}", response.body);
        payload["comment"].clone()
    }
}
