//! What a request answers, and what is done to it on the way out: every
//! error gets a code (internal ones the request id), a rejected token is
//! told in `extensions`, and the codes are collected for the metrics.

use std::sync::Arc;

use async_graphql::BatchResponse;

use crate::{
    auth::TokenRejection,
    error::{AppError, ErrorCode},
    graphql::cache::Stored,
    rate_limit::Charge,
};

/// What a request's operations answered. Made once per request and
/// moved, as [`super::Operations`] is.
#[allow(clippy::large_enum_variant)]
pub enum Answer {
    /// The responses, every error coded.
    Responses(BatchResponse),
    /// One operation's response, serialised, as the response cache keeps
    /// it (whether it came from the cache or was just made and kept).
    Stored(Arc<Stored>),
}

impl Answer {
    /// The one response of a single operation.
    pub(super) fn into_response(self) -> async_graphql::Response {
        match self {
            Self::Responses(BatchResponse::Single(response)) => response,
            Self::Responses(BatchResponse::Batch(mut responses)) => {
                responses.pop().unwrap_or_default()
            }
            Self::Stored(stored) => stored.response(),
        }
    }
}

/// What one operation answered.
#[allow(clippy::large_enum_variant)]
pub(super) enum Answered {
    Ran(async_graphql::Response),
    Stored(Arc<Stored>),
}

impl Answered {
    pub(super) fn into_response(self) -> async_graphql::Response {
        match self {
            Self::Ran(response) => response,
            Self::Stored(stored) => stored.response(),
        }
    }
}

/// What came of a request.
pub struct Executed {
    /// What the operations answered; or why nothing ran.
    pub result: Result<Answer, AppError>,
    /// The codes of every error in `result`'s responses.
    pub codes: Vec<String>,
    /// Why the presented token named nobody; the request ran anonymously.
    pub rejected: Option<TokenRejection>,
    /// The last rate-limit charge, for the budget headers.
    pub charge: Option<Charge>,
}

/// The answer as the client gets it, and the codes of its errors: a
/// stored answer goes out as it is, unless a rejected token must be told.
pub(super) fn finish(
    result: Result<Answer, AppError>,
    rejected: Option<TokenRejection>,
    request_id: &str,
) -> (Result<Answer, AppError>, Vec<String>) {
    match result {
        Err(e) => {
            // Nothing ran in time, or a write the response would
            // acknowledge did not commit.
            let codes = vec![e.code().as_str().to_owned()];
            (Err(e), codes)
        }
        Ok(Answer::Stored(stored)) if rejected.is_none() => {
            (Ok(Answer::Stored(stored)), Vec::new())
        }
        Ok(answer) => {
            let mut response = match answer {
                Answer::Responses(response) => response,
                Answer::Stored(stored) => BatchResponse::Single(stored.response()),
            };
            tag_errors(responses_mut(&mut response), request_id);
            if let Some(rejection) = rejected {
                tell_token_rejection(&mut response, rejection);
            }
            let codes = error_codes(&response);
            (Ok(Answer::Responses(response)), codes)
        }
    }
}

/// The responses of a batch, or the one response, as a slice.
fn responses(response: &BatchResponse) -> &[async_graphql::Response] {
    match response {
        BatchResponse::Single(r) => std::slice::from_ref(r),
        BatchResponse::Batch(rs) => rs,
    }
}

fn responses_mut(response: &mut BatchResponse) -> &mut [async_graphql::Response] {
    match response {
        BatchResponse::Single(r) => std::slice::from_mut(r),
        BatchResponse::Batch(rs) => rs,
    }
}

/// Whether nothing ran: the document did not parse or validate, a variable
/// did not coerce, or a limit refused it (a request error, which transports
/// answer differently from errors beside data).
pub fn nothing_ran(response: &async_graphql::Response) -> bool {
    response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty())
}

const REQUEST_ID_KEY: &str = "requestId";

/// Every error gets a code; internal errors carry only the request id,
/// which finds the logged cause.
pub fn tag_errors(responses: &mut [async_graphql::Response], request_id: &str) {
    for error in responses.iter_mut().flat_map(|r| r.errors.iter_mut()) {
        crate::graphql::error::fill_error_code(error);
        let extensions = error.extensions.get_or_insert_with(Default::default);
        let internal = matches!(
            extensions.get("code"),
            Some(async_graphql::Value::String(code)) if code == ErrorCode::InternalServerError.as_str()
        );
        if internal && !request_id.is_empty() {
            extensions.set(REQUEST_ID_KEY, request_id);
        }
    }
}

fn error_codes(response: &BatchResponse) -> Vec<String> {
    responses(response)
        .iter()
        .flat_map(|r| r.errors.iter())
        .map(
            |e| match e.extensions.as_ref().and_then(|x| x.get("code")) {
                Some(async_graphql::Value::String(code)) => code.clone(),
                // `tag_errors` gave every error a code first.
                _ => ErrorCode::InternalServerError.as_str().to_owned(),
            },
        )
        .collect()
}

/// Key of the top-level `extensions` entry that says why the presented
/// access token was ignored.
const AUTHENTICATION_KEY: &str = "authentication";

/// Tells the client why its token was ignored, in the response's
/// top-level `extensions` rather than in `errors`: the data is good (it is
/// what an anonymous client sees), and clients such as Apollo discard data
/// that comes with errors.
fn tell_token_rejection(response: &mut BatchResponse, rejection: TokenRejection) {
    for r in responses_mut(response).iter_mut() {
        let mut entry = async_graphql::indexmap::IndexMap::new();
        entry.insert(
            async_graphql::Name::new("code"),
            async_graphql::Value::from(rejection.code()),
        );
        entry.insert(
            async_graphql::Name::new("message"),
            async_graphql::Value::from(rejection.description()),
        );
        r.extensions.insert(
            AUTHENTICATION_KEY.to_owned(),
            async_graphql::Value::Object(entry),
        );
    }
}
