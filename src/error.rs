//! Errors, by the layer that raises them, and the one way any of them
//! reaches a client.
//!
//! - Domain errors are [`AppError`], what services return ([`AppResult`]).
//!   Resolvers turn [`AppError::Invalid`] into payload `errors` (an expected
//!   outcome is data); every other variant becomes a GraphQL error.
//! - Protocol errors are raised where the protocol is spoken: persisted
//!   documents (`graphql::persisted::PersistedQueryError`) and the
//!   executor's refusals (`graphql::executor::Refusal`).
//! - Transport errors are the HTTP layer's (`http::error`), which also
//!   renders every error body and picks its status.
//!
//! Each of them is a [`ClientError`]: a code from the fixed list
//! [`ErrorCode`], a message safe to show, and extensions. [`graphql_error`]
//! is the one mapping to a GraphQL error, and [`fill_error_code`] gives the
//! errors async-graphql raises itself a code too, so none reaches a client
//! without one.

use std::fmt;

/// Machine-readable reason a field of a mutation's input was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserErrorCode {
    /// The value is required but empty.
    Blank,
    /// The value is malformed (bad email, forbidden characters).
    Invalid,
    TooShort,
    TooLong,
    /// Another account already uses the value.
    Taken,
    /// Email and password do not match an account.
    InvalidCredentials,
    /// The value is well-formed but not allowed here (a webhook URL that
    /// resolves to a private address).
    Refused,
    /// The account already has as many of these as it may.
    LimitReached,
}

/// One refused input field: what the client sees in a payload's `errors`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Input field name as the client spelled it (`email`, `password`), or
    /// `None` when the error is about the input as a whole.
    pub path: Option<&'static str>,
    pub code: UserErrorCode,
    pub message: String,
}

impl FieldError {
    pub fn new(path: &'static str, code: UserErrorCode, message: impl Into<String>) -> Self {
        Self {
            path: Some(path),
            code,
            message: message.into(),
        }
    }
}

/// A service failure. Deliberately not `Display`: async-graphql converts
/// any `Display` type into an error with that text and no code, so a
/// `Display` impl would let `?` bypass [`From<AppError> for
/// async_graphql::Error`] and leak internal causes.
#[derive(Debug)]
pub enum AppError {
    /// `UNAUTHENTICATED` with this message: no valid credentials for an
    /// operation that needs them, or a token that was presented but is bad.
    Unauthenticated(&'static str),
    /// `FORBIDDEN` with this message: signed in, but not allowed.
    Forbidden(&'static str),
    /// `NOT_FOUND`: "<what> not found".
    NotFound(&'static str),
    /// `BAD_USER_INPUT` with this message: an argument that can never be
    /// valid (a malformed id or cursor), as opposed to a refused field.
    BadUserInput(String),
    /// Payload `errors` of the mutation that produced them. Should one reach
    /// the GraphQL boundary, the client sees `BAD_USER_INPUT` with the
    /// messages joined.
    Invalid(Vec<FieldError>),
    /// `TIMEOUT` with this message: the server was too busy to answer in time.
    Timeout(&'static str),
    /// `SERVICE_UNAVAILABLE` with this message and `retryAfter` (seconds) in
    /// `extensions`, HTTP 503 with `Retry-After`: the database could not be
    /// reached. Nothing was changed unless the client is told otherwise;
    /// retrying is safe.
    Unavailable(&'static str),
    /// `RATE_LIMITED`, with `retryAfter` (seconds) and `resetAt` in
    /// `extensions`: the spender's budget for this window is spent.
    RateLimited {
        reset_at: chrono::DateTime<chrono::Utc>,
    },
    /// `QUERY_TOO_COMPLEX`, with `rule`, `measured` and `limit` in
    /// `extensions`: a static limit refused the request before it ran.
    QueryTooComplex {
        rule: &'static str,
        measured: usize,
        limit: usize,
    },
    /// `INTERNAL_SERVER_ERROR`: the client sees only "internal server error"
    /// and the request id; the cause is logged, never sent.
    Internal(anyhow::Error),
}

/// An error of work no client waits for (the event bus, jobs), for its
/// log line.
impl From<AppError> for anyhow::Error {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Internal(cause) => cause,
            other => anyhow::anyhow!(other.client_message()),
        }
    }
}

impl From<anyhow::Error> for AppError {
    fn from(e: anyhow::Error) -> Self {
        Self::Internal(e)
    }
}

pub type AppResult<T> = Result<T, AppError>;

fn join_messages(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| e.message.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The codes a client can find in `extensions.code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    Unauthenticated,
    Forbidden,
    NotFound,
    BadUserInput,
    Timeout,
    ServiceUnavailable,
    QueryTooComplex,
    RateLimited,
    /// The document is not GraphQL: nothing ran.
    GraphQLParseFailed,
    /// The document does not fit the schema, or its variables do not fit
    /// the document: nothing ran.
    GraphQLValidationFailed,
    PersistedQueryNotFound,
    PersistedQueryNotSupported,
    PersistedQueryNotTrusted,
    InternalServerError,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::Forbidden => "FORBIDDEN",
            Self::NotFound => "NOT_FOUND",
            Self::BadUserInput => "BAD_USER_INPUT",
            Self::Timeout => "TIMEOUT",
            Self::ServiceUnavailable => "SERVICE_UNAVAILABLE",
            Self::QueryTooComplex => "QUERY_TOO_COMPLEX",
            Self::RateLimited => "RATE_LIMITED",
            Self::GraphQLParseFailed => "GRAPHQL_PARSE_FAILED",
            Self::GraphQLValidationFailed => "GRAPHQL_VALIDATION_FAILED",
            Self::PersistedQueryNotFound => "PERSISTED_QUERY_NOT_FOUND",
            Self::PersistedQueryNotSupported => "PERSISTED_QUERY_NOT_SUPPORTED",
            Self::PersistedQueryNotTrusted => "PERSISTED_QUERY_NOT_TRUSTED",
            Self::InternalServerError => "INTERNAL_SERVER_ERROR",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Message a client sees while the database cannot be reached.
pub const DATABASE_UNAVAILABLE: &str = "the database is unavailable; retry in a moment";

/// Message a client sees for any internal failure.
pub const INTERNAL_MESSAGE: &str = "internal server error";

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
        match self {
            Self::Unauthenticated(_) => ErrorCode::Unauthenticated,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::BadUserInput(_) | Self::Invalid(_) => ErrorCode::BadUserInput,
            Self::Timeout(_) => ErrorCode::Timeout,
            Self::Unavailable(_) => ErrorCode::ServiceUnavailable,
            Self::QueryTooComplex { .. } => ErrorCode::QueryTooComplex,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::Internal(_) => ErrorCode::InternalServerError,
        }
    }

    fn client_message(&self) -> String {
        match self {
            Self::Unauthenticated(m)
            | Self::Forbidden(m)
            | Self::Timeout(m)
            | Self::Unavailable(m) => (*m).to_owned(),
            Self::NotFound(what) => format!("{what} not found"),
            Self::BadUserInput(m) => m.clone(),
            Self::Invalid(errors) => join_messages(errors),
            Self::QueryTooComplex {
                rule,
                measured,
                limit,
            } => format!("the request is too complex: {rule} is {measured}, the limit is {limit}"),
            Self::RateLimited { reset_at } => format!(
                "rate limit exceeded; retry in {} seconds",
                retry_after_secs(*reset_at)
            ),
            Self::Internal(_) => INTERNAL_MESSAGE.to_owned(),
        }
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

impl From<diesel::result::Error> for AppError {
    fn from(e: diesel::result::Error) -> Self {
        // PostgreSQL's message for SQLSTATE 57014 under `statement_timeout`;
        // diesel does not expose the SQLSTATE itself.
        if let diesel::result::Error::DatabaseError(_, info) = &e
            && info
                .message()
                .starts_with("canceling statement due to statement timeout")
        {
            return Self::Timeout("the query took too long and was cancelled");
        }
        if is_disconnection(&e) {
            tracing::warn!(error = %e, "lost the database connection");
            return Self::Unavailable(DATABASE_UNAVAILABLE);
        }
        Self::Internal(anyhow::Error::new(e).context("database query failed"))
    }
}

/// The connection failed rather than the statement: the server went away
/// (shut down, restarted, terminated the backend) or the socket closed.
/// diesel exposes no SQLSTATE, so the server's own shutdown messages
/// (SQLSTATE class 57P) are recognised by their text.
fn is_disconnection(e: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    match e {
        Error::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            _,
        ) => true,
        Error::DatabaseError(_, info) => [
            "terminating connection due to administrator command",
            "terminating connection due to unexpected postmaster exit",
            "terminating connection because of crash of another server process",
            "the database system is",
        ]
        .iter()
        .any(|m| info.message().starts_with(m)),
        _ => false,
    }
}

impl From<bb8::RunError<diesel_async::pooled_connection::PoolError>> for AppError {
    fn from(e: bb8::RunError<diesel_async::pooled_connection::PoolError>) -> Self {
        match e {
            bb8::RunError::TimedOut => Self::Timeout("the database is busy; try again in a moment"),
            bb8::RunError::User(e) => {
                tracing::warn!(error = %e, "failed to open a database connection");
                Self::Unavailable(DATABASE_UNAVAILABLE)
            }
        }
    }
}

impl AppError {
    /// Maps a unique violation of a named constraint to a refused field
    /// (`field_for` returns it); any other database error is internal.
    pub fn on_constraint(
        e: diesel::result::Error,
        field_for: impl Fn(&str) -> Option<FieldError>,
    ) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        if let Error::DatabaseError(DatabaseErrorKind::UniqueViolation, info) = &e
            && let Some(field) = info.constraint_name().and_then(&field_for)
        {
            return Self::Invalid(vec![field]);
        }
        e.into()
    }
}

/// Seconds a client is told to wait before retrying after
/// `SERVICE_UNAVAILABLE` (`Retry-After` and `extensions.retryAfter`).
pub const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 1;

/// Whole seconds until `reset_at`, at least 1.
pub fn retry_after_secs(reset_at: chrono::DateTime<chrono::Utc>) -> u64 {
    let millis = (reset_at - chrono::Utc::now()).num_milliseconds().max(0) as u64;
    millis.div_ceil(1000).max(1)
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

    #[test]
    fn a_lost_connection_is_unavailable_not_internal() {
        use diesel::result::{DatabaseErrorKind, Error};
        let closed = Error::DatabaseError(
            DatabaseErrorKind::UnableToSendCommand,
            Box::new("connection closed".to_owned()),
        );
        assert_eq!(AppError::from(closed).code(), ErrorCode::ServiceUnavailable);
        let shutdown = Error::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new("terminating connection due to administrator command".to_owned()),
        );
        assert_eq!(
            AppError::from(shutdown).code(),
            ErrorCode::ServiceUnavailable
        );
        let other = Error::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new("relation \"users\" does not exist".to_owned()),
        );
        assert_eq!(AppError::from(other).code(), ErrorCode::InternalServerError);
    }

    #[test]
    fn a_saturated_pool_is_a_timeout() {
        let e: AppError = bb8::RunError::TimedOut.into();
        assert_eq!(e.code(), ErrorCode::Timeout);
    }
}
