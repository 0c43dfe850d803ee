//! The one way any error reaches a GraphQL client: a code from the fixed
//! list ([`ErrorCode`]), a message safe to show, and extensions. Every error
//! type that can reach a client is a [`ClientError`]; [`graphql_error`] is
//! the one mapping, and [`fill_error_code`] gives the errors async-graphql
//! raises itself a code too, so none reaches a client without one.
//! Resolvers turn [`AppError::Invalid`] into payload `errors` (an expected
//! outcome is data); every other variant becomes a GraphQL error here.

use crate::error::{
    AppError, ErrorCode, INTERNAL_MESSAGE, UNAVAILABLE_RETRY_AFTER_SECS, retry_after_secs,
};

/// An error as a client sees it. Every error type that can reach a client
/// implements it, and [`graphql_error`] turns any of them into a GraphQL
/// error the same way.
pub trait ClientError {
    fn code(&self) -> ErrorCode;
    /// The message the client sees: never an internal cause.
    fn client_message(&self) -> String;
    /// What `extensions` holds beside `code`.
    fn extend(&self, _extensions: &mut async_graphql::ErrorExtensionValues) {}
}

/// The one mapping of an error to what a GraphQL client sees: its message,
/// and `extensions` with its code first.
pub fn graphql_error(error: &dyn ClientError) -> async_graphql::Error {
    let mut extensions = async_graphql::ErrorExtensionValues::default();
    extensions.set("code", error.code().as_str());
    error.extend(&mut extensions);
    async_graphql::Error {
        message: error.client_message(),
        source: None,
        extensions: Some(extensions),
    }
}

/// [`graphql_error`], for an error answered before any field ran.
pub fn server_error(error: &dyn ClientError) -> async_graphql::ServerError {
    let error = graphql_error(error);
    let mut server_error = async_graphql::ServerError::new(error.message, None);
    server_error.extensions = error.extensions;
    server_error
}

impl ClientError for AppError {
    fn code(&self) -> ErrorCode {
        AppError::code(self)
    }

    fn client_message(&self) -> String {
        AppError::client_message(self)
    }

    fn extend(&self, extensions: &mut async_graphql::ErrorExtensionValues) {
        match self {
            Self::RateLimited { reset_at } => {
                extensions.set("retryAfter", retry_after_secs(*reset_at));
                extensions.set("resetAt", reset_at.to_rfc3339());
            }
            Self::Unavailable(_) => extensions.set("retryAfter", UNAVAILABLE_RETRY_AFTER_SECS),
            Self::QueryTooComplex {
                rule,
                measured,
                limit,
            } => {
                extensions.set("rule", *rule);
                extensions.set("measured", *measured as u64);
                extensions.set("limit", *limit as u64);
            }
            _ => {}
        }
    }
}

impl AppError {
    /// The same conversion, for hooks that answer with a `ServerError`.
    pub fn into_server_error(self) -> async_graphql::ServerError {
        log_internal(&self);
        server_error(&self)
    }
}

/// An internal error's cause goes to the log, never to the client.
fn log_internal(e: &AppError) {
    if let AppError::Internal(cause) = e {
        tracing::error!(error = format!("{cause:#}"), "internal error");
    }
}

/// Gives `error` a code if it has none. Errors from our code carry one
/// already; the rest come from async-graphql itself: a document that does
/// not validate (no path) or an argument that does not coerce (a path, and
/// async-graphql's "Failed to parse" message). Anything else without a code
/// is a bug of ours, reported as internal.
pub fn fill_error_code(error: &mut async_graphql::ServerError) {
    let extensions = error.extensions.get_or_insert_with(Default::default);
    if extensions.get("code").is_some() {
        return;
    }
    let code = if error.path.is_empty() {
        ErrorCode::GraphQLValidationFailed
    } else if error.message.starts_with("Failed to parse")
        || error.message.starts_with("Invalid value for argument")
    {
        ErrorCode::BadUserInput
    } else {
        tracing::error!(error = %error.message, path = ?error.path, "field error without a code");
        error.message = INTERNAL_MESSAGE.to_owned();
        ErrorCode::InternalServerError
    };
    extensions.set("code", code.as_str());
}

/// The boundary between services and GraphQL: `?` in a resolver.
impl From<AppError> for async_graphql::Error {
    fn from(e: AppError) -> Self {
        log_internal(&e);
        graphql_error(&e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_of(e: AppError) -> String {
        let err: async_graphql::Error = e.into();
        let ext = err.extensions.expect("extensions");
        match ext.get("code") {
            Some(async_graphql::Value::String(s)) => s.clone(),
            other => panic!("no code: {other:?}"),
        }
    }

    #[test]
    fn each_variant_maps_to_its_code() {
        assert_eq!(code_of(AppError::Unauthenticated("x")), "UNAUTHENTICATED");
        assert_eq!(code_of(AppError::Forbidden("x")), "FORBIDDEN");
        assert_eq!(code_of(AppError::NotFound("article")), "NOT_FOUND");
        assert_eq!(
            code_of(AppError::BadUserInput("x".into())),
            "BAD_USER_INPUT"
        );
        assert_eq!(code_of(AppError::Invalid(vec![])), "BAD_USER_INPUT");
        assert_eq!(code_of(AppError::Timeout("x")), "TIMEOUT");
        assert_eq!(
            code_of(AppError::QueryTooComplex {
                rule: "depth",
                measured: 20,
                limit: 15
            }),
            "QUERY_TOO_COMPLEX"
        );
        assert_eq!(
            code_of(AppError::Internal(anyhow::anyhow!("boom"))),
            "INTERNAL_SERVER_ERROR"
        );
    }

    #[test]
    fn internal_causes_never_reach_the_client() {
        let e = AppError::Internal(anyhow::anyhow!("relation \"users\" does not exist"));
        let err: async_graphql::Error = e.into();
        assert_eq!(err.message, INTERNAL_MESSAGE);
    }

    fn filled(message: &str, path: bool) -> (String, String) {
        let mut error = async_graphql::ServerError::new(message, None);
        if path {
            error.path = vec![async_graphql::PathSegment::Field("articles".into())];
        }
        fill_error_code(&mut error);
        let code = match error.extensions.as_ref().and_then(|x| x.get("code")) {
            Some(async_graphql::Value::String(code)) => code.clone(),
            other => panic!("no code: {other:?}"),
        };
        (code, error.message)
    }

    #[test]
    fn errors_without_a_code_get_one() {
        assert_eq!(
            filled(r#"Unknown field "nope" on type "Query"."#, false).0,
            "GRAPHQL_VALIDATION_FAILED"
        );
        assert_eq!(
            filled(r#"Failed to parse "Int": invalid"#, true).0,
            "BAD_USER_INPUT"
        );
        // A field error of ours without a code is a bug: its text stays in
        // the log.
        assert_eq!(
            filled("Data `Loaders` does not exist.", true),
            (
                "INTERNAL_SERVER_ERROR".to_owned(),
                INTERNAL_MESSAGE.to_owned()
            )
        );
        // A code already there is kept.
        let mut error: async_graphql::ServerError =
            AppError::NotFound("article").into_server_error();
        fill_error_code(&mut error);
        assert_eq!(
            error.extensions.unwrap().get("code"),
            Some(&async_graphql::Value::from("NOT_FOUND"))
        );
    }
}
