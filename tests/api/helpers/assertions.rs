//! Assertions several test files share.

use serde_json::json;

use super::GraphQLResponse;

/// Asserts a request whose token was ignored was served as anonymous and
/// said why: `WWW-Authenticate` per RFC 6750 and the code in the top-level
/// `extensions`, with no entry in `errors` for it.
pub fn assert_served_anonymously(response: &GraphQLResponse, code: &str) {
    assert_eq!(response.status, 200, "{:?}", response.body);
    let challenge = response.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer error=\"invalid_token\", error_description=\""),
        "WWW-Authenticate: {challenge:?}"
    );
    assert_eq!(
        response.body["extensions"]["authentication"]["code"], code,
        "{:?}",
        response.body
    );
    assert!(
        response.body["errors"].is_null(),
        "a rejected token is not an error: {:?}",
        response.body
    );
}

/// Asserts a `viewer` query whose token was ignored (see
/// [`TestApp::viewer_username`]) saw no viewer, and was told why.
pub fn assert_no_viewer(response: &GraphQLResponse, code: &str) {
    assert_served_anonymously(response, code);
    assert_eq!(
        response.body["data"],
        json!({ "viewer": null }),
        "{:?}",
        response.body
    );
}

/// Asserts a `viewer` query (see [`TestApp::viewer_username`]) was served
/// to a signed-in user.
pub fn assert_viewer(response: &GraphQLResponse) {
    assert!(
        response.body["data"]["viewer"]["user"]["username"].is_string(),
        "{:?}",
        response.body
    );
    assert!(response.body["extensions"]["authentication"].is_null());
    assert!(response.header("www-authenticate").is_none());
}
