//! Contract tests: GraphQL documents over HTTP against a real PostgreSQL.

mod accounts;
mod articles;
mod cache_differential;
mod comments;
mod database_restart;
mod executor;
mod helpers;
mod hostile_http;
mod http;
mod jobs;
mod limits;
mod nodes;
mod pagination;
mod persisted;
mod plans;
mod profiles;
mod query_count;
mod rate_limits;
mod replicas;
mod response_cache;
mod schema;
mod sessions;
mod spec_replay;
mod subscriptions;
mod tokens;
mod webhooks;
