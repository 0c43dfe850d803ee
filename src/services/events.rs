//! The event bus: what the database recorded (see the events migration),
//! fanned out to this instance's subscribers.
//!
//! One dedicated connection, outside the pool, `LISTEN`s. A notification
//! only wakes the bus: it then reads, on that same connection, every event
//! after the last one it delivered, in id order (which is commit order), so a notification lost
//! while the connection was down costs nothing: on reconnect the bus reads
//! what it missed from the table. For each batch it loads the rows the
//! events name (comments, articles, their authors) once, and every local
//! subscriber shares them: a new comment watched by a hundred sockets costs
//! the same queries as one watched by one. Likewise, whether a publication
//! belongs in a feed is looked up once per publication for every feed
//! subscriber of the instance (see [`reaches_feed_of`]).

use std::{
    collections::HashMap,
    pin::pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use futures_util::{FutureExt, StreamExt};
use tokio::sync::{OnceCell, broadcast};
use uuid::Uuid;

use crate::{
    auth::Viewer,
    db::{
        Database,
        models::{
            article::{self, Article},
            comment::{self, Comment},
            event::{self, Event, kind},
            follow,
            user::{self, User},
        },
    },
    error::AppResult,
};

const CHANNEL: &str = "conduit_events";
/// The listening connection's `application_name`.
pub const LISTENER_NAME: &str = "conduit events listener";
/// Events read per query while catching up.
const BATCH: i64 = 500;
/// How often an idle listening connection is checked, so one that died
/// without a word is noticed and replaced.
const CHECK_EVERY: Duration = Duration::from_secs(15);

/// An event with the rows it names, loaded once for every subscriber.
#[derive(Debug)]
pub struct Delivery {
    pub event: Event,
    /// The comment added (live when loaded).
    pub comment: Option<Comment>,
    /// The article published or updated (live when loaded).
    pub article: Option<Article>,
    /// The author of that comment or article.
    pub author: Option<Arc<User>>,
    /// Of a publication: which of the feed subscribers follow its author,
    /// once the first of them asked (see [`reaches_feed_of`]).
    feed_followers: OnceCell<foldhash::HashSet<Uuid>>,
}

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
        let listener = Listener {
            url: url.to_owned(),
            bus: bus.clone(),
        };
        tokio::spawn(listener.run());
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

struct Listener {
    url: String,
    bus: EventBus,
}

impl Listener {
    async fn run(self) {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.listen().await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "event listener lost its connection; reconnecting"
                    );
                    crate::telemetry::metrics_export::record_listener_reconnect();
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// Listens until the connection fails (an error) or nobody can
    /// subscribe any more (`Ok`).
    async fn listen(&self) -> anyhow::Result<()> {
        let mut conn = AsyncPgConnection::establish(&self.url).await?;
        // Named, so an operator (or a test) can find it in pg_stat_activity.
        conn.batch_execute(&format!(
            "SET application_name = '{LISTENER_NAME}'; LISTEN {CHANNEL}"
        ))
        .await?;
        // Whatever committed while no connection listened.
        self.deliver(&mut conn).await?;
        loop {
            let woke = {
                let mut notifications = pin!(conn.notifications_stream());
                match tokio::time::timeout(CHECK_EVERY, notifications.next()).await {
                    Ok(Some(Ok(_))) => {
                        // Fold the notifications already queued into this read.
                        while let Some(Some(next)) = notifications.next().now_or_never() {
                            next?;
                        }
                        true
                    }
                    Ok(Some(Err(e))) => return Err(e.into()),
                    Ok(None) => anyhow::bail!("the listening connection closed"),
                    Err(_) => false,
                }
            };
            if !woke {
                conn.batch_execute("SELECT 1").await?;
            }
            self.deliver(&mut conn).await?;
        }
    }

    /// Delivers every event after the last one delivered, reading on the
    /// listening connection (between notifications it has nothing else to
    /// do, and requests keep the whole pool).
    async fn deliver(&self, conn: &mut AsyncPgConnection) -> anyhow::Result<()> {
        loop {
            let after = self.bus.delivered();
            let events = event::after(conn, after, BATCH).await?;
            let Some(last) = events.last().map(|e| e.id) else {
                return Ok(());
            };
            let count = events.len();
            let _ = self.bus.batches.send(events.as_slice().into());
            let deliveries = load(conn, events).await?;
            for delivery in deliveries {
                // No subscriber is not an error.
                if delivery.event.kind == kind::SESSION_REVOKED {
                    if let Some(session) = delivery.event.session_id {
                        let _ = self.bus.revoked.send(session);
                    }
                    continue;
                }
                let _ = self.bus.sender.send(Arc::new(delivery));
            }
            self.bus.delivered.store(last, Ordering::Release);
            crate::telemetry::metrics_export::record_events(count);
            if (count as i64) < BATCH {
                return Ok(());
            }
        }
    }
}

/// The rows `events` name, in one query per kind of row.
pub async fn load(conn: &mut AsyncPgConnection, events: Vec<Event>) -> AppResult<Vec<Delivery>> {
    let comment_ids: Vec<Uuid> = events
        .iter()
        .filter(|e| e.kind == kind::COMMENT_ADDED)
        .filter_map(|e| e.comment_id)
        .collect();
    let article_ids: Vec<Uuid> = events
        .iter()
        .filter(|e| {
            matches!(
                e.kind.as_str(),
                kind::ARTICLE_PUBLISHED | kind::ARTICLE_UPDATED | kind::ARTICLE_FAVORITES_CHANGED
            )
        })
        .filter_map(|e| e.article_id)
        .collect();
    let comments: HashMap<Uuid, Comment> = comment::find_many(conn, &comment_ids)
        .await?
        .into_iter()
        .map(|c| (c.id, c))
        .collect();
    let articles: HashMap<Uuid, Article> = article::find_many(conn, &article_ids)
        .await?
        .into_iter()
        .map(|a| (a.id, a))
        .collect();
    let author_ids: Vec<Uuid> = comments
        .values()
        .map(|c| c.author_id)
        .chain(articles.values().map(|a| a.author_id))
        .collect();
    let authors: HashMap<Uuid, Arc<User>> = user::find_many(conn, &author_ids)
        .await?
        .into_iter()
        .map(|u| (u.id, Arc::new(u)))
        .collect();
    Ok(events
        .into_iter()
        .map(|event| {
            let comment = event.comment_id.and_then(|id| comments.get(&id).cloned());
            let article = event.article_id.and_then(|id| articles.get(&id).cloned());
            let author_id = comment
                .as_ref()
                .map(|c| c.author_id)
                .or(article.as_ref().map(|a| a.author_id));
            let author = author_id.and_then(|id| authors.get(&id).cloned());
            Delivery {
                event,
                comment,
                article,
                author,
                feed_followers: OnceCell::new(),
            }
        })
        .collect())
}

/// One article's events after `after` (an event id), with their rows,
/// oldest first: what a subscriber missed.
pub async fn replay_article(
    db: &Database,
    article_id: Uuid,
    after: i64,
) -> AppResult<Vec<Delivery>> {
    let mut conn = db.conn().await?;
    let events = event::of_article_after(&mut conn, article_id, after, BATCH).await?;
    load(&mut conn, events).await
}

/// Articles published after `after` by authors the viewer follows.
pub async fn replay_feed(db: &Database, viewer: &Viewer, after: i64) -> AppResult<Vec<Delivery>> {
    let mut conn = db.conn().await?;
    let events =
        event::published_for_follower_after(&mut conn, viewer.user_id, after, BATCH).await?;
    load(&mut conn, events).await
}

/// Whether `viewer` follows the author of `delivery` (a publication) now.
/// The first feed subscriber to ask looks it up for every feed subscriber
/// of the instance, in one query; the others wait for and share its
/// answer: a thousand feeds cost one query per publication, not a
/// thousand.
pub async fn reaches_feed_of(
    db: &Database,
    bus: &EventBus,
    delivery: &Delivery,
    viewer: &Viewer,
) -> AppResult<bool> {
    let Some(author) = delivery.event.user_id else {
        return Ok(false);
    };
    let followers = delivery
        .feed_followers
        .get_or_try_init(|| async {
            let viewers: Vec<Uuid> = bus
                .feed_viewers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .keys()
                .copied()
                .collect();
            let mut conn = db.conn().await?;
            let followers = follow::followers_among(&mut conn, author, &viewers).await?;
            AppResult::Ok(followers.into_iter().collect())
        })
        .await?;
    Ok(followers.contains(&viewer.user_id))
}
