//! Business rules and transactions. Framework-agnostic: services take plain
//! inputs and return [`crate::error::AppResult`].

pub mod accounts;
pub mod sessions;
pub mod validation;
