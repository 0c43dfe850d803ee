//! From what the database recorded to what the cache drops: each event
//! the bus reads names the entities and lists a write touched. Every
//! instance follows its own bus, so each drops what changed within the
//! bus's delay (a notification, then one read).

use tokio::sync::broadcast::error::RecvError;

use super::{
    ResponseCache,
    tags::{self, Tag},
};
use crate::{
    db::models::event::{self, Event, EventKind},
    events::EventBus,
    global_id,
    state::AppState,
};

/// Events a request with a mutation reads per query, and at most how many
/// such reads it makes (more pending means the bus is down: the TTL
/// bounds what stays).
const CATCH_UP_BATCH: i64 = 500;
const CATCH_UP_BATCHES: usize = 4;

/// The tags an event makes stale.
pub fn tags_of(event: &Event) -> Vec<Tag> {
    let id = |ty: &str, id: Option<uuid::Uuid>| id.map(|id| Tag::from(global_id::encode(ty, id)));
    let article = id("Article", event.article_id);
    let user = id("User", event.user_id);
    let actor = id("User", event.actor_id);
    let rel = |entity: &Option<Tag>, relation| entity.as_ref().map(|e| tags::relation(e, relation));
    let list = |tag: &str| Some(Tag::from(tag));
    let tags: Vec<Option<Tag>> = match event.kind {
        EventKind::CommentAdded | EventKind::CommentDeleted => {
            vec![rel(&article, "comments"), id("Comment", event.comment_id)]
        }
        EventKind::ArticlePublished => vec![
            list(tags::ARTICLES),
            list(tags::ARTICLES_BY_TAG),
            list(tags::ARTICLES_BY_AUTHOR),
            list(tags::TAGS),
            list(tags::ARTICLE_LOOKUP),
            rel(&user, "articles"),
        ],
        // An edit: its title, slug, body or tags.
        EventKind::ArticleUpdated => vec![
            article,
            list(tags::ARTICLES_BY_TAG),
            list(tags::TAGS),
            list(tags::ARTICLE_LOOKUP),
        ],
        EventKind::ArticleFavoritesChanged => vec![article],
        // Every list it was in, even where a page shows no article of the
        // list (only its `pageInfo`): the favorites lists of whoever
        // favorited it are not named by the event.
        EventKind::ArticleDeleted => vec![
            article,
            list(tags::ARTICLES),
            list(tags::ARTICLES_BY_TAG),
            list(tags::ARTICLES_BY_AUTHOR),
            list(tags::ARTICLES_BY_FAVORITER),
            list(tags::TAGS),
            rel(&user, "articles"),
            Some(tags::every_relation("favorites")),
        ],
        // Its count changes with an `article_favorites_changed` of its own.
        EventKind::ArticleFavorited | EventKind::ArticleUnfavorited => {
            vec![rel(&actor, "favorites"), list(tags::ARTICLES_BY_FAVORITER)]
        }
        EventKind::UserFollowed | EventKind::UserUnfollowed => vec![rel(&user, "followers")],
        EventKind::UserCreated => vec![list(tags::USER_LOOKUP)],
        EventKind::UserUpdated => vec![
            user,
            list(tags::USER_LOOKUP),
            list(tags::ARTICLES_BY_AUTHOR),
            list(tags::ARTICLES_BY_FAVORITER),
        ],
        // A signed-out session shows on no page.
        EventKind::SessionRevoked => Vec::new(),
    };
    tags.into_iter().flatten().collect()
}

/// Applies every batch of events the bus reads to `cache`, until the bus
/// closes. A batch missed (this follower fell behind) clears the cache.
pub fn follow(bus: &EventBus, cache: ResponseCache) {
    if !cache.is_enabled() {
        return;
    }
    let mut batches = bus.batches();
    // Everything before was committed before this instance served.
    cache.applied_through(bus.delivered());
    let bus = bus.clone();
    tokio::spawn(async move {
        loop {
            match batches.recv().await {
                Ok(batch) => {
                    // What a mutation here already applied (its catch-up)
                    // is not applied again: it would change nothing, and in
                    // Redis it would refuse the responses being computed.
                    let applied = cache.applied_id();
                    let tags: Vec<Tag> = batch
                        .iter()
                        .filter(|e| e.id > applied)
                        .flat_map(tags_of)
                        .collect();
                    let last = batch.last().map_or(0, |e| e.id);
                    cache.invalidate(&tags, last).await;
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "the response cache missed events; clearing it");
                    cache.clear(bus.delivered()).await;
                }
                Err(RecvError::Closed) => return,
            }
        }
    });
}

/// After a request with a mutation: applies here, at once, the
/// invalidations of everything committed since the last event this
/// instance applied (its own writes among them), reading the events
/// itself rather than waiting for the bus to be woken. The next request
/// here then sees the write; the bus applies the same events again when
/// it reads them, which changes nothing.
pub async fn catch_up(app: &AppState, cache: &ResponseCache) {
    if !cache.is_enabled() {
        return;
    }
    let Ok(mut conn) = app.db.conn().await else {
        return;
    };
    for _ in 0..CATCH_UP_BATCHES {
        let events = match event::after(&mut conn, cache.applied_id(), CATCH_UP_BATCH).await {
            Ok(events) => events,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the events to invalidate");
                return;
            }
        };
        let Some(last) = events.last().map(|e| e.id) else {
            return;
        };
        let tags: Vec<Tag> = events.iter().flat_map(tags_of).collect();
        cache.invalidate(&tags, last).await;
        if (events.len() as i64) < CATCH_UP_BATCH {
            return;
        }
    }
}
