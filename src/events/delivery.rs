//! What subscribers receive: an event with the rows it names, loaded once
//! for all of them; what a subscriber missed, read again from the table;
//! and whether a publication reaches a feed subscriber.

use std::{collections::HashMap, sync::Arc};

use diesel_async::AsyncPgConnection;
use tokio::sync::OnceCell;
use uuid::Uuid;

use super::EventBus;
use crate::{
    auth::Viewer,
    db::{
        Database,
        models::{
            article::{self, Article},
            comment::{self, Comment},
            event::{self, Event, EventKind},
            follow,
            user::{self, User},
        },
    },
    error::AppResult,
};

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

/// Events read per query, live or replayed.
pub(super) const BATCH: i64 = 500;

/// What an event of a kind brings with it: the live row subscribers are
/// sent, or the session whose connections end.
pub(super) enum Carries {
    Comment,
    Article,
    Nothing,
    SignOut,
}

pub(super) fn carries(kind: EventKind) -> Carries {
    match kind {
        EventKind::CommentAdded => Carries::Comment,
        EventKind::ArticlePublished
        | EventKind::ArticleUpdated
        | EventKind::ArticleFavoritesChanged => Carries::Article,
        EventKind::SessionRevoked => Carries::SignOut,
        // Gone, or a change that subscribers are not sent rows for.
        EventKind::CommentDeleted
        | EventKind::ArticleDeleted
        | EventKind::ArticleFavorited
        | EventKind::ArticleUnfavorited
        | EventKind::UserCreated
        | EventKind::UserUpdated
        | EventKind::UserFollowed
        | EventKind::UserUnfollowed => Carries::Nothing,
    }
}

/// The rows `events` name, in one query per kind of row.
pub(super) async fn load(
    conn: &mut AsyncPgConnection,
    events: Vec<Event>,
) -> AppResult<Vec<Delivery>> {
    let comment_ids: Vec<Uuid> = events
        .iter()
        .filter(|e| matches!(carries(e.kind), Carries::Comment))
        .filter_map(|e| e.comment_id)
        .collect();
    let article_ids: Vec<Uuid> = events
        .iter()
        .filter(|e| matches!(carries(e.kind), Carries::Article))
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
