//! Every way an access token can be bad makes an anonymous request, served
//! as one, that is told why: `WWW-Authenticate: Bearer
//! error="invalid_token"` and a code in the top-level `extensions`
//! (`TOKEN_EXPIRED`, `SESSION_REVOKED`, `TOKEN_INVALID`). Frontends that
//! keep only the access token go on working after it expires.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::Utc;
use conduit::{
    auth::jwt::{AUDIENCE, ISSUER, JwtKeys, key_id},
    config::List,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::helpers::{
    JWT_SECRET, TestApp, assert_no_viewer, assert_served_anonymously, assert_viewer,
};

const QUERY: &str = "{ viewer { user { username } } }";

fn sign(claims: &Value, secret: &str, kid: Option<String>) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = kid;
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn claims_for(app_user: &str, session: &str) -> Value {
    let now = Utc::now().timestamp();
    json!({ "sub": app_user, "sid": session, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600 })
}

/// The `sub` and `sid` inside a genuine token.
fn subject_and_session(token: &str) -> (String, String) {
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    (
        claims["sub"].as_str().unwrap().into(),
        claims["sid"].as_str().unwrap().into(),
    )
}

#[tokio::test]
async fn both_authorization_schemes_work() {
    let app = TestApp::spawn().await;
    let session = app.signed_in_user("jake").await;
    for scheme in ["Token", "Bearer", "bearer"] {
        let response = app
            .query_with_authorization(&format!("{scheme} {}", session.token), QUERY)
            .await;
        assert_eq!(
            response.body["data"]["viewer"]["user"]["username"], "jake",
            "{scheme}"
        );
    }
}

#[tokio::test]
async fn malformed_headers_are_ignored_and_said_to_be_invalid() {
    let app = TestApp::spawn().await;
    for header in [
        "Token",
        "Token ",
        "Basic amFrZTpwdw==",
        "garbage",
        "Token not.a.jwt",
        "Bearer abc",
    ] {
        let response = app.query_with_authorization(header, QUERY).await;
        assert_no_viewer(&response, "TOKEN_INVALID");
    }
}

#[tokio::test]
async fn forged_expired_and_misaddressed_tokens_name_nobody() {
    let app = TestApp::spawn().await;
    let session = app.signed_in_user("jake").await;
    let (sub, sid) = subject_and_session(&session.token);
    let kid = Some(key_id(JWT_SECRET));
    let now = Utc::now().timestamp();
    let with = |patch: Value| {
        let mut claims = claims_for(&sub, &sid);
        for (k, v) in patch.as_object().unwrap() {
            claims[k] = v.clone();
        }
        claims
    };

    // Control: a token built the same way with the right key is accepted.
    let control = sign(&claims_for(&sub, &sid), JWT_SECRET, kid.clone());
    assert_viewer(&app.viewer_username(&control).await);

    let mut without_sub = claims_for(&sub, &sid);
    without_sub.as_object_mut().unwrap().remove("sub");
    let mut without_exp = claims_for(&sub, &sid);
    without_exp.as_object_mut().unwrap().remove("exp");

    let cases = [
        (
            "expired",
            "TOKEN_EXPIRED",
            sign(
                &with(json!({ "iat": now - 3600, "exp": now - 1800 })),
                JWT_SECRET,
                kid.clone(),
            ),
        ),
        (
            "wrong issuer",
            "TOKEN_INVALID",
            sign(
                &with(json!({ "iss": "someone-else" })),
                JWT_SECRET,
                kid.clone(),
            ),
        ),
        (
            "wrong audience",
            "TOKEN_INVALID",
            sign(
                &with(json!({ "aud": "another-app" })),
                JWT_SECRET,
                kid.clone(),
            ),
        ),
        (
            "issued in the future",
            "TOKEN_INVALID",
            sign(
                &with(json!({ "iat": now + 3600, "exp": now + 7200 })),
                JWT_SECRET,
                kid.clone(),
            ),
        ),
        (
            "no sub",
            "TOKEN_INVALID",
            sign(&without_sub, JWT_SECRET, kid.clone()),
        ),
        (
            "no exp",
            "TOKEN_INVALID",
            sign(&without_exp, JWT_SECRET, kid.clone()),
        ),
        (
            "no kid",
            "TOKEN_INVALID",
            sign(&claims_for(&sub, &sid), JWT_SECRET, None),
        ),
        (
            "forged with another secret, our kid",
            "TOKEN_INVALID",
            sign(&claims_for(&sub, &sid), "another-secret", kid.clone()),
        ),
        (
            "forged with another secret and kid",
            "TOKEN_INVALID",
            sign(
                &claims_for(&sub, &sid),
                "another-secret",
                Some(key_id("another-secret")),
            ),
        ),
        (
            "unknown session",
            "SESSION_REVOKED",
            sign(
                &with(json!({ "sid": uuid::Uuid::new_v4() })),
                JWT_SECRET,
                kid.clone(),
            ),
        ),
        (
            "session of another user",
            "SESSION_REVOKED",
            sign(
                &with(json!({ "sub": uuid::Uuid::new_v4() })),
                JWT_SECRET,
                kid.clone(),
            ),
        ),
    ];
    for (name, code, token) in cases {
        let response = app.viewer_username(&token).await;
        assert_eq!(
            response.body["extensions"]["authentication"]["code"], code,
            "{name}: {:?}",
            response.body
        );
        assert_no_viewer(&response, code);
    }
}

/// HMAC-SHA256 (RFC 2104), to forge tokens by hand.
fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut block = [0u8; 64];
    block[..key.len()].copy_from_slice(key);
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

#[test]
fn hand_made_hmac_matches_the_library() {
    let token = sign(&json!({ "sub": "x" }), JWT_SECRET, None);
    let (input, signature) = token.rsplit_once('.').unwrap();
    assert_eq!(
        URL_SAFE_NO_PAD.encode(hmac_sha256(JWT_SECRET.as_bytes(), input.as_bytes())),
        signature
    );
}

#[tokio::test]
async fn tampered_and_unsigned_tokens_name_nobody() {
    let app = TestApp::spawn().await;
    let jake = app.signed_in_user("jake").await;
    let anne = app.signed_in_user("anne").await;
    let (anne_sub, anne_sid) = subject_and_session(&anne.token);
    let parts: Vec<&str> = jake.token.split('.').collect();

    // Jake's signature on a payload claiming to be Anne.
    let payload = URL_SAFE_NO_PAD.encode(claims_for(&anne_sub, &anne_sid).to_string());
    let tampered = format!("{}.{payload}.{}", parts[0], parts[2]);
    assert_no_viewer(&app.viewer_username(&tampered).await, "TOKEN_INVALID");

    // alg: none, with and without a signature part.
    let none_header = URL_SAFE_NO_PAD
        .encode(json!({ "alg": "none", "typ": "JWT", "kid": key_id(JWT_SECRET) }).to_string());
    for token in [
        format!("{none_header}.{payload}."),
        format!("{none_header}.{payload}"),
    ] {
        assert_no_viewer(&app.viewer_username(&token).await, "TOKEN_INVALID");
    }

    // RS256 in the header over an HMAC made with our secret (the HS/RS
    // confusion attack run backwards): the algorithm is pinned, so refused.
    let rs_header = URL_SAFE_NO_PAD
        .encode(json!({ "alg": "RS256", "typ": "JWT", "kid": key_id(JWT_SECRET) }).to_string());
    let signing_input = format!("{rs_header}.{payload}");
    let mac = hmac_sha256(JWT_SECRET.as_bytes(), signing_input.as_bytes());
    let confused = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(mac));
    assert_no_viewer(&app.viewer_username(&confused).await, "TOKEN_INVALID");

    // HS512 with the right secret: the algorithm is pinned, so still refused.
    let mut header = Header::new(Algorithm::HS512);
    header.kid = Some(key_id(JWT_SECRET));
    let other_alg = jsonwebtoken::encode(
        &header,
        &claims_for(&anne_sub, &anne_sid),
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap();
    assert_no_viewer(&app.viewer_username(&other_alg).await, "TOKEN_INVALID");
}

/// Jake's token, as it will look once its time is up.
fn expired_token_of(session_token: &str) -> String {
    let (sub, sid) = subject_and_session(session_token);
    let now = Utc::now().timestamp();
    let mut claims = claims_for(&sub, &sid);
    claims["iat"] = json!(now - 3600);
    claims["exp"] = json!(now - 2700);
    sign(&claims, JWT_SECRET, Some(key_id(JWT_SECRET)))
}

#[tokio::test]
async fn an_expired_token_still_reads_public_data() {
    let app = TestApp::spawn().await;
    let jake = app.signed_in_user("jake").await;
    app.create_article(&jake.token, "Still readable", &["rust"])
        .await;
    let expired = expired_token_of(&jake.token);

    let response = app
        .query_as(
            &expired,
            "{ articles(first: 5) { edges { node { title viewerHasFavorited author { username followedByViewer } } } } tags viewer { user { username } } }",
            json!({}),
        )
        .await;
    assert_served_anonymously(&response, "TOKEN_EXPIRED");
    assert_eq!(
        response.body["data"],
        json!({
            "articles": { "edges": [{ "node": {
                "title": "Still readable",
                "viewerHasFavorited": false,
                "author": { "username": "jake", "followedByViewer": false }
            } }] },
            "tags": ["rust"],
            "viewer": null
        })
    );
    assert_eq!(
        response.header("www-authenticate"),
        Some(
            "Bearer error=\"invalid_token\", error_description=\"the access token has expired; refresh it or sign in again\""
        )
    );
    assert_eq!(
        response.body["extensions"]["authentication"]["message"],
        "the access token has expired; refresh it or sign in again"
    );
}

#[tokio::test]
async fn an_expired_token_gets_nothing_a_user_needs_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let jake = app.signed_in_user("jake").await;
    let expired = expired_token_of(&jake.token);
    let response = app
        .query_as(
            &expired,
            "mutation($input: CreateArticleInput!) { createArticle(input: $input) { article { slug } } }",
            json!({ "input": { "title": "Nope", "description": "d", "body": "b", "tagList": [] } }),
        )
        .await;
    assert_eq!(response.error_code(), Some("UNAUTHENTICATED"));
    assert_eq!(response.body["data"]["createArticle"], json!(null));
    assert_eq!(
        response.body["extensions"]["authentication"]["code"],
        "TOKEN_EXPIRED"
    );
    assert_eq!(app.db.count("SELECT count(*) FROM articles").await, 0);
}

#[tokio::test]
async fn a_batch_with_a_bad_token_is_told_in_every_response() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .post(app.url("/graphql"))
        .header("Authorization", "Token nonsense")
        .json(&json!([{ "query": "{ tags }" }, { "query": "{ viewer { user { username } } }" }]))
        .send()
        .await
        .unwrap();
    assert!(
        response
            .headers()
            .get("www-authenticate")
            .is_some_and(|v| v.to_str().unwrap().contains("invalid_token"))
    );
    let body: Value = response.json().await.unwrap();
    for item in body.as_array().unwrap() {
        assert_eq!(
            item["extensions"]["authentication"]["code"],
            "TOKEN_INVALID"
        );
        assert!(item["errors"].is_null(), "{item}");
    }
}

#[tokio::test]
async fn no_token_is_anonymous_without_a_challenge() {
    let app = TestApp::spawn().await;
    let response = app
        .query("{ viewer { user { username } } }", json!({}))
        .await;
    assert_eq!(response.body, json!({ "data": { "viewer": null } }));
    assert!(response.header("www-authenticate").is_none());
}

#[tokio::test]
async fn tokens_from_rotated_keys_verify_until_removed() {
    let app = TestApp::spawn().await;
    let session = app.signed_in_user("jake").await;
    let (sub, sid) = subject_and_session(&session.token);
    let old = JwtKeys::new(
        "the-previous-secret",
        &[],
        std::time::Duration::from_secs(600),
    );
    let (old_token, _) = old
        .issue(sub.parse().unwrap(), sid.parse().unwrap(), Utc::now())
        .unwrap();
    assert_no_viewer(&app.viewer_username(&old_token).await, "TOKEN_INVALID");

    let rotated =
        TestApp::spawn_with(|c| c.jwt_previous_secrets = List(vec!["the-previous-secret".into()]))
            .await;
    let session = rotated.signed_in_user("jake").await;
    let (sub, sid) = subject_and_session(&session.token);
    let (old_token, _) = old
        .issue(sub.parse().unwrap(), sid.parse().unwrap(), Utc::now())
        .unwrap();
    assert_viewer(&rotated.viewer_username(&old_token).await);
}

/// Tokens that look forged are logged at `warn` (an operator may want to
/// know someone is trying keys); an expired one, which every client sends
/// sooner or later, is not. Read from a server process's JSON log.
#[tokio::test]
async fn forged_tokens_are_logged_at_warn_and_expired_ones_are_not() {
    let db = crate::helpers::TestDatabase::create().await;
    let crate::helpers::ServerProcess {
        child: _child,
        url,
        mut lines,
    } = crate::helpers::ServerProcess::start(&db, &[]).await;
    let (sub, sid) = (
        uuid::Uuid::new_v4().to_string(),
        uuid::Uuid::new_v4().to_string(),
    );
    let viewer = async |token: &str| {
        let response = reqwest::Client::new()
            .post(format!("{url}/graphql"))
            .header("authorization", format!("Token {token}"))
            .json(&json!({ "query": QUERY }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        body["extensions"]["authentication"]["code"].clone()
    };
    // The next line logged at WARN.
    let mut next_warning = async || {
        tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                let entry: Value = serde_json::from_str(&line).unwrap_or_default();
                if entry["level"] == "WARN" {
                    return entry;
                }
            }
            panic!("the server stopped logging");
        })
        .await
        .expect("a warning within 10s")
    };

    let now = Utc::now().timestamp();
    let mut expired = claims_for(&sub, &sid);
    expired["iat"] = json!(now - 1200);
    expired["exp"] = json!(now - 600);
    let expired = sign(&expired, JWT_SECRET, Some(key_id(JWT_SECRET)));
    assert_eq!(viewer(&expired).await, "TOKEN_EXPIRED");
    let another_key = sign(
        &claims_for(&sub, &sid),
        "another-secret",
        Some(key_id(JWT_SECRET)),
    );
    assert_eq!(viewer(&another_key).await, "TOKEN_INVALID");
    // The expired token came first: had it been logged at warn, its line
    // would be the first warning.
    let warning = next_warning().await;
    assert!(
        warning["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("access token refused")),
        "{warning}"
    );

    // Another algorithm than the one we sign with, with our key.
    let mut header = Header::new(Algorithm::HS512);
    header.kid = Some(key_id(JWT_SECRET));
    let other_algorithm = jsonwebtoken::encode(
        &header,
        &claims_for(&sub, &sid),
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap();
    assert_eq!(viewer(&other_algorithm).await, "TOKEN_INVALID");
    let warning = next_warning().await;
    assert!(
        warning["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("access token refused")),
        "{warning}"
    );
}
