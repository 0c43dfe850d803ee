//! In-process store: right for one instance; each instance of several
//! would count alone.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};

use super::RateLimitStore;

/// Windows are pruned once this many keys are held.
const PRUNE_AT: usize = 100_000;

#[derive(Default)]
pub struct MemoryStore {
    windows: Mutex<HashMap<String, Window>>,
}

struct Window {
    closes: Instant,
    used: u64,
}

#[async_trait::async_trait]
impl RateLimitStore for MemoryStore {
    async fn charge(
        &self,
        key: &str,
        cost: u64,
        window: Duration,
    ) -> anyhow::Result<(u64, DateTime<Utc>)> {
        let now = Instant::now();
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if windows.len() >= PRUNE_AT {
            windows.retain(|_, w| w.closes > now);
        }
        let entry = windows.entry(key.to_owned()).or_insert(Window {
            closes: now + window,
            used: 0,
        });
        if entry.closes <= now {
            *entry = Window {
                closes: now + window,
                used: 0,
            };
        }
        entry.used = entry.used.saturating_add(cost);
        let reset_at = Utc::now() + (entry.closes - now);
        Ok((entry.used, reset_at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn charges_add_up_within_a_window_and_restart_after() {
        let store = MemoryStore::default();
        let window = Duration::from_millis(50);
        assert_eq!(store.charge("k", 3, window).await.unwrap().0, 3);
        assert_eq!(store.charge("k", 4, window).await.unwrap().0, 7);
        assert_eq!(store.charge("other", 1, window).await.unwrap().0, 1);
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(store.charge("k", 2, window).await.unwrap().0, 2);
    }
}
