//! The event bus: what the database recorded (see the events migration),
//! fanned out to this instance's subscribers, its response cache and the
//! connections of sessions signed out.
//!
//! One dedicated connection, outside the pool, `LISTEN`s (see
//! [`listener`]). A notification only wakes the bus: it then reads, on
//! that same connection, every event after the last one it delivered, in
//! id order (which is commit order), so a notification lost while the
//! connection was down costs nothing: on reconnect the bus reads what it
//! missed from the table. For each batch it loads the rows the events name
//! (comments, articles, their authors) once, and every local subscriber
//! shares them (see [`delivery`]): a new comment watched by a hundred
//! sockets costs the same queries as one watched by one. Likewise, whether
//! a publication belongs in a feed is looked up once per publication for
//! every feed subscriber of the instance (see [`reaches_feed_of`]).

mod delivery;
mod listener;

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicI64, Ordering},
    },
};

use tokio::sync::broadcast;
use uuid::Uuid;

pub use self::{
    delivery::{Delivery, reaches_feed_of, replay_article, replay_feed},
    listener::LISTENER_NAME,
};
use crate::{
    auth::Viewer,
    db::{
        Database,
        models::event::{self, Event},
    },
};

/// The bus: subscribe to get every delivery from now on.
#[derive(Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Arc<Delivery>>,
    /// Sessions signed out, for the connections they authenticated.
    revoked: broadcast::Sender<Uuid>,
    /// Every batch of events as read, before their rows are loaded: for
    /// followers that need only what the events name (the response cache).
    batches: broadcast::Sender<Arc<[Event]>>,
    delivered: Arc<AtomicI64>,
    /// The viewers with a live feed subscription here, with how many each.
    feed_viewers: Arc<Mutex<HashMap<Uuid, usize>>>,
}

/// A viewer counted among the feed subscribers while this lives.
pub struct FeedWatch {
    viewer: Uuid,
    feed_viewers: Arc<Mutex<HashMap<Uuid, usize>>>,
}

impl Drop for FeedWatch {
    fn drop(&mut self) {
        let mut viewers = self.feed_viewers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = viewers.get_mut(&self.viewer) {
            *count -= 1;
            if *count == 0 {
                viewers.remove(&self.viewer);
            }
        }
    }
}

impl EventBus {
    /// Starts listening on `url` (a connection of its own) and delivering
    /// what `db` reads. `capacity` bounds what a subscriber may fall behind.
    pub async fn start(url: &str, db: Database, capacity: usize) -> anyhow::Result<Self> {
        let mut conn = db
            .conn()
            .await
            .map_err(|_| anyhow::anyhow!("no database connection"))?;
        let last = event::last_id(&mut conn).await?;
        drop(conn);
        let (sender, _) = broadcast::channel(capacity.max(1));
        let (revoked, _) = broadcast::channel(capacity.max(1));
        let (batches, _) = broadcast::channel(capacity.max(1));
        let bus = Self {
            sender,
            revoked,
            batches,
            delivered: Arc::new(AtomicI64::new(last)),
            feed_viewers: Arc::default(),
        };
        tokio::spawn(listener::Listener::new(url, bus.clone()).run());
        Ok(bus)
    }

    /// Every delivery from now on. A receiver that falls `capacity`
    /// deliveries behind is told so ([`broadcast::error::RecvError::Lagged`]).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Delivery>> {
        self.sender.subscribe()
    }

    /// Every delivery from now on, for `viewer`'s feed: the viewer counts
    /// among the feed subscribers (see [`reaches_feed_of`]) until the
    /// watch is dropped. Counted before listening, so every publication
    /// it hears of is looked up with it included.
    pub fn subscribe_feed(
        &self,
        viewer: &Viewer,
    ) -> (FeedWatch, broadcast::Receiver<Arc<Delivery>>) {
        *self
            .feed_viewers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(viewer.user_id)
            .or_default() += 1;
        let watch = FeedWatch {
            viewer: viewer.user_id,
            feed_viewers: self.feed_viewers.clone(),
        };
        (watch, self.subscribe())
    }

    /// Every batch of events read from now on, oldest first. A receiver
    /// that falls `capacity` batches behind is told so.
    pub fn batches(&self) -> broadcast::Receiver<Arc<[Event]>> {
        self.batches.subscribe()
    }

    /// The ids of sessions signed out from now on.
    pub fn revocations(&self) -> broadcast::Receiver<Uuid> {
        self.revoked.subscribe()
    }

    /// The id of the last event delivered: a subscriber that starts now
    /// and replays up to this id misses nothing.
    pub fn delivered(&self) -> i64 {
        self.delivered.load(Ordering::Acquire)
    }
}
