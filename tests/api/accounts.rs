//! Sign-up, sign-in, profiles and passwords.

use serde_json::json;

use crate::helpers::{PASSWORD, TestApp, assert_no_viewer, assert_viewer};

const CREATE_USER: &str = "mutation($input: CreateUserInput!) {
    createUser(input: $input) { user { id username email } errors { message path code } }
}";

const UPDATE_USER: &str = "mutation($input: UpdateUserInput!) {
    updateUser(input: $input) { user { username email bio image } errors { message path code } }
}";

#[tokio::test]
async fn sign_up_creates_an_account_its_owner_can_see() {
    let app = TestApp::spawn().await;
    let response = app
        .query(
            CREATE_USER,
            json!({ "input": {
                "username": "jake", "email": "jake@example.com", "password": PASSWORD,
                "clientMutationId": "m1"
            }}),
        )
        .await;
    assert_eq!(response.status, 200);
    let user = &response.body["data"]["createUser"]["user"];
    assert_eq!(user["username"], "jake");
    assert_eq!(user["email"], "jake@example.com");
    assert!(user["id"].as_str().is_some_and(|id| !id.contains("jake")));
    assert_eq!(app.db.count("SELECT count(*) FROM users").await, 1);
    let stored = app
        .db
        .count("SELECT count(*) FROM users WHERE password_hash LIKE '$argon2id$v=19$m=19456,t=2,p=1$%'")
        .await;
    assert_eq!(stored, 1, "password stored as an argon2id hash");
}

#[tokio::test]
async fn sign_up_reports_every_bad_field_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let long = "x".repeat(129);
    let too_long_email = format!("{}@example.com", "a".repeat(250));
    let cases = [
        (
            json!({"username": "", "email": "", "password": ""}),
            json!([
                ["username", "BLANK"],
                ["email", "BLANK"],
                ["password", "TOO_SHORT"]
            ]),
        ),
        (
            json!({"username": "a".repeat(41), "email": "jake@example.com", "password": PASSWORD}),
            json!([["username", "TOO_LONG"]]),
        ),
        (
            json!({"username": "jake doe", "email": "jake@example.com", "password": PASSWORD}),
            json!([["username", "INVALID"]]),
        ),
        (
            json!({"username": "<script>", "email": "not-an-email", "password": PASSWORD}),
            json!([["username", "INVALID"], ["email", "INVALID"]]),
        ),
        (
            json!({"username": "jake", "email": too_long_email, "password": PASSWORD}),
            json!([["email", "TOO_LONG"]]),
        ),
        (
            json!({"username": "jake", "email": "jake@example.com", "password": "1234567"}),
            json!([["password", "TOO_SHORT"]]),
        ),
        (
            json!({"username": "jake", "email": "jake@example.com", "password": long}),
            json!([["password", "TOO_LONG"]]),
        ),
    ];
    for (input, expected) in cases {
        let response = app.query(CREATE_USER, json!({ "input": input })).await;
        let payload = &response.body["data"]["createUser"];
        assert_eq!(payload["user"], json!(null), "{input}");
        let got: Vec<_> = payload["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()));
                json!([e["path"], e["code"]])
            })
            .collect();
        assert_eq!(json!(got), expected, "{input}");
    }
    assert_eq!(app.db.count("SELECT count(*) FROM users").await, 0);
}

#[tokio::test]
async fn usernames_and_emails_are_taken_in_any_letter_case() {
    let app = TestApp::spawn().await;
    app.sign_up("Jake", "jake@example.com").await;
    let response = app
        .query(
            CREATE_USER,
            json!({ "input": { "username": "jAKE", "email": "JAKE@Example.COM", "password": PASSWORD }}),
        )
        .await;
    let payload = &response.body["data"]["createUser"];
    assert_eq!(payload["user"], json!(null));
    assert_eq!(
        payload["errors"],
        json!([
            { "message": "username is already taken", "path": "username", "code": "TAKEN" },
            { "message": "email is already taken", "path": "email", "code": "TAKEN" },
        ])
    );
    assert_eq!(app.db.count("SELECT count(*) FROM users").await, 1);
}

#[tokio::test]
async fn concurrent_sign_ups_for_one_username_create_one_account() {
    let app = TestApp::spawn().await;
    let attempts = (0..4).map(|i| {
        app.query(
            CREATE_USER,
            json!({ "input": { "username": "race", "email": format!("race{i}@example.com"), "password": PASSWORD }}),
        )
    });
    let responses = futures_util::future::join_all(attempts).await;
    let created = responses
        .iter()
        .filter(|r| r.body["data"]["createUser"]["user"].is_object())
        .count();
    assert_eq!(created, 1);
    for r in &responses {
        assert_eq!(r.status, 200);
        if r.body["data"]["createUser"]["user"].is_null() {
            assert_eq!(r.body["data"]["createUser"]["errors"][0]["code"], "TAKEN");
        }
    }
    assert_eq!(app.db.count("SELECT count(*) FROM users").await, 1);
}

#[tokio::test]
async fn sign_in_returns_tokens_and_the_viewer() {
    let app = TestApp::spawn().await;
    app.sign_up("jake", "jake@example.com").await;
    let response = app.sign_in("  JAKE@example.com ", PASSWORD).await;
    let payload = &response.body["data"]["signInUser"];
    assert_eq!(payload["errors"], json!([]));
    assert!(
        payload["token"]
            .as_str()
            .is_some_and(|t| t.split('.').count() == 3)
    );
    assert!(
        payload["refreshToken"]
            .as_str()
            .is_some_and(|t| t.len() >= 40)
    );
    let expires: chrono::DateTime<chrono::Utc> =
        payload["tokenExpiresAt"].as_str().unwrap().parse().unwrap();
    let minutes = (expires - chrono::Utc::now()).num_minutes();
    assert!((13..=15).contains(&minutes), "expires in {minutes} minutes");
    assert_eq!(
        payload["viewer"],
        json!({ "user": { "username": "jake", "email": "jake@example.com" } })
    );
    let token = payload["token"].as_str().unwrap();
    let me = app.viewer_username(token).await;
    assert_eq!(me.body["data"]["viewer"]["user"]["username"], "jake");
}

#[tokio::test]
async fn wrong_password_and_unknown_email_get_the_same_answer() {
    let app = TestApp::spawn().await;
    app.sign_up("jake", "jake@example.com").await;
    let wrong_password = app.sign_in("jake@example.com", "not the password").await;
    let unknown_email = app.sign_in("nobody@example.com", PASSWORD).await;
    assert_eq!(wrong_password.status, 200);
    assert_eq!(wrong_password.body, unknown_email.body);
    assert_eq!(
        wrong_password.body["data"]["signInUser"],
        json!({
            "token": null, "refreshToken": null, "tokenExpiresAt": null, "viewer": null,
            "errors": [{ "message": "email or password is invalid", "path": null, "code": "INVALID_CREDENTIALS" }]
        })
    );
    assert_eq!(app.db.count("SELECT count(*) FROM sessions").await, 0);
}

#[tokio::test]
async fn sign_in_with_blank_fields_is_refused_per_field() {
    let app = TestApp::spawn().await;
    let response = app.sign_in(" ", "").await;
    let errors = &response.body["data"]["signInUser"]["errors"];
    assert_eq!(errors[0]["path"], "email");
    assert_eq!(errors[0]["code"], "BLANK");
    assert_eq!(errors[1]["path"], "password");
    assert_eq!(errors[1]["code"], "BLANK");
}

#[tokio::test]
async fn email_is_visible_only_to_its_owner() {
    let app = TestApp::spawn().await;
    let jake = app.signed_in_user("jake").await;
    app.signed_in_user("anne").await;
    let query = "{ user(username: \"ANNE\") { username email bio } }";

    let anonymous = app.query(query, json!({})).await;
    assert_eq!(
        anonymous.body,
        json!({ "data": { "user": { "username": "anne", "email": null, "bio": null } } })
    );

    let other = app.query_as(&jake.token, query, json!({})).await;
    assert_eq!(
        other.body,
        json!({ "data": { "user": { "username": "anne", "email": null, "bio": null } } })
    );

    let own = app
        .query_as(
            &jake.token,
            "{ user(username: \"jake\") { email } }",
            json!({}),
        )
        .await;
    assert_eq!(
        own.body,
        json!({ "data": { "user": { "email": "jake@example.com" } } })
    );
}

#[tokio::test]
async fn unknown_users_and_anonymous_viewers_are_null() {
    let app = TestApp::spawn().await;
    let response = app
        .query(
            "{ viewer { user { username } } user(username: \"ghost\") { username } }",
            json!({}),
        )
        .await;
    assert_eq!(
        response.body,
        json!({ "data": { "viewer": null, "user": null } })
    );
}

#[tokio::test]
async fn update_user_edits_the_profile() {
    let app = TestApp::spawn().await;
    let jake = app.signed_in_user("jake").await;
    let response = app
        .query_as(
            &jake.token,
            UPDATE_USER,
            json!({ "input": {
                "username": "jacob", "email": "jacob@example.com",
                "bio": "I work at statefarm", "image": "https://example.com/jake.png"
            }}),
        )
        .await;
    assert_eq!(
        response.body["data"]["updateUser"],
        json!({
            "user": { "username": "jacob", "email": "jacob@example.com",
                      "bio": "I work at statefarm", "image": "https://example.com/jake.png" },
            "errors": []
        })
    );

    // Omitted fields stay; null clears a nullable field.
    let response = app
        .query_as(
            &jake.token,
            UPDATE_USER,
            json!({ "input": { "bio": null } }),
        )
        .await;
    assert_eq!(
        response.body["data"]["updateUser"]["user"],
        json!({ "username": "jacob", "email": "jacob@example.com", "bio": null,
                "image": "https://example.com/jake.png" })
    );
    let updated_later = app
        .db
        .count("SELECT count(*) FROM users WHERE updated_at > created_at")
        .await;
    assert_eq!(updated_later, 1, "the trigger keeps updated_at true");
}

/// The settings form of RealWorld frontends sends every field, the
/// password blank when it is not being changed.
#[tokio::test]
async fn a_blank_password_keeps_the_current_one() {
    let app = TestApp::spawn().await;
    let jake = app.signed_in_user("jake").await;
    let response = app
        .query_as(
            &jake.token,
            UPDATE_USER,
            json!({ "input": {
                "username": "jake", "email": "jake@example.com",
                "bio": "I work at statefarm", "image": "", "password": ""
            }}),
        )
        .await;
    assert_eq!(
        response.body["data"]["updateUser"],
        json!({
            "user": { "username": "jake", "email": "jake@example.com",
                      "bio": "I work at statefarm", "image": null },
            "errors": []
        })
    );
    // The session that saved is still live, and the old password still works.
    assert_viewer(&app.viewer_username(&jake.token).await);
    let sign_in = app.sign_in("jake@example.com", PASSWORD).await;
    assert_eq!(sign_in.body["data"]["signInUser"]["errors"], json!([]));

    // A short but non-blank password is still refused.
    let response = app
        .query_as(
            &jake.token,
            UPDATE_USER,
            json!({ "input": { "password": "short" } }),
        )
        .await;
    assert_eq!(
        response.body["data"]["updateUser"]["errors"][0]["code"],
        "TOO_SHORT"
    );
}

#[tokio::test]
async fn update_user_refuses_bad_and_taken_values_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let jake = app.signed_in_user("jake").await;
    app.signed_in_user("anne").await;
    let response = app
        .query_as(
            &jake.token,
            UPDATE_USER,
            json!({ "input": { "bio": "b".repeat(1001), "image": "javascript:alert(1)", "email": "nope" } }),
        )
        .await;
    let errors: Vec<_> = response.body["data"]["updateUser"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| json!([e["path"], e["code"]]))
        .collect();
    assert_eq!(
        json!(errors),
        json!([
            ["email", "INVALID"],
            ["bio", "TOO_LONG"],
            ["image", "INVALID"]
        ])
    );

    let response = app
        .query_as(
            &jake.token,
            UPDATE_USER,
            json!({ "input": { "username": "ANNE" } }),
        )
        .await;
    assert_eq!(
        response.body["data"]["updateUser"]["errors"][0]["code"],
        "TAKEN"
    );

    // Changing only the letter case of one's own name is allowed.
    let response = app
        .query_as(
            &jake.token,
            UPDATE_USER,
            json!({ "input": { "username": "Jake" } }),
        )
        .await;
    assert_eq!(
        response.body["data"]["updateUser"]["user"]["username"],
        "Jake"
    );
    assert_eq!(
        app.db
            .count("SELECT count(*) FROM users WHERE username = 'Jake' AND bio IS NULL AND email = 'jake@example.com'")
            .await,
        1
    );
}

#[tokio::test]
async fn update_user_needs_a_signed_in_viewer() {
    let app = TestApp::spawn().await;
    let response = app
        .query(UPDATE_USER, json!({ "input": { "bio": "hi" } }))
        .await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body["data"]["updateUser"], json!(null));
    assert_eq!(response.error_code(), Some("UNAUTHENTICATED"));
    assert_eq!(response.body["errors"][0]["path"], json!(["updateUser"]));
}

#[tokio::test]
async fn change_password_checks_the_current_one_and_ends_other_sessions() {
    let app = TestApp::spawn().await;
    let here = app.signed_in_user("jake").await;
    let elsewhere = app.another_session("jake@example.com").await;
    let change = "mutation($input: ChangePasswordInput!) {
        changePassword(input: $input) { user { username } errors { path code } }
    }";

    let wrong = app
        .query_as(
            &here.token,
            change,
            json!({ "input": { "currentPassword": "guess123", "newPassword": "new password 1" } }),
        )
        .await;
    assert_eq!(
        wrong.body["data"]["changePassword"],
        json!({ "user": null, "errors": [{ "path": "currentPassword", "code": "INVALID_CREDENTIALS" }] })
    );
    let short = app
        .query_as(
            &here.token,
            change,
            json!({ "input": { "currentPassword": PASSWORD, "newPassword": "short" } }),
        )
        .await;
    assert_eq!(
        short.body["data"]["changePassword"]["errors"][0]["path"],
        "newPassword"
    );

    let ok = app
        .query_as(
            &here.token,
            change,
            json!({ "input": { "currentPassword": PASSWORD, "newPassword": "new password 1" } }),
        )
        .await;
    assert_eq!(
        ok.body["data"]["changePassword"],
        json!({ "user": { "username": "jake" }, "errors": [] })
    );

    assert_viewer(&app.viewer_username(&here.token).await);
    assert_no_viewer(&app.viewer_username(&elsewhere).await, "SESSION_REVOKED");
    let old = app.sign_in("jake@example.com", PASSWORD).await;
    assert_eq!(
        old.body["data"]["signInUser"]["errors"][0]["code"],
        "INVALID_CREDENTIALS"
    );
    let new = app.sign_in("jake@example.com", "new password 1").await;
    assert_eq!(new.body["data"]["signInUser"]["errors"], json!([]));
}

#[tokio::test]
async fn one_failing_mutation_does_not_hide_another_that_succeeded() {
    let app = TestApp::spawn().await;
    let response = app
        .query(
            "mutation {
                createUser(input: { username: \"jake\", email: \"jake@example.com\", password: \"password123\" }) { user { username } }
                updateUser(input: { bio: \"nope\" }) { user { bio } }
            }",
            json!({}),
        )
        .await;
    assert_eq!(
        response.body["data"]["createUser"],
        json!({ "user": { "username": "jake" } })
    );
    assert!(response.body["data"]["updateUser"].is_null());
    assert_eq!(response.error_code(), Some("UNAUTHENTICATED"));
    assert_eq!(response.body["errors"][0]["path"], json!(["updateUser"]));
}
