//! The embedded PostgreSQL, started when `DATABASE_URL` is unset.

use std::path::PathBuf;

use clap::Args;

/// The PostgreSQL started when `DATABASE_URL` is unset.
#[derive(Debug, Clone, Args)]
pub struct EmbeddedDatabase {
    /// Where the embedded PostgreSQL keeps its files.
    #[arg(
        id = "embedded_database_dir",
        long = "embedded-database-dir",
        env = "EMBEDDED_DATABASE_DIR",
        default_value = "data"
    )]
    pub dir: PathBuf,
    /// Local port of the embedded PostgreSQL.
    #[arg(
        id = "embedded_database_port",
        long = "embedded-database-port",
        env = "EMBEDDED_DATABASE_PORT",
        default_value_t = 54329
    )]
    pub port: u16,
}
