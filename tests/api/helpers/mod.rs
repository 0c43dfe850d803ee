//! Test support, by concern: databases ([`database`]), configuration
//! ([`config`]), the application under test ([`app`]), the clients that
//! talk to it ([`client`] over HTTP, [`socket`] over a WebSocket), the
//! data tests start from ([`fixtures`]), shared assertions
//! ([`assertions`]), the server's metrics read by value ([`metrics`]),
//! a webhook receiver ([`receiver`]), the binary as a
//! process of its own ([`process`]), a relay in front of PostgreSQL that
//! can hold back a query's answer ([`relay`]), and a Redis server of the
//! test's own ([`redis`]).

mod app;
mod assertions;
mod client;
mod config;
mod database;
mod fixtures;
mod metrics;
mod process;
mod receiver;
mod redis;
mod relay;
mod replication;
mod socket;

pub use self::{
    app::*, assertions::*, client::*, config::*, database::*, fixtures::*, process::*, receiver::*,
    redis::*, relay::*, replication::*, socket::Socket,
};
