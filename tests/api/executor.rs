//! The GraphQL pipeline with no HTTP: the same authentication, limits and
//! error coding that `/graphql` gets, driven directly, as any transport
//! (a WebSocket, say) would drive it.

use async_graphql::{BatchResponse, Request};
use conduit::{
    auth::TokenRejection,
    config::Config,
    graphql::{
        build_schema,
        cache::ResponseCache,
        executor::{Answer, Caller, Executed, Executor, Operations},
        persisted::PersistedDocuments,
    },
    redis::Backend,
};
use serde_json::{Value, json};

use crate::helpers::{TestApp, test_config};

fn executor(app: &TestApp, configure: impl FnOnce(&mut Config)) -> Executor {
    let config = test_config(&app.db.url, configure);
    Executor::new(
        app.state.clone(),
        build_schema(Some(app.state.clone()), &config),
        PersistedDocuments::new(Some(&Backend::Memory), None).unwrap(),
        ResponseCache::new(Some(&Backend::Memory), &config.response_cache),
        &config,
    )
}

async fn run(executor: &Executor, query: &str, authorization: Option<&str>) -> (Executed, Value) {
    let operation = executor.prepare(Request::new(query)).await.unwrap();
    let mut executed = executor
        .execute(
            Operations::Single(operation),
            Caller {
                authorization,
                address: [127, 0, 0, 1].into(),
                request_id: "pipeline-test",
            },
        )
        .await;
    let body = match executed.result.as_mut() {
        Ok(Answer::Responses(BatchResponse::Single(response))) => {
            serde_json::to_value(&*response).unwrap()
        }
        Ok(Answer::Stored(stored)) => serde_json::from_slice(&stored.body).unwrap(),
        other => panic!("one response: {:?}", other.is_ok()),
    };
    (executed, body)
}

#[tokio::test]
async fn the_pipeline_authenticates_limits_and_codes_without_http() {
    let app = TestApp::spawn().await;
    let jake = app.signed_in_user("jake").await;
    let executor = executor(&app, |c| c.limits.max_depth = 3);
    let query = "{ tags viewer { user { username } } }";

    let token = format!("Token {}", jake.token);
    let (executed, body) = run(&executor, query, Some(&token)).await;
    assert_eq!(
        body["data"],
        json!({ "tags": [], "viewer": { "user": { "username": "jake" } } })
    );
    assert_eq!(executed.rejected, None);

    let (executed, body) = run(&executor, query, Some("Token nonsense")).await;
    assert_eq!(body["data"], json!({ "tags": [], "viewer": null }));
    assert_eq!(executed.rejected, Some(TokenRejection::Invalid));
    assert_eq!(
        body["extensions"]["authentication"]["code"],
        "TOKEN_INVALID"
    );
    assert!(executed.codes.is_empty());

    let (executed, body) = run(&executor, "{ tags", None).await;
    assert_eq!(executed.codes, ["GRAPHQL_PARSE_FAILED"]);
    assert!(body["errors"][0]["message"].is_string());

    let (executed, _) = run(
        &executor,
        "{ articles { edges { node { author { username } } } } }",
        None,
    )
    .await;
    assert_eq!(executed.codes, ["QUERY_TOO_COMPLEX"]);

    assert!(executor.check_batch_size(11).is_err());
    assert!(executor.check_batch_size(10).is_ok());
}
