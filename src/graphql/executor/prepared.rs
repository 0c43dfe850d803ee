//! A request's operations, their documents resolved (persisted documents)
//! and parsed within the static limits, before anything runs; or why the
//! request is refused whole.

use std::sync::Arc;

use async_graphql::{
    Request, ServerError,
    parser::types::{ExecutableDocument, OperationType},
};

use crate::{
    error::{AppError, ErrorCode},
    graphql::error::ClientError,
    graphql::{
        limits,
        persisted::{PersistedQueryError, Registration},
    },
};

/// What a request asks to run: one operation, or a batch.
/// Built once per request and moved, never copied: the single case stays
/// inline, as in async-graphql's own `BatchRequest`.
#[allow(clippy::large_enum_variant)]
pub enum Operations {
    Single(Prepared),
    Batch(Vec<Prepared>),
}

impl Operations {
    pub(super) fn as_slice(&self) -> &[Prepared] {
        match self {
            Self::Single(operation) => std::slice::from_ref(operation),
            Self::Batch(operations) => operations.as_slice(),
        }
    }
}

/// A request with its document resolved (persisted documents) and parsed
/// within the static limits, or why not, looked up once.
pub struct Prepared {
    pub(super) request: Request,
    pub(super) document: Result<Arc<ExecutableDocument>, ServerError>,
    /// A text sent with its hash: kept once the operation has passed the
    /// limits and paid its rate-limit charge, which includes keeping it.
    pub(super) registration: Option<Registration>,
}

impl Prepared {
    /// Whether the operation is a subscription, which streams.
    pub fn is_subscription(&self) -> bool {
        let Ok(document) = &self.document else {
            return false;
        };
        limits::operation(document, self.request.operation_name.as_deref())
            .is_some_and(|op| op.ty == OperationType::Subscription)
    }

    /// Whether the operation is a mutation, which writes.
    pub fn is_mutation(&self) -> bool {
        let Ok(document) = &self.document else {
            return false;
        };
        limits::operation(document, self.request.operation_name.as_deref())
            .is_some_and(|op| op.ty == OperationType::Mutation)
    }

    /// Whether the operation is a query, as a GET must be. A document that
    /// does not parse or pass the limits is left to the run, which says why.
    pub fn is_query(&self) -> bool {
        let Ok(document) = &self.document else {
            return true;
        };
        limits::operation(document, self.request.operation_name.as_deref())
            .is_none_or(|op| op.ty == OperationType::Query)
    }

    /// The operation's name, empty when it has none.
    pub(super) fn name(&self) -> &str {
        self.request.operation_name.as_deref().unwrap_or_default()
    }
}

/// Why a request was refused before anything ran.
#[derive(Debug)]
pub enum Refusal {
    /// A limit on the whole request (its batch size).
    Limit(AppError),
    PersistedQuery(PersistedQueryError),
}

impl ClientError for Refusal {
    fn code(&self) -> ErrorCode {
        match self {
            Self::Limit(e) => e.code(),
            Self::PersistedQuery(e) => e.code(),
        }
    }

    fn client_message(&self) -> String {
        match self {
            Self::Limit(e) => e.client_message(),
            Self::PersistedQuery(e) => e.client_message(),
        }
    }

    fn extend(&self, extensions: &mut async_graphql::ErrorExtensionValues) {
        match self {
            Self::Limit(e) => e.extend(extensions),
            Self::PersistedQuery(e) => e.extend(extensions),
        }
    }
}
