//! Static limits: hostile documents are refused before they run, with the
//! rule, the measured value and the limit, and change nothing.

use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp};

fn assert_too_complex(
    response: &crate::helpers::GraphQLResponse,
    rule: &str,
    measured: u64,
    limit: u64,
) {
    assert_eq!(
        response.body["errors"][0]["extensions"],
        json!({ "code": "QUERY_TOO_COMPLEX", "rule": rule, "measured": measured, "limit": limit }),
        "{:?}",
        response.body
    );
    assert!(response.body["data"].is_null(), "{:?}", response.body);
}

#[tokio::test]
async fn deep_nesting_is_refused() {
    let app = TestApp::spawn().await;
    let mut query = String::from("username");
    for _ in 0..8 {
        query = format!("articles {{ edges {{ node {{ author {{ {query} }} }} }} }}");
    }
    let response = app
        .query(
            &format!("{{ user(username: \"x\") {{ {query} }} }}"),
            json!({}),
        )
        .await;
    assert_too_complex(&response, "depth", 34, 15);
}

#[tokio::test]
async fn alias_floods_are_refused() {
    let app = TestApp::spawn().await;
    let fields: String = (0..31).map(|i| format!("a{i}: tags ")).collect();
    let response = app.query(&format!("{{ {fields} }}"), json!({})).await;
    assert_too_complex(&response, "aliases", 31, 30);
}

#[tokio::test]
async fn too_many_root_fields_are_refused() {
    let app = TestApp::spawn().await;
    let fields = "tags __typename ".repeat(11);
    let response = app.query(&format!("{{ {fields} }}"), json!({})).await;
    assert_too_complex(&response, "rootFields", 22, 20);
}

#[tokio::test]
async fn directive_floods_are_refused() {
    let app = TestApp::spawn().await;
    let directives = "@include(if: true) ".repeat(21);
    let response = app
        .query(&format!("{{ tags {directives} }}"), json!({}))
        .await;
    assert_too_complex(&response, "directives", 21, 20);
}

#[tokio::test]
async fn oversized_documents_are_refused_by_tokens() {
    let app = TestApp::spawn().await;
    let padding = "__typename ".repeat(2100);
    let response = app
        .query(&format!("{{ viewer {{ {padding} }} }}"), json!({}))
        .await;
    assert_too_complex(&response, "tokens", 2001, 2000);
}

#[tokio::test]
async fn huge_pages_of_pages_cost_too_much() {
    let app = TestApp::spawn().await;
    let query =
        "{ articles(first: 100) { edges { node { comments { body author { username } } } } } }";
    let response = app.query(query, json!({})).await;
    let extensions = &response.body["errors"][0]["extensions"];
    assert_eq!(
        extensions["code"], "QUERY_TOO_COMPLEX",
        "{:?}",
        response.body
    );
    assert_eq!(extensions["rule"], "cost");
    assert!(extensions["measured"].as_u64().unwrap() > 10_000);

    let home = "{ articles(first: 100) { edges { node { slug title tagList favoritesCount viewerHasFavorited author { username followedByViewer followers { totalCount } } } } } }";
    let response = app.query(home, json!({})).await;
    assert!(
        response.body["errors"].is_null(),
        "the largest home page fits: {:?}",
        response.body
    );

    let response = app
        .query(
            "{ articles(first: 1000000) { edges { cursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(response.error_code(), Some("BAD_USER_INPUT"));
}

#[tokio::test]
async fn graphiql_introspection_fits_the_limits() {
    let app = TestApp::spawn().await;
    let introspection = "query IntrospectionQuery { __schema { queryType { name } mutationType { name } subscriptionType { name }
        types { ...FullType } directives { name description locations args { ...InputValue } } } }
      fragment FullType on __Type { kind name description
        fields(includeDeprecated: true) { name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
        inputFields { ...InputValue } interfaces { ...TypeRef }
        enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason } possibleTypes { ...TypeRef } }
      fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
      fragment TypeRef on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name
        ofType { kind name ofType { kind name ofType { kind name } } } } } } } }";
    let response = app.query(introspection, json!({})).await;
    assert!(
        response.body["errors"].is_null(),
        "{:?}",
        response.body["errors"]
    );
    assert_eq!(
        response.body["data"]["__schema"]["queryType"]["name"],
        "Query"
    );
}

#[tokio::test]
async fn a_batch_of_a_thousand_sign_ins_is_refused_whole() {
    let app = TestApp::spawn().await;
    app.sign_up("jake", "jake@example.com").await;
    let batch: Vec<Value> = (0..1000)
        .map(|i| json!({
            "query": "mutation($i: SignInUserInput!) { signInUser(input: $i) { token } }",
            "variables": { "i": { "email": "jake@example.com", "password": format!("guess{i}") } }
        }))
        .collect();
    let response = app.post(json!(batch), None).await;
    assert_eq!(response.status, 400);
    assert_too_complex(&response, "batchSize", 1000, 10);
    assert_eq!(app.db.count("SELECT count(*) FROM sessions").await, 0);

    let small: Vec<Value> = (0..2)
        .map(|_| json!({ "query": "mutation($i: SignInUserInput!) { signInUser(input: $i) { errors { code } } }",
                         "variables": { "i": { "email": "jake@example.com", "password": PASSWORD } } }))
        .collect();
    let response = app.post(json!(small), None).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body.as_array().unwrap().len(), 2);
    assert_eq!(app.db.count("SELECT count(*) FROM sessions").await, 2);
}

#[tokio::test]
async fn fragment_cycles_and_malformed_operations_are_clear_errors() {
    let app = TestApp::spawn().await;
    let cases = [
        "{ viewer { ...A } } fragment A on Viewer { ...B } fragment B on Viewer { ...A }",
        "{ viewer { user { nope } } }",
        "{ articles(first: \"ten\") { edges { cursor } } }",
        "query A { tags } query B { tags }",
        "{ tags",
    ];
    for query in cases {
        let response = app.query(query, json!({})).await;
        assert!(
            response.status == 200 || response.status == 400,
            "{query}: {}",
            response.status
        );
        let message = response.body["errors"][0]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(!message.is_empty(), "{query}: {:?}", response.body);
        assert!(response.body["data"].is_null(), "{query}");
    }
    let wrong_variable = app
        .query(
            "query($n: Int) { articles(first: $n) { edges { cursor } } }",
            json!({ "n": "many" }),
        )
        .await;
    assert!(
        wrong_variable.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("n"),
        "{:?}",
        wrong_variable.body
    );
    let unknown_operation = app
        .post(
            json!({ "query": "query A { tags }", "operationName": "B" }),
            None,
        )
        .await;
    assert!(
        unknown_operation.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("B")
    );
}
