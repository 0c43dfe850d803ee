//! Refresh rotation, reuse detection, signing out.

use serde_json::json;

use crate::helpers::{PASSWORD, TestApp, assert_no_viewer, assert_viewer};

const REFRESH: &str = "mutation($token: String!) {
    refreshSession(input: { refreshToken: $token, clientMutationId: \"r\" }) {
        token refreshToken tokenExpiresAt viewer { user { username } }
        errors { message path code } clientMutationId
    }
}";

async fn refresh(app: &TestApp, token: &str) -> serde_json::Value {
    app.query(REFRESH, json!({ "token": token })).await.body["data"]["refreshSession"].clone()
}

fn refused() -> serde_json::Value {
    json!({
        "token": null, "refreshToken": null, "tokenExpiresAt": null, "viewer": null,
        "errors": [{ "message": "refresh token is invalid or expired; sign in again",
                     "path": "refreshToken", "code": "INVALID" }],
        "clientMutationId": "r"
    })
}

#[tokio::test]
async fn refreshing_rotates_both_tokens() {
    let app = TestApp::spawn().await;
    let session = app.signed_in_user("jake").await;
    let refreshed = refresh(&app, &session.refresh_token).await;
    assert_eq!(refreshed["errors"], json!([]));
    assert_eq!(refreshed["viewer"]["user"]["username"], "jake");
    let new_refresh = refreshed["refreshToken"].as_str().unwrap();
    assert_ne!(new_refresh, session.refresh_token);
    let new_token = refreshed["token"].as_str().unwrap();
    assert_eq!(
        app.viewer_username(new_token).await.body["data"]["viewer"]["user"]["username"],
        "jake"
    );

    // The rotated token keeps working once, in turn.
    let again = refresh(&app, new_refresh).await;
    assert_eq!(again["errors"], json!([]));
    assert_eq!(
        app.db
            .count("SELECT count(*) FROM refresh_tokens WHERE used_at IS NULL")
            .await,
        1
    );
    assert_eq!(app.db.count("SELECT count(*) FROM sessions").await, 1);
}

#[tokio::test]
async fn reusing_a_spent_refresh_token_revokes_the_whole_session() {
    let app = TestApp::spawn().await;
    let session = app.signed_in_user("jake").await;
    let other_token = app.another_session("jake@example.com").await;

    let legit = refresh(&app, &session.refresh_token).await;
    let legit_refresh = legit["refreshToken"].as_str().unwrap().to_owned();
    let legit_access = legit["token"].as_str().unwrap().to_owned();

    // A thief replays the spent token: refused, and the family dies.
    assert_eq!(refresh(&app, &session.refresh_token).await, refused());
    assert_eq!(refresh(&app, &legit_refresh).await, refused());
    assert_no_viewer(&app.viewer_username(&legit_access).await, "SESSION_REVOKED");
    assert_no_viewer(
        &app.viewer_username(&session.token).await,
        "SESSION_REVOKED",
    );

    // Other sessions of the same user are untouched.
    assert_viewer(&app.viewer_username(&other_token).await);
}

#[tokio::test]
async fn concurrent_refreshes_of_one_token_let_exactly_one_through() {
    let app = TestApp::spawn().await;
    let session = app.signed_in_user("jake").await;
    let (a, b) = tokio::join!(
        refresh(&app, &session.refresh_token),
        refresh(&app, &session.refresh_token)
    );
    // One claims the token and gets new ones; the other finds it spent
    // and is refused as a replay would be.
    let (won, lost) = if a["errors"] == json!([]) {
        (&a, &b)
    } else {
        (&b, &a)
    };
    assert_eq!(
        won["errors"],
        json!([]),
        "neither refresh went through: {a} {b}"
    );
    assert!(won["token"].is_string(), "{won}");
    assert!(won["refreshToken"].is_string(), "{won}");
    assert_eq!(won["viewer"]["user"]["username"], "jake", "{won}");
    assert_eq!(*lost, refused(), "both went through: {a} {b}");
}

#[tokio::test]
async fn unknown_and_expired_refresh_tokens_are_refused() {
    let app = TestApp::spawn().await;
    assert_eq!(refresh(&app, "not-a-real-token").await, refused());
    let session = app.signed_in_user("jake").await;
    app.db
        .execute("UPDATE refresh_tokens SET expires_at = now() - interval '1 second'")
        .await;
    assert_eq!(refresh(&app, &session.refresh_token).await, refused());
}

#[tokio::test]
async fn signing_out_ends_the_session_and_only_it() {
    let app = TestApp::spawn().await;
    let here = app.signed_in_user("jake").await;
    let other_token = app.another_session("jake@example.com").await;

    let response = app
        .query_as(
            &here.token,
            "mutation { signOut(input: { clientMutationId: \"bye\" }) { errors { code } clientMutationId } }",
            json!({}),
        )
        .await;
    assert_eq!(
        response.body,
        json!({ "data": { "signOut": { "errors": [], "clientMutationId": "bye" } } })
    );
    assert_no_viewer(&app.viewer_username(&here.token).await, "SESSION_REVOKED");
    assert_eq!(refresh(&app, &here.refresh_token).await, refused());
    assert_viewer(&app.viewer_username(&other_token).await);
}

#[tokio::test]
async fn signing_out_everywhere_ends_every_session() {
    let app = TestApp::spawn().await;
    let here = app.signed_in_user("jake").await;
    let other_token = app.another_session("jake@example.com").await;
    let neighbour = app.signed_in_user("anne").await;

    let response = app
        .query_as(
            &here.token,
            "mutation { signOutEverywhere(input: {}) { revokedSessionCount errors { code } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        response.body["data"]["signOutEverywhere"],
        json!({ "revokedSessionCount": 2, "errors": [] })
    );
    assert_no_viewer(&app.viewer_username(&here.token).await, "SESSION_REVOKED");
    assert_no_viewer(&app.viewer_username(&other_token).await, "SESSION_REVOKED");
    assert_viewer(&app.viewer_username(&neighbour.token).await);
}

#[tokio::test]
async fn sign_out_needs_a_signed_in_viewer() {
    let app = TestApp::spawn().await;
    let response = app
        .query(
            "mutation { signOut(input: {}) { errors { code } } }",
            json!({}),
        )
        .await;
    assert_eq!(response.error_code(), Some("UNAUTHENTICATED"));
    assert_eq!(response.body["data"]["signOut"], json!(null));
}

#[tokio::test]
async fn a_deleted_users_tokens_stop_working() {
    let app = TestApp::spawn().await;
    let session = app.signed_in_user("jake").await;
    app.db
        .execute("UPDATE users SET deleted_at = now() WHERE username = 'jake'")
        .await;
    assert_no_viewer(
        &app.viewer_username(&session.token).await,
        "SESSION_REVOKED",
    );
    assert_eq!(refresh(&app, &session.refresh_token).await, refused());
    let sign_in = app.sign_in("jake@example.com", PASSWORD).await;
    assert_eq!(
        sign_in.body["data"]["signInUser"]["errors"][0]["code"],
        "INVALID_CREDENTIALS"
    );
    // The name is free again for a new account.
    app.sign_up("jake", "jake@example.com").await;
}
