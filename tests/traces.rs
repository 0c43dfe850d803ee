//! Distributed traces, checked at a real OTLP receiver: the server's
//! exporter posts protobuf to `/v1/traces` here, the test decodes it and
//! asserts the span tree of one home-page request that arrives with a W3C
//! `traceparent`. Its own test binary: the exporter belongs to the
//! process-wide subscriber.

#[allow(dead_code, unused_imports)]
#[path = "api/helpers/mod.rs"]
mod helpers;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{Router, body::Bytes, extract::State, http::StatusCode, routing::post};
use conduit::telemetry::traces::{self, Exporter};
use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest, common::v1::any_value, trace::v1::Span,
};
use prost::Message as _;
use serde_json::json;

use helpers::TestApp;

type Received = Arc<Mutex<Vec<(HashMap<String, String>, Span)>>>;

async fn receive(State(received): State<Received>, body: Bytes) -> StatusCode {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return StatusCode::BAD_REQUEST;
    };
    let mut received = received.lock().unwrap();
    for resource_spans in request.resource_spans {
        let resource = resource_spans
            .resource
            .map(|r| attributes(&r.attributes))
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                received.push((resource.clone(), span));
            }
        }
    }
    StatusCode::OK
}

fn attributes(
    pairs: &[opentelemetry_proto::tonic::common::v1::KeyValue],
) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => s.clone(),
                Some(any_value::Value::IntValue(i)) => i.to_string(),
                Some(any_value::Value::BoolValue(b)) => b.to_string(),
                Some(any_value::Value::DoubleValue(d)) => d.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_home_page_request_is_one_trace_of_request_operation_loader_and_sql_spans() {
    let received: Received = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector = format!("http://{}", listener.local_addr().unwrap());
    let router = Router::new()
        .route("/v1/traces", post(receive))
        .with_state(received.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });

    conduit::telemetry::init_with_traces(
        conduit::config::LogFormat::Pretty,
        "info",
        Some(&Exporter {
            endpoint: collector,
            service_name: "conduit-under-test".to_owned(),
        }),
    )
    .unwrap();
    assert!(traces::enabled());
    let app = TestApp::spawn().await;
    let author = app.signed_in_user("author").await;
    for title in ["One", "Two", "Three"] {
        app.create_article(&author.token, title, &["rust", "tracing"])
            .await;
    }

    // A value that reaches PostgreSQL only as a bind value: no span may
    // carry it.
    let bind_value = format!("nobody-{}", uuid::Uuid::new_v4().simple());
    let response = app
        .client
        .post(app.url("/graphql"))
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN}-01"))
        .json(&json!({
            "query": "query HomePage($who: String!) { articles(first: 10) { edges { node { title tagList author { username } } } } tags user(username: $who) { username } }",
            "operationName": "HomePage",
            "variables": { "who": bind_value },
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let request_id = response
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body["data"]["articles"]["edges"].as_array().unwrap().len(),
        3
    );
    assert_eq!(body["data"]["user"], serde_json::Value::Null, "{body}");

    // The batch processor sends every 500 ms; wait for the request's spans.
    let deadline = Instant::now() + Duration::from_secs(10);
    let spans: Vec<(HashMap<String, String>, Span)> = loop {
        traces::flush().await;
        let ours: Vec<_> = received
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, span)| hex(&span.trace_id) == TRACE_ID)
            .cloned()
            .collect();
        if ours.iter().any(|(_, s)| s.name == "POST /graphql") || Instant::now() > deadline {
            break ours;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let names: Vec<&str> = spans.iter().map(|(_, s)| s.name.as_str()).collect();

    // The request continues the caller's trace, with the request id on it.
    let request = spans
        .iter()
        .map(|(_, s)| s)
        .find(|s| s.name == "POST /graphql")
        .unwrap_or_else(|| panic!("a request span among {names:?}"));
    assert_eq!(hex(&request.parent_span_id), CALLER_SPAN);
    let request_attributes = attributes(&request.attributes);
    assert!(
        request_attributes.contains_key("request_id"),
        "{request_attributes:?}"
    );
    if let Some(id) = request_id {
        assert_eq!(request_attributes["request_id"], id);
    }
    assert_eq!(spans[0].0["service.name"], "conduit-under-test");

    // The operation inside it.
    let operation = spans
        .iter()
        .map(|(_, s)| s)
        .find(|s| s.name == "query HomePage")
        .unwrap_or_else(|| panic!("an operation span among {names:?}"));
    assert_eq!(operation.parent_span_id, request.span_id);

    // Loader batches inside the operation: the authors (tags come with
    // the articles' rows).
    let loaders: Vec<&Span> = spans
        .iter()
        .map(|(_, s)| s)
        .filter(|s| s.name.starts_with("loader "))
        .collect();
    let authors = loaders
        .iter()
        .find(|s| s.name == "loader UserById")
        .unwrap_or_else(|| panic!("a `loader UserById` span among {names:?}"));
    assert_eq!(authors.parent_span_id, operation.span_id);

    // SQL statements, each inside the operation or one of its loaders,
    // with its text and no bind values.
    let statements: Vec<&Span> = spans
        .iter()
        .map(|(_, s)| s)
        .filter(|s| s.name.starts_with("sql "))
        .collect();
    assert!(statements.len() >= 3, "{names:?}");
    let mut under_loaders = 0;
    for statement in &statements {
        let parent = &statement.parent_span_id;
        let in_loader = loaders.iter().any(|l| &l.span_id == parent);
        under_loaders += usize::from(in_loader);
        assert!(
            in_loader || *parent == operation.span_id,
            "{} has a parent outside the operation",
            statement.name
        );
        let text = &attributes(&statement.attributes)["db.statement"];
        assert!(text.contains("FROM") || text.contains("SELECT"), "{text}");
    }
    assert!(under_loaders >= 1, "{names:?}");
    // The statement that looked the name up is there, with its text...
    let texts: Vec<String> = statements
        .iter()
        .map(|s| attributes(&s.attributes)["db.statement"].clone())
        .collect();
    assert!(
        texts
            .iter()
            .any(|t| t.contains("username") && t.contains('$')),
        "no statement looked the user up: {texts:?}"
    );
    // ...and the name itself is nowhere: in no attribute, event or name
    // of any span exported, nor of their resources.
    for (resource, span) in received.lock().unwrap().iter() {
        let mut carried: Vec<String> = attributes(&span.attributes).into_values().collect();
        carried.extend(resource.values().cloned());
        carried.push(span.name.clone());
        for event in &span.events {
            carried.push(event.name.clone());
            carried.extend(attributes(&event.attributes).into_values());
        }
        for value in carried {
            assert!(
                !value.contains(&bind_value),
                "span {} carries the bind value: {value}",
                span.name
            );
        }
    }

    // Every span has its timing, inside its parent's.
    for span in [request, operation]
        .into_iter()
        .chain(loaders.iter().copied())
        .chain(statements.iter().copied())
    {
        assert!(
            span.end_time_unix_nano >= span.start_time_unix_nano,
            "{}",
            span.name
        );
    }
    for child in loaders.iter().chain(statements.iter()) {
        assert!(child.start_time_unix_nano >= operation.start_time_unix_nano);
        assert!(child.end_time_unix_nano <= request.end_time_unix_nano);
    }
}
