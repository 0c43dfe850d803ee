//! Test support, by concern: databases ([`database`]), configuration
//! ([`config`]), the application under test ([`app`]), the client that
//! talks to it ([`client`]), the data tests start from ([`fixtures`]), and
//! shared assertions ([`assertions`]).

mod app;
mod assertions;
mod client;
mod config;
mod database;
mod fixtures;

pub use self::{app::*, assertions::*, client::*, config::*, database::*, fixtures::*};
