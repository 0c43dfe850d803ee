//! From what the database recorded to what the cache drops: each event
//! the bus reads names the entities and lists a write touched. Every
//! instance follows its own bus, so each drops what changed within the
//! bus's delay (a notification, then one read).

use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;

use super::{
    ResponseCache,
    tags::{self, Tag},
};
use crate::{
    db::models::event::{self, Event, kind},
    graphql::types::global_id,
    services::events::EventBus,
    state::AppState,
};

/// How long a request with a mutation waits for this instance to drop
/// what it wrote; past it the answer goes out anyway (the bus is down or
/// far behind, and the TTL bounds what stays).
const APPLY_WAIT: Duration = Duration::from_secs(1);

/// The tags an event makes stale.
pub fn tags_of(event: &Event) -> Vec<Tag> {
    let id = |ty: &str, id: Option<uuid::Uuid>| id.map(|id| Tag::from(global_id::encode(ty, id).0));
    let article = id("Article", event.article_id);
    let user = id("User", event.user_id);
    let actor = id("User", event.actor_id);
    let rel = |entity: &Option<Tag>, relation| entity.as_ref().map(|e| tags::relation(e, relation));
    let list = |tag: &str| Some(Tag::from(tag));
    let tags: Vec<Option<Tag>> = match event.kind.as_str() {
        kind::COMMENT_ADDED | kind::COMMENT_DELETED => {
            vec![rel(&article, "comments"), id("Comment", event.comment_id)]
        }
        kind::ARTICLE_PUBLISHED => vec![
            list(tags::ARTICLES),
            list(tags::ARTICLES_BY_TAG),
            list(tags::ARTICLES_BY_AUTHOR),
            list(tags::TAGS),
            list(tags::ARTICLE_LOOKUP),
            rel(&user, "articles"),
        ],
        // An edit (its tags and slug too) or a new favorites count: the
        // event does not say which.
        kind::ARTICLE_UPDATED => vec![
            article,
            list(tags::ARTICLES_BY_TAG),
            list(tags::TAGS),
            list(tags::ARTICLE_LOOKUP),
        ],
        kind::ARTICLE_DELETED => vec![article, list(tags::TAGS)],
        // Its count changes with an `article_updated` of its own.
        kind::ARTICLE_FAVORITED => {
            vec![rel(&actor, "favorites"), list(tags::ARTICLES_BY_FAVORITER)]
        }
        kind::USER_FOLLOWED | kind::USER_UNFOLLOWED => vec![rel(&user, "followers")],
        kind::USER_CREATED => vec![list(tags::USER_LOOKUP)],
        kind::USER_UPDATED => vec![
            user,
            list(tags::USER_LOOKUP),
            list(tags::ARTICLES_BY_AUTHOR),
            list(tags::ARTICLES_BY_FAVORITER),
        ],
        _ => Vec::new(),
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
    cache.invalidate(&[], bus.delivered());
    let bus = bus.clone();
    tokio::spawn(async move {
        loop {
            match batches.recv().await {
                Ok(batch) => {
                    let tags: Vec<Tag> = batch.iter().flat_map(tags_of).collect();
                    let last = batch.last().map_or(0, |e| e.id);
                    cache.invalidate(&tags, last);
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "the response cache missed events; clearing it");
                    cache.clear(bus.delivered());
                }
                Err(RecvError::Closed) => return,
            }
        }
    });
}

/// After a request with a mutation: waits until this instance applied
/// the invalidations of everything committed so far, so the next request
/// here does not see a response from before the write.
pub async fn catch_up(app: &AppState, cache: &ResponseCache) {
    if !cache.is_enabled() {
        return;
    }
    let last = match app.db.conn().await {
        Ok(mut conn) => event::last_id(&mut conn).await,
        Err(_) => return,
    };
    match last {
        Ok(last) => {
            if !cache.applied(last, APPLY_WAIT).await {
                tracing::warn!(event = last, "the response cache is behind the event bus");
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not read the last event id"),
    }
}
