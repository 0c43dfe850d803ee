//! A mutation's expected refusals as data: `UserError` with a field path and a
//! code, and how a service's field errors become the payload's `errors`.

use async_graphql::{Enum, SimpleObject};

use crate::error::{AppError, FieldError};

/// Why an input field was refused.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "crate::error::UserErrorCode")]
pub enum UserErrorCode {
    /// A required value is empty.
    Blank,
    /// The value is malformed.
    Invalid,
    /// The value is shorter than allowed.
    TooShort,
    /// The value is longer than allowed.
    TooLong,
    /// Another account already uses the value.
    Taken,
    /// The credentials do not match an account.
    InvalidCredentials,
    /// The value is well-formed but not allowed (a webhook URL that
    /// resolves to a private address).
    Refused,
    /// The account already has as many of these as it may.
    LimitReached,
}

/// An expected reason a mutation did not happen, returned as data.
#[derive(SimpleObject, Debug, Clone)]
pub struct UserError {
    /// Human-readable explanation.
    pub message: String,
    /// The input field at fault, or null when it concerns the whole input.
    pub path: Option<String>,
    /// Machine-readable reason.
    pub code: UserErrorCode,
}

impl From<FieldError> for UserError {
    fn from(e: FieldError) -> Self {
        Self {
            message: e.message,
            path: e.path.map(String::from),
            code: e.code.into(),
        }
    }
}

/// Separates a mutation's expected refusals (payload `errors`) from real
/// failures (GraphQL errors).
pub fn refusals<T>(
    outcome: Result<T, AppError>,
) -> async_graphql::Result<Result<T, Vec<UserError>>> {
    match outcome {
        Ok(value) => Ok(Ok(value)),
        Err(AppError::Invalid(errors)) => {
            Ok(Err(errors.into_iter().map(UserError::from).collect()))
        }
        Err(other) => Err(other.into()),
    }
}
