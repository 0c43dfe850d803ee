//! The GraphQL schema: roots, types, loaders and guards. Resolvers stay
//! thin: they parse arguments, call a service and map the result.

pub mod cache;
pub mod connection;
pub mod document_cache;
pub mod error;
pub mod executor;
pub mod guards;
pub mod limits;
pub mod loaders;
pub mod mutation;
pub mod persisted;
pub mod query;
pub mod rate_limit;
pub mod subscription;
pub mod types;

use async_graphql::{Context, Schema};

use crate::{auth::Viewer, config::Config, state::AppState};

pub type ConduitSchema =
    Schema<query::QueryRoot, mutation::MutationRoot, subscription::SubscriptionRoot>;

/// Builds the schema. `state` is absent only when printing the SDL.
pub fn build_schema(state: Option<AppState>, config: &Config) -> ConduitSchema {
    let production = config.is_production();
    // No extensions: the limits run in the executor (see `limits`).
    let mut builder = Schema::build(
        query::QueryRoot,
        mutation::MutationRoot::default(),
        subscription::SubscriptionRoot,
    );
    if let Some(state) = state {
        builder = builder.data(state);
    }
    if production {
        // "Did you mean ...?" hints map the schema for anyone who asks.
        builder = builder.disable_suggestions();
    }
    builder.finish()
}

/// The SDL that the committed `schema.graphql` must equal.
pub fn sdl() -> String {
    build_schema(None, &Config::defaults()).sdl()
}

/// Request-scoped values every resolver may need.
pub(crate) trait ContextExt {
    fn app(&self) -> &AppState;
    fn viewer(&self) -> Option<&Viewer>;
    fn loaders(&self) -> &loaders::Loaders;
    /// The viewer of a field behind the [`guards::SignedIn`] guard, which
    /// has already refused anonymous requests: the one check is the guard.
    fn signed_in(&self) -> &Viewer;
}

impl ContextExt for Context<'_> {
    fn app(&self) -> &AppState {
        self.data_unchecked::<AppState>()
    }

    fn viewer(&self) -> Option<&Viewer> {
        self.data_opt::<Viewer>()
    }

    fn loaders(&self) -> &loaders::Loaders {
        self.data_unchecked::<std::sync::Arc<loaders::Loaders>>()
    }

    fn signed_in(&self) -> &Viewer {
        self.data_unchecked::<Viewer>()
    }
}
