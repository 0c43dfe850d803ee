//! Contract tests: GraphQL documents over HTTP against a real PostgreSQL.

mod accounts;
mod helpers;
mod http;
mod schema;
mod sessions;
mod tokens;
