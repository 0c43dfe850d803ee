//! From a recorded event to deliveries: who is told (the endpoints that
//! want it, never the one who did it), what the payload says (with the
//! same global ids the API gives), and a delivery with its job for each,
//! in one statement.

use diesel_async::AsyncPgConnection;
use serde_json::json;
use uuid::Uuid;

use super::{EventType, job_attempts};
use crate::{
    db::{
        Database,
        models::{
            article,
            event::{self, Event},
            user,
            webhook::{self, DeliveryJob, Endpoint},
        },
    },
    error::AppResult,
    global_id,
    webhook_transport::WebhookTransport,
};

/// What an event tells, and to whom: the endpoints that want it.
struct Announcement {
    event_type: EventType,
    endpoints: Vec<Endpoint>,
    data: serde_json::Value,
}

/// Makes a delivery (and its job) for each endpoint that wants `event_id`.
/// Running it twice makes no second delivery. Returns how many were made.
pub async fn fan_out(
    db: &Database,
    webhooks: &WebhookTransport,
    event_id: i64,
    request_id: Option<&str>,
) -> AppResult<usize> {
    let mut conn = db.conn().await?;
    let Some(event) = event::find(&mut conn, event_id).await? else {
        return Ok(0);
    };
    let Some(announcement) = announce(&mut conn, &event).await? else {
        return Ok(0);
    };
    let max_pending = webhooks.settings.max_pending;
    let ids: Vec<Uuid> = announcement.endpoints.iter().map(|e| e.id).collect();
    let backlog: foldhash::HashMap<Uuid, i64> = webhook::pending_counts(&mut conn, &ids)
        .await?
        .into_iter()
        .collect();
    let body = json!({
        "type": announcement.event_type.wire(),
        "timestamp": event.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": announcement.data,
    });
    let mut wanted = Vec::new();
    for endpoint in &announcement.endpoints {
        if backlog.get(&endpoint.id).copied().unwrap_or(0) >= max_pending {
            tracing::warn!(endpoint_id = %endpoint.id, event_id, "webhook backlog full; event not queued");
            crate::telemetry::metrics_export::record_webhook("skipped");
            continue;
        }
        wanted.push(endpoint.id);
    }
    let job = DeliveryJob {
        max_attempts: job_attempts(webhooks),
        request_id,
    };
    Ok(webhook::insert_deliveries(
        &mut conn,
        &wanted,
        event_id,
        announcement.event_type.wire(),
        &body,
        &job,
    )
    .await?)
}

/// Who is told about `event`, and what: `None` when nobody is.
async fn announce(conn: &mut AsyncPgConnection, event: &Event) -> AppResult<Option<Announcement>> {
    let Some(event_type) = EventType::announcing(event.kind) else {
        return Ok(None);
    };
    let actor = match event.actor_id {
        Some(id) => user::find(conn, id).await?,
        None => None,
    };
    let Some(actor) = actor else {
        return Ok(None);
    };
    let article = match event.article_id {
        Some(id) => article::find(conn, id).await?,
        None => None,
    };
    let article_ref =
        |a: &article::Article| json!({ "id": global_id::encode("Article", a.id), "slug": a.slug });
    let actor_ref =
        json!({ "id": global_id::encode("User", actor.id), "username": actor.username });
    let (data, recipient) = match (event_type, &article) {
        (EventType::CommentCreated, Some(a)) => (
            json!({
                "article": article_ref(a),
                "comment": { "id": event.comment_id.map(|id| global_id::encode("Comment", id)) },
                "author": actor_ref,
            }),
            Some(a.author_id),
        ),
        (EventType::ArticleFavorited, Some(a)) => (
            json!({ "article": article_ref(a), "user": actor_ref }),
            Some(a.author_id),
        ),
        (EventType::UserFollowed, _) => (json!({ "follower": actor_ref }), event.user_id),
        (EventType::ArticlePublished, Some(a)) => {
            let mut reference = article_ref(a);
            reference["title"] = json!(a.title);
            (json!({ "article": reference, "author": actor_ref }), None)
        }
        // The article is gone: nothing to announce.
        (
            EventType::CommentCreated | EventType::ArticleFavorited | EventType::ArticlePublished,
            None,
        ) => return Ok(None),
    };
    let endpoints = match recipient {
        // Nobody is told about what they did themselves.
        Some(owner) if owner == actor.id => Vec::new(),
        Some(owner) => webhook::wanting(conn, &[owner], event_type.wire()).await?,
        None => webhook::of_followers_wanting(conn, actor.id, event_type.wire()).await?,
    };
    Ok((!endpoints.is_empty()).then_some(Announcement {
        event_type,
        endpoints,
        data,
    }))
}
