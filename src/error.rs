//! Errors, by the layer that raises them. This module holds the domain's:
//! [`AppError`], what services return ([`AppResult`]), the fixed list of
//! codes a client can see ([`ErrorCode`]), and the refused input fields of
//! a mutation ([`FieldError`]). It knows no protocol:
//!
//! - the database's failures become an [`AppError`] in `db::error`, the one
//!   place that tells a lost connection or a statement timeout from a bug;
//! - the one mapping of any error to what a GraphQL client sees (a code,
//!   a message safe to show, extensions) is `graphql::error`, with the
//!   protocol errors raised where the protocol is spoken (persisted
//!   documents, the executor's refusals);
//! - transport errors and every error body are the HTTP layer's
//!   (`http::error`).

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
/// `Display` impl would let `?` bypass the mapping in `graphql::error` and leak internal causes.
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

/// Seconds a client is told to wait before retrying after
/// `SERVICE_UNAVAILABLE` (`Retry-After` and `extensions.retryAfter`).
pub const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 1;

/// Whole seconds until `reset_at`, at least 1.
pub fn retry_after_secs(reset_at: chrono::DateTime<chrono::Utc>) -> u64 {
    let millis = (reset_at - chrono::Utc::now()).num_milliseconds().max(0) as u64;
    millis.div_ceil(1000).max(1)
}

impl AppError {
    /// The code a client finds in `extensions.code`.
    pub fn code(&self) -> ErrorCode {
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

    /// The message a client sees: never an internal cause.
    pub fn client_message(&self) -> String {
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
}
