//! What the database's failures mean to a client: the one place that
//! tells a lost connection (retryable, `SERVICE_UNAVAILABLE`), a statement
//! timeout (`TIMEOUT`) or a named unique violation (a refused field) from a
//! bug (internal). diesel and bb8 errors are classified by their kinds
//! where they have one; diesel-async hands PostgreSQL's errors over without
//! their SQLSTATE, so a statement timeout and the server's shutdown
//! messages are recognised by their text.

use crate::error::{AppError, DATABASE_UNAVAILABLE, FieldError};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

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
