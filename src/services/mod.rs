//! Business rules and transactions. Framework-agnostic: services take plain
//! inputs and return [`crate::error::AppResult`].

pub mod accounts;
pub mod articles;
pub mod comments;
pub mod favorites;
pub mod profiles;
pub mod retention;
pub mod sessions;
pub mod validation;
pub mod webhooks;

use diesel_async::AsyncPgConnection;

use crate::{db::models::job, error::AppResult};

/// Names the request a write works for, in its transaction: the jobs it
/// causes (webhooks) carry the id into their logs. Does nothing outside a
/// request.
pub(crate) async fn tag_request(conn: &mut AsyncPgConnection) -> AppResult<()> {
    if let Some(id) = crate::telemetry::request_id() {
        job::tag_transaction(conn, &id).await?;
    }
    Ok(())
}
