//! Hostile HTTP: bodies that are too big, not JSON, not UTF-8, or of the
//! wrong type get a clear error, never a 500, and change nothing. Plus
//! CORS and security headers.

use conduit::config::CorsOrigins;
use serde_json::{Value, json};

use crate::helpers::TestApp;

const SIGN_UP: &str = r#"{"query":"mutation { createUser(input: {username: \"jake\", email: \"jake@example.com\", password: \"password123\"}) { errors { code } } }"}"#;

async fn raw(app: &TestApp, content_type: Option<&str>, body: Vec<u8>) -> (u16, String) {
    let mut request = app.client.post(app.url("/graphql")).body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let response = app.send(request).await;
    (response.status, response.text)
}

fn error(body: &str) -> Value {
    let body: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("JSON body: {body}"));
    body["errors"][0].clone()
}

#[tokio::test]
async fn only_json_bodies_are_executed() {
    let app = TestApp::spawn().await;
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        let (status, body) = raw(&app, content_type, SIGN_UP.into()).await;
        assert_eq!(status, 415, "{content_type:?}");
        assert_eq!(error(&body)["extensions"]["code"], "BAD_USER_INPUT");
    }
    let (status, _) = raw(
        &app,
        Some("application/json; charset=utf-8"),
        SIGN_UP.into(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        app.db.count("SELECT count(*) FROM users").await,
        1,
        "only the JSON request ran"
    );
}

#[tokio::test]
async fn broken_bodies_are_bad_input() {
    let app = TestApp::spawn().await;
    let cases: [(&str, Vec<u8>); 4] = [
        ("truncated JSON", br#"{"query": "#.to_vec()),
        ("not JSON", b"mutation { createUser }".to_vec()),
        ("non-UTF-8", b"{\"query\":\"{ tags \xff\xfe }\"}".to_vec()),
        ("wrong shape", br#"{"query": 42}"#.to_vec()),
    ];
    for (name, body) in cases {
        let (status, text) = raw(&app, Some("application/json"), body).await;
        assert_eq!(status, 400, "{name}: {text}");
        let error = error(&text);
        assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT", "{name}");
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .starts_with("the request body is not a GraphQL request"),
            "{name}"
        );
    }
    assert_eq!(app.db.count("SELECT count(*) FROM users").await, 0);
}

#[tokio::test]
async fn ten_megabyte_bodies_are_refused() {
    let app = TestApp::spawn().await;
    let padding = "a".repeat(10 * 1024 * 1024);
    let body = format!(r#"{{"query":"{{ tags }}","variables":{{"x":"{padding}"}}}}"#);
    let (status, _) = raw(&app, Some("application/json"), body.clone().into_bytes()).await;
    assert_eq!(status, 413);

    // Without a Content-Length the limit still holds while streaming.
    let stream = futures_util::stream::iter(
        body.into_bytes()
            .chunks(64 * 1024)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let response = app
        .client
        .post(app.url("/graphql"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let text = response.text().await.unwrap();
    assert_eq!(
        error(&text)["message"],
        "the request body is too large: the limit is 1048576 bytes"
    );
    assert_eq!(error(&text)["extensions"]["code"], "BAD_USER_INPUT");
}

/// Writes one HTTP/1.1 request on `stream` and reads the response to its
/// end: the status and whether the server keeps the connection open.
async fn exchange(
    stream: &mut tokio::net::TcpStream,
    head: &str,
    body: &[u8],
) -> (u16, bool, String) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    stream.write_all(head.as_bytes()).await.expect("head sent");
    // Like Node's fetch: the whole body goes out before the answer is read.
    stream
        .write_all(body)
        .await
        .expect("body sent, not a broken pipe");
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).await.unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let (mut length, mut keep_alive) = (0, true);
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).await.unwrap();
        let line = line.trim_end().to_ascii_lowercase();
        if line.is_empty() {
            break;
        }
        if let Some(v) = line.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
        if line == "connection: close" {
            keep_alive = false;
        }
    }
    let mut text = vec![0; length];
    reader.read_exact(&mut text).await.unwrap();
    (status, keep_alive, String::from_utf8(text).unwrap())
}

#[tokio::test]
async fn an_oversized_body_on_a_kept_alive_connection_reads_its_413() {
    let app = TestApp::spawn().await;
    let host = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let small = br#"{"query":"{ tags }"}"#;
    let post = |length: usize| {
        format!(
            "POST /graphql HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\ncontent-length: {length}\r\n\r\n"
        )
    };
    let big = vec![b' '; 10 * 1024 * 1024];
    for round in 0..5 {
        let (status, keep_alive, _) = exchange(&mut stream, &post(small.len()), small).await;
        assert_eq!((status, keep_alive), (200, true), "round {round}");
        let (status, keep_alive, text) = exchange(&mut stream, &post(big.len()), &big).await;
        assert_eq!((status, keep_alive), (413, true), "round {round}: {text}");
        assert_eq!(error(&text)["extensions"]["code"], "BAD_USER_INPUT");
    }
}

#[tokio::test]
async fn a_client_that_waits_for_continue_gets_its_413_without_sending() {
    let app = TestApp::spawn().await;
    let host = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let head = format!(
        "POST /graphql HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nexpect: 100-continue\r\n\r\n",
        100 * 1024 * 1024
    );
    let (status, keep_alive, text) = exchange(&mut stream, &head, b"").await;
    assert_eq!((status, keep_alive), (413, false), "{text}");
}

#[tokio::test]
async fn responses_carry_security_headers() {
    let app = TestApp::spawn().await;
    let response = app
        .send(
            app.client
                .post(app.url("/graphql"))
                .json(&json!({ "query": "{ tags }" })),
        )
        .await;
    let headers = &response.headers;
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(
        headers["content-security-policy"],
        "default-src 'none'; frame-ancestors 'none'"
    );
    assert!(
        headers.get("strict-transport-security").is_none(),
        "HSTS only in production"
    );
}

async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    app.client
        .request(reqwest::Method::OPTIONS, app.url("/graphql"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn cors_admits_only_configured_origins() {
    let open = TestApp::spawn().await;
    let response = preflight(&open, "http://localhost:3000").await;
    assert_eq!(response.headers()["access-control-allow-origin"], "*");

    let strict = TestApp::spawn_with(|c| {
        c.cors_allowed_origins = Some(CorsOrigins::List(vec![
            "https://conduit.example.com".into(),
        ]))
    })
    .await;
    let allowed = preflight(&strict, "https://conduit.example.com").await;
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://conduit.example.com"
    );
    let headers = allowed.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        headers.contains("authorization") && headers.contains("content-type"),
        "{headers}"
    );
    // A frontend on another origin can read why its token was ignored and
    // when to retry.
    let response = strict
        .client
        .post(strict.url("/graphql"))
        .header("origin", "https://conduit.example.com")
        .header("authorization", "Token expired.or.forged")
        .json(&json!({ "query": "{ tags }" }))
        .send()
        .await
        .unwrap();
    let exposed = response.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_owned();
    for name in [
        "www-authenticate",
        "retry-after",
        "x-ratelimit-remaining",
        "x-request-id",
    ] {
        assert!(exposed.contains(name), "{name} in {exposed}");
    }
    let refused = preflight(&strict, "https://evil.example").await;
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}
