//! Business rules and transactions. Framework-agnostic: services take plain
//! inputs and return [`crate::error::AppResult`].

pub mod accounts;
pub mod articles;
pub mod comments;
pub mod events;
pub mod favorites;
pub mod profiles;
pub mod sessions;
pub mod validation;
