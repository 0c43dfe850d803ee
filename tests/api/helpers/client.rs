//! The client side: requests as a frontend sends them, and what it gets
//! back, checked on the way in (never a 500, never an internal error).

use serde_json::{Value, json};

use super::TestApp;

/// What a client sees: the HTTP status and the JSON body.
#[derive(Debug)]
pub struct GraphQLResponse {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl GraphQLResponse {
    /// The first error's `extensions.code`.
    pub fn error_code(&self) -> Option<&str> {
        self.body["errors"][0]["extensions"]["code"].as_str()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A response to a request a test built by hand (any method, headers or
/// body), checked as every other: never a 500, never an internal error.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as JSON; a body that is not JSON fails the test.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("a JSON body ({e}): {}", self.text))
    }

    /// The response as a GraphQL one (its body must be JSON).
    pub fn into_graphql(self) -> GraphQLResponse {
        let body = self.json();
        GraphQLResponse {
            status: self.status,
            headers: self.headers,
            body,
        }
    }
}

/// Fails the test on a 500 or on an `INTERNAL_SERVER_ERROR` anywhere in
/// a JSON body (a batch's members included).
fn assert_no_internal_error(status: u16, text: &str) {
    assert_ne!(status, 500, "{text}");
    let Ok(body) = serde_json::from_str::<Value>(text) else {
        return;
    };
    let internal = body
        .as_array()
        .map_or_else(|| vec![&body], |batch| batch.iter().collect())
        .iter()
        .flat_map(|r| r["errors"].as_array().cloned().unwrap_or_default())
        .any(|e| e["extensions"]["code"] == "INTERNAL_SERVER_ERROR");
    assert!(!internal, "internal error: {body}");
}

async fn checked_raw(response: reqwest::Response) -> RawResponse {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("a readable body");
    assert_no_internal_error(status, &text);
    RawResponse {
        status,
        headers,
        text,
    }
}

/// Every response the suite sees through these helpers is JSON, never a
/// 500, and never carries an internal error.
async fn checked(response: reqwest::Response) -> GraphQLResponse {
    checked_raw(response).await.into_graphql()
}

impl TestApp {
    /// Sends a request built by hand on [`TestApp::client`]; the answer
    /// is checked as every other (see [`RawResponse`]).
    pub async fn send(&self, request: reqwest::RequestBuilder) -> RawResponse {
        checked_raw(request.send().await.expect("request sent")).await
    }

    pub async fn post(&self, body: Value, token: Option<&str>) -> GraphQLResponse {
        let mut request = self.client.post(self.url("/graphql")).json(&body);
        if let Some(token) = token {
            request = request.header("Authorization", format!("Token {token}"));
        }
        let response = request.send().await.expect("request sent");
        checked(response).await
    }

    pub async fn query(&self, query: &str, variables: Value) -> GraphQLResponse {
        self.post(json!({ "query": query, "variables": variables }), None)
            .await
    }

    pub async fn query_as(&self, token: &str, query: &str, variables: Value) -> GraphQLResponse {
        self.post(
            json!({ "query": query, "variables": variables }),
            Some(token),
        )
        .await
    }

    /// The same document with a raw `Authorization` header value.
    pub async fn query_with_authorization(
        &self,
        authorization: &str,
        query: &str,
    ) -> GraphQLResponse {
        let response = self
            .client
            .post(self.url("/graphql"))
            .header("Authorization", authorization)
            .json(&json!({ "query": query }))
            .send()
            .await
            .unwrap();
        checked(response).await
    }
}
