//! Row structs, insert forms and changesets, each beside the small query
//! functions that use them. Query functions take a connection; transactions
//! belong to the services.

pub mod article;
pub mod comment;
pub mod event;
pub mod favorite;
pub mod follow;
pub mod job;
pub mod page;
pub mod retention;
pub mod session;
pub mod tag;
mod text_enum;
pub mod user;
pub mod webhook;

diesel::define_sql_function! {
    /// PostgreSQL `lower(text)`, for case-insensitive lookups that use the
    /// `lower(...)` unique indexes.
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}
