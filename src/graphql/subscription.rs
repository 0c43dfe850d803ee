//! The subscription root: what changes, pushed as it commits.
//!
//! Each subscription takes `after`, the cursor of the last event a client
//! saw: it first replays what came after it from the database, then goes
//! live from the instance's event bus, with no gap and no duplicate (event
//! ids are in commit order, and a live event at or before the last one
//! replayed is skipped). Without `after` it starts now.
//!
//! The rows an event names are loaded once for every subscriber of the
//! instance (see `crate::events`); each event is resolved with the
//! subscriber's loaders cleared and primed with them, so nothing stale
//! from an earlier event is served and shared rows cost no query.

use std::sync::Arc;

use async_graphql::{Context, Enum, ID, SimpleObject, Subscription};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use futures_util::{Stream, StreamExt, stream};
use tokio::sync::broadcast::{Receiver, error::RecvError};

use super::{
    ContextExt,
    guards::SignedIn,
    loaders::{self, ArticleById, CommentById, Loaders, UserById},
    types::{article::Article, comment::Comment, global_id},
};
use crate::{
    db::models::event::EventKind,
    error::AppError,
    events::{self, Delivery},
    telemetry::metrics_export,
};

/// Most events a subscription replays; a client further behind reloads
/// the page instead.
const MAX_REPLAY: usize = 500;

#[derive(Default)]
pub struct SubscriptionRoot;

/// Which subscription hears of an event, and as what: each kind of event
/// is heard by one subscription at most.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Heard {
    Comment(CommentChange),
    Article(ArticleChange),
    /// A publication, for the feeds of its author's followers.
    Feed,
    Nowhere,
}

impl Heard {
    fn of(kind: EventKind) -> Self {
        match kind {
            EventKind::CommentAdded => Self::Comment(CommentChange::Added),
            EventKind::CommentDeleted => Self::Comment(CommentChange::Deleted),
            EventKind::ArticleUpdated | EventKind::ArticleFavoritesChanged => {
                Self::Article(ArticleChange::Updated)
            }
            EventKind::ArticleDeleted => Self::Article(ArticleChange::Deleted),
            EventKind::ArticlePublished => Self::Feed,
            // For the response cache and webhooks only (a favorite shows
            // on an article as its new count).
            EventKind::ArticleFavorited
            | EventKind::ArticleUnfavorited
            | EventKind::UserCreated
            | EventKind::UserUpdated
            | EventKind::UserFollowed
            | EventKind::UserUnfollowed
            | EventKind::SessionRevoked => Self::Nowhere,
        }
    }
}

/// What happened to a comment.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum CommentChange {
    Added,
    Deleted,
}

/// A comment added to or deleted from the article.
#[derive(SimpleObject)]
pub struct CommentEvent {
    /// Pass as `after` to resume after this event.
    cursor: String,
    change: CommentChange,
    /// The comment's global id (also for a deleted one).
    comment_id: ID,
    /// The comment as it is now; null once deleted.
    comment: Option<Comment>,
}

/// What happened to an article.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum ArticleChange {
    /// An edit, its tags, or its favorites count.
    Updated,
    Deleted,
}

/// A change to the article.
#[derive(SimpleObject)]
pub struct ArticleEvent {
    /// Pass as `after` to resume after this event.
    cursor: String,
    change: ArticleChange,
    article_id: ID,
    /// The article as it is now; null once deleted.
    article: Option<Article>,
}

/// An article published by someone the viewer follows.
#[derive(SimpleObject)]
pub struct FeedEvent {
    /// Pass as `after` to resume after this event.
    cursor: String,
    article: Article,
}

#[Subscription(name = "Subscription")]
impl SubscriptionRoot {
    /// Comments added to and deleted from one article, in order.
    async fn comment_events(
        &self,
        ctx: &Context<'_>,
        article_id: ID,
        after: Option<String>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<CommentEvent>> + use<>>
    {
        let wanted = |heard| matches!(heard, Heard::Comment(_));
        let (_, deliveries) = article_deliveries(ctx, &article_id, after, wanted).await?;
        Ok(deliveries.map(|delivery| {
            let delivery = delivery?;
            let added = Heard::of(delivery.event.kind) == Heard::Comment(CommentChange::Added);
            Ok(CommentEvent {
                cursor: encode_cursor(delivery.event.id),
                change: if added {
                    CommentChange::Added
                } else {
                    CommentChange::Deleted
                },
                comment_id: global_id::of::<Comment>(delivery.event.comment_id.unwrap_or_default()),
                comment: delivery.comment.clone().filter(|_| added).map(Comment),
            })
        }))
    }

    /// Edits, favorites and the deletion of one article, in order.
    async fn article_events(
        &self,
        ctx: &Context<'_>,
        article_id: ID,
        after: Option<String>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<ArticleEvent>> + use<>>
    {
        let wanted = |heard| matches!(heard, Heard::Article(_));
        let (id, deliveries) = article_deliveries(ctx, &article_id, after, wanted).await?;
        Ok(deliveries.map(move |delivery| {
            let delivery = delivery?;
            let deleted = Heard::of(delivery.event.kind) == Heard::Article(ArticleChange::Deleted);
            Ok(ArticleEvent {
                cursor: encode_cursor(delivery.event.id),
                change: if deleted {
                    ArticleChange::Deleted
                } else {
                    ArticleChange::Updated
                },
                article_id: global_id::of::<Article>(id),
                article: delivery
                    .article
                    .clone()
                    .filter(|_| !deleted)
                    .map(Article::from),
            })
        }))
    }

    /// Articles newly published by the authors the viewer follows, in
    /// order.
    #[graphql(guard = "SignedIn")]
    async fn feed_events(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<FeedEvent>> + use<>> {
        let after = after.as_deref().map(decode_cursor).transpose()?;
        let app = ctx.app().clone();
        let viewer = *ctx.signed_in();
        let (watch, live) = app.events.subscribe_feed(&viewer);
        let start = after.unwrap_or_else(|| app.events.delivered());
        let missed = events::replay_feed(&app.db, &viewer, start).await?;
        // What was replayed is by authors the viewer follows already (the
        // replay reads only theirs).
        let replayed = missed.last().map_or(i64::MIN, |d| d.event.id);
        let wanted = |d: &Delivery| Heard::of(d.event.kind) == Heard::Feed && d.article.is_some();
        let followed = replay_then_live(missed, start, live, wanted)?.filter_map(move |delivery| {
            // The viewer counts among the feed subscribers while the
            // stream lives.
            let _watch = &watch;
            let app = app.clone();
            async move {
                let delivery = match delivery {
                    Ok(delivery) if delivery.event.id > replayed => delivery,
                    // Replayed, or an error: passed on as it is.
                    other => return Some(other),
                };
                // Whether the viewer follows the author now, answered for
                // every feed subscriber of the instance at once.
                match events::reaches_feed_of(&app.db, &app.events, &delivery, &viewer).await {
                    Ok(true) => Some(Ok(delivery)),
                    Ok(false) => None,
                    Err(e) => Some(Err(e)),
                }
            }
        });
        Ok(primed(ctx, followed).map(|delivery| {
            let delivery = delivery?;
            let article = delivery
                .article
                .clone()
                .ok_or(AppError::NotFound("article"))?;
            Ok(FeedEvent {
                cursor: encode_cursor(delivery.event.id),
                article: Article::from(article),
            })
        }))
    }
}

/// One article's events a subscription `wanted`, replayed from `after` and then live,
/// each with the loaders primed for it. `NOT_FOUND` for an article that is
/// not live now.
async fn article_deliveries(
    ctx: &Context<'_>,
    article_id: &ID,
    after: Option<String>,
    wanted: fn(Heard) -> bool,
) -> async_graphql::Result<(
    uuid::Uuid,
    impl Stream<Item = async_graphql::Result<Arc<Delivery>>> + use<>,
)> {
    let id = global_id::decode_as::<Article>(article_id)?;
    let after = after.as_deref().map(decode_cursor).transpose()?;
    let app = ctx.app().clone();
    // Listening before reading what was missed, so nothing falls between.
    let live = app.events.subscribe();
    if ctx.loaders().load_one(ArticleById(id)).await?.is_none() {
        return Err(AppError::NotFound("article").into());
    }
    let start = after.unwrap_or_else(|| app.events.delivered());
    let missed = events::replay_article(&app.db, id, start).await?;
    let wanted =
        move |d: &Delivery| d.event.article_id == Some(id) && wanted(Heard::of(d.event.kind));
    let deliveries = replay_then_live(missed, start, live, wanted)?;
    Ok((id, primed(ctx, deliveries)))
}

/// `deliveries`, each resolved with the subscriber's loaders primed for it
/// (see [`prime`]).
fn primed<S>(
    ctx: &Context<'_>,
    deliveries: S,
) -> impl Stream<Item = async_graphql::Result<Arc<Delivery>>> + use<S>
where
    S: Stream<Item = Result<Arc<Delivery>, AppError>> + Send + 'static,
{
    let loaders = ctx.data_unchecked::<Arc<Loaders>>().clone();
    deliveries.then(move |delivery| {
        let loaders = loaders.clone();
        async move {
            let delivery = delivery?;
            let lag = chrono::Utc::now() - delivery.event.created_at;
            metrics_export::record_event_sent(lag.to_std().unwrap_or_default());
            prime(&loaders, &delivery).await;
            Ok(delivery)
        }
    })
}

/// The deliveries `wanted` picks: first of `missed` (read from the
/// database after `start`), then live ones, none at or before the last one
/// read. A
/// subscriber that falls too far behind the bus ends with
/// `SERVICE_UNAVAILABLE`; it resumes from its last cursor.
fn replay_then_live(
    missed: Vec<Delivery>,
    start: i64,
    live: Receiver<Arc<Delivery>>,
    wanted: impl Fn(&Delivery) -> bool + Send + 'static,
) -> async_graphql::Result<impl Stream<Item = Result<Arc<Delivery>, AppError>> + Send + 'static> {
    if missed.len() >= MAX_REPLAY {
        return Err(AppError::BadUserInput(format!(
            "more than {MAX_REPLAY} events were missed; reload instead of resuming"
        ))
        .into());
    }
    // Live events resume after the last one read, wanted or not.
    let last = missed.last().map_or(start, |d| d.event.id);
    let missed: Vec<_> = missed.into_iter().filter(|d| wanted(d)).collect();
    let replayed = stream::iter(missed.into_iter().map(|d| Ok(Arc::new(d))));
    let live = stream::unfold(Some((live, last)), move |state| async move {
        let (mut live, last) = state?;
        loop {
            match live.recv().await {
                Ok(delivery) if delivery.event.id > last => {
                    let id = delivery.event.id;
                    return Some((Ok(delivery), Some((live, id))));
                }
                Ok(_) => {}
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "a subscriber fell behind the event bus; ending it");
                    let e = AppError::Unavailable(
                        "this subscription fell behind; subscribe again with the last cursor",
                    );
                    return Some((Err(e), None));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    })
    .filter(move |d| std::future::ready(d.as_ref().map_or(true, |d| wanted(d))));
    Ok(replayed.chain(live))
}

/// Forgets what the loaders cached for the previous event and gives them
/// the rows this one names.
async fn prime(loaders: &Loaders, delivery: &Delivery) {
    loaders::clear_all(loaders);
    if let Some(author) = &delivery.author {
        loaders.feed_one(UserById(author.id), author.clone()).await;
    }
    if let Some(comment) = &delivery.comment {
        loaders
            .feed_one(CommentById(comment.id), comment.clone())
            .await;
    }
    if let Some(article) = &delivery.article {
        loaders
            .feed_one(ArticleById(article.id), article.clone())
            .await;
    }
}

fn encode_cursor(id: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("event:{id}"))
}

fn decode_cursor(cursor: &str) -> Result<i64, AppError> {
    let bad = || AppError::BadUserInput(format!("`{cursor}` is not a valid event cursor"));
    let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    text.strip_prefix("event:")
        .and_then(|id| id.parse().ok())
        .filter(|id: &i64| *id >= 0)
        .ok_or_else(bad)
}
