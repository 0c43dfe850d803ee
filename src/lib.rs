//! Conduit GraphQL API: the RealWorld "Conduit" backend over GraphQL.

pub mod auth;
pub mod config;
pub mod db;
pub mod error;
pub mod events;
pub mod global_id;
pub mod graphql;
pub mod http;
pub mod jobs;
pub mod rate_limit;
pub mod redis;
pub mod services;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod webhook_transport;
