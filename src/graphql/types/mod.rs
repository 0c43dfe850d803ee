pub mod global_id;
pub mod user;
pub mod user_error;
pub mod viewer;
