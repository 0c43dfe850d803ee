//! Every way an access token can be bad is `UNAUTHENTICATED`, never anonymous.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::Utc;
use conduit::auth::jwt::{AUDIENCE, ISSUER, JwtKeys, key_id};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::helpers::{JWT_SECRET, TestApp, assert_unauthenticated};

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
async fn malformed_headers_are_refused() {
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
        assert_unauthenticated(&response);
    }
}

#[tokio::test]
async fn forged_expired_and_misaddressed_tokens_are_refused() {
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
    assert_eq!(app.viewer_username(&control).await.status, 200);

    let mut without_sub = claims_for(&sub, &sid);
    without_sub.as_object_mut().unwrap().remove("sub");
    let mut without_exp = claims_for(&sub, &sid);
    without_exp.as_object_mut().unwrap().remove("exp");

    let cases = [
        (
            "expired",
            sign(
                &with(json!({ "iat": now - 3600, "exp": now - 1800 })),
                JWT_SECRET,
                kid.clone(),
            ),
        ),
        (
            "wrong issuer",
            sign(
                &with(json!({ "iss": "someone-else" })),
                JWT_SECRET,
                kid.clone(),
            ),
        ),
        (
            "wrong audience",
            sign(
                &with(json!({ "aud": "another-app" })),
                JWT_SECRET,
                kid.clone(),
            ),
        ),
        (
            "issued in the future",
            sign(
                &with(json!({ "iat": now + 3600, "exp": now + 7200 })),
                JWT_SECRET,
                kid.clone(),
            ),
        ),
        ("no sub", sign(&without_sub, JWT_SECRET, kid.clone())),
        ("no exp", sign(&without_exp, JWT_SECRET, kid.clone())),
        ("no kid", sign(&claims_for(&sub, &sid), JWT_SECRET, None)),
        (
            "forged with another secret, our kid",
            sign(&claims_for(&sub, &sid), "another-secret", kid.clone()),
        ),
        (
            "forged with another secret and kid",
            sign(
                &claims_for(&sub, &sid),
                "another-secret",
                Some(key_id("another-secret")),
            ),
        ),
        (
            "unknown session",
            sign(
                &with(json!({ "sid": uuid::Uuid::new_v4() })),
                JWT_SECRET,
                kid.clone(),
            ),
        ),
        (
            "session of another user",
            sign(
                &with(json!({ "sub": uuid::Uuid::new_v4() })),
                JWT_SECRET,
                kid.clone(),
            ),
        ),
    ];
    for (name, token) in cases {
        let response = app.viewer_username(&token).await;
        assert_eq!(response.status, 401, "{name}: {:?}", response.body);
        assert_unauthenticated(&response);
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
async fn tampered_and_unsigned_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let jake = app.signed_in_user("jake").await;
    let anne = app.signed_in_user("anne").await;
    let (anne_sub, anne_sid) = subject_and_session(&anne.token);
    let parts: Vec<&str> = jake.token.split('.').collect();

    // Jake's signature on a payload claiming to be Anne.
    let payload = URL_SAFE_NO_PAD.encode(claims_for(&anne_sub, &anne_sid).to_string());
    let tampered = format!("{}.{payload}.{}", parts[0], parts[2]);
    assert_unauthenticated(&app.viewer_username(&tampered).await);

    // alg: none, with and without a signature part.
    let none_header = URL_SAFE_NO_PAD
        .encode(json!({ "alg": "none", "typ": "JWT", "kid": key_id(JWT_SECRET) }).to_string());
    for token in [
        format!("{none_header}.{payload}."),
        format!("{none_header}.{payload}"),
    ] {
        assert_unauthenticated(&app.viewer_username(&token).await);
    }

    // RS256 in the header over an HMAC made with our secret (the HS/RS
    // confusion attack run backwards): the algorithm is pinned, so refused.
    let rs_header = URL_SAFE_NO_PAD
        .encode(json!({ "alg": "RS256", "typ": "JWT", "kid": key_id(JWT_SECRET) }).to_string());
    let signing_input = format!("{rs_header}.{payload}");
    let mac = hmac_sha256(JWT_SECRET.as_bytes(), signing_input.as_bytes());
    let confused = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(mac));
    assert_unauthenticated(&app.viewer_username(&confused).await);

    // HS512 with the right secret: the algorithm is pinned, so still refused.
    let mut header = Header::new(Algorithm::HS512);
    header.kid = Some(key_id(JWT_SECRET));
    let other_alg = jsonwebtoken::encode(
        &header,
        &claims_for(&anne_sub, &anne_sid),
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap();
    assert_unauthenticated(&app.viewer_username(&other_alg).await);
}

#[tokio::test]
async fn a_bad_token_fails_even_a_public_query() {
    let app = TestApp::spawn().await;
    let response = app
        .query_with_authorization(
            "Token nonsense",
            "{ user(username: \"jake\") { username } }",
        )
        .await;
    assert_unauthenticated(&response);
    assert_eq!(
        response.body["errors"][0]["message"],
        "invalid or expired access token"
    );
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
    assert_unauthenticated(&app.viewer_username(&old_token).await);

    let rotated = TestApp::spawn_with(&[("JWT_PREVIOUS_SECRETS", "the-previous-secret")]).await;
    let session = rotated.signed_in_user("jake").await;
    let (sub, sid) = subject_and_session(&session.token);
    let (old_token, _) = old
        .issue(sub.parse().unwrap(), sid.parse().unwrap(), Utc::now())
        .unwrap();
    assert_eq!(
        rotated.viewer_username(&old_token).await.body["data"]["viewer"]["user"]["username"],
        "jake"
    );
}
