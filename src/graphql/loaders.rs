//! DataLoaders, built per request. Each batches its keys into one `= ANY`
//! query, so relationship fields never cost a query per parent row.

use std::collections::HashMap;

use async_graphql::dataloader::{DataLoader, Loader};
use uuid::Uuid;

use crate::{db::models::user::User, services::accounts, state::AppState};

/// A user looked up by primary key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UserById(pub Uuid);

pub struct UserLoader {
    state: AppState,
}

impl Loader<UserById> for UserLoader {
    type Value = User;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[UserById]) -> Result<HashMap<UserById, User>, Self::Error> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let users = accounts::find_many(&self.state, &ids).await?;
        Ok(users.into_iter().map(|u| (UserById(u.id), u)).collect())
    }
}

/// All loaders of one request.
pub struct Loaders {
    pub users: DataLoader<UserLoader>,
}

impl Loaders {
    /// `spawn` runs each batch; the HTTP layer passes one that keeps the
    /// request's tracing span, so batch log lines carry the request id.
    pub fn new<S, R>(state: &AppState, spawn: S) -> Self
    where
        S: Fn(futures_util::future::BoxFuture<'static, ()>) -> R + Send + Sync + Clone + 'static,
    {
        Self {
            users: DataLoader::new(
                UserLoader {
                    state: state.clone(),
                },
                spawn,
            ),
        }
    }
}
