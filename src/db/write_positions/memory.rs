//! Write positions in this process: read your writes holds on the
//! instance that made the write.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use uuid::Uuid;

use super::{LastWrite, Lsn, WritePositionStore};

/// Entries past which the store sweeps out expired ones.
const SWEEP_AT: usize = 10_000;

pub struct MemoryPositions {
    map: Mutex<HashMap<Uuid, (Lsn, Instant)>>,
    ttl: Duration,
}

impl MemoryPositions {
    pub fn new(ttl: Duration) -> Self {
        Self {
            map: Mutex::default(),
            ttl,
        }
    }
}

#[async_trait::async_trait]
impl WritePositionStore for MemoryPositions {
    async fn get(&self, user: Uuid) -> anyhow::Result<LastWrite> {
        Ok(self
            .map
            .lock()
            .expect("positions lock")
            .get(&user)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map_or(LastWrite::None, |(position, _)| LastWrite::At(*position)))
    }

    async fn raise(&self, users: &[Uuid], position: Lsn) -> anyhow::Result<()> {
        let mut map = self.map.lock().expect("positions lock");
        if map.len() >= SWEEP_AT {
            map.retain(|_, (_, at)| at.elapsed() < self.ttl);
        }
        for user in users {
            let entry = map.entry(*user).or_insert((position, Instant::now()));
            *entry = (entry.0.max(position), Instant::now());
        }
        Ok(())
    }
}
