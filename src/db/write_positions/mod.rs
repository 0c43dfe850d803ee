//! Read your writes: each viewer's last write position, for as long as it
//! can matter (a replica within the lag bound has replayed anything
//! older). The read router sends a viewer to a replica only once it has
//! replayed that far.
//!
//! The store is a trait: [`memory::MemoryPositions`] holds it on one
//! instance (read your writes holds on that instance), and
//! [`redis::RedisPositions`] shares it, so the next read on any instance
//! knows; picked from the [`Backend`] once at start-up.

pub mod memory;
pub mod redis;

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use uuid::Uuid;

use crate::redis::Backend;

/// A position in the write-ahead log, as a number (`16/B374D848` is
/// `0x16_B374D848`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Lsn(pub u64);

impl std::str::FromStr for Lsn {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        let (high, low) = s
            .split_once('/')
            .with_context(|| format!("`{s}` is not a WAL position"))?;
        let high =
            u64::from_str_radix(high, 16).with_context(|| format!("`{s}`: bad high half"))?;
        let low = u64::from_str_radix(low, 16).with_context(|| format!("`{s}`: bad low half"))?;
        Ok(Self(high << 32 | low))
    }
}

/// What is known of a viewer's last write.
pub enum LastWrite {
    /// None recent enough to matter.
    None,
    At(Lsn),
    /// The store may have lost it.
    Forgotten,
}

/// Where each viewer's last write position is kept, for `ttl` after it.
#[async_trait::async_trait]
pub trait WritePositionStore: Send + Sync {
    /// What is known of `user`'s last write.
    async fn get(&self, user: Uuid) -> anyhow::Result<LastWrite>;

    /// Raises each of `users`' positions to `position`, never lowers one
    /// (two writes finishing out of order).
    async fn raise(&self, users: &[Uuid], position: Lsn) -> anyhow::Result<()>;
}

/// The store `backend` names, keeping each position `ttl`.
pub fn store(backend: &Backend, ttl: Duration) -> Arc<dyn WritePositionStore> {
    match backend {
        Backend::Memory => Arc::new(memory::MemoryPositions::new(ttl)),
        Backend::Redis(connection) => Arc::new(redis::RedisPositions::new(connection.clone(), ttl)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wal_positions() {
        assert_eq!("0/0".parse::<Lsn>().unwrap(), Lsn(0));
        assert_eq!("16/B374D848".parse::<Lsn>().unwrap(), Lsn(0x16_B374_D848));
        assert!("16B374D848".parse::<Lsn>().is_err());
        assert!("x/1".parse::<Lsn>().is_err());
    }
}
