//! The GraphQL output types, one file per type; each says with its cache hint
//! whether what it shows is public.

pub mod article;
pub mod comment;
pub mod global_id;
pub mod node;
pub mod session;
pub mod user;
pub mod user_error;
pub mod viewer;
pub mod webhook;
