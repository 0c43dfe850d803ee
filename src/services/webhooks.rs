//! Webhooks: users' endpoints for activity on their own things, the
//! fan-out of a recorded event to the endpoints that want it, and each
//! delivery's attempts and what they mean for the endpoint.

use std::time::Duration;

use chrono::Utc;
use diesel_async::AsyncConnection;
use rand::Rng as _;
use serde_json::json;
use uuid::Uuid;

use crate::{
    auth::Viewer,
    db::{
        Database,
        models::{
            article,
            event::{self, Event, kind},
            job::{self, NewJob},
            page::{Page, PageRequest},
            user,
            webhook::{
                self, Attempted, Delivery, DeliveryJob, Endpoint, EndpointChanges, NewEndpoint,
                status,
            },
        },
    },
    error::{AppError, AppResult, FieldError, UserErrorCode},
    graphql::types::global_id,
    jobs::{self, Outcome},
    state::AppState,
    webhooks::{Message, Webhooks, address, signature},
};

/// What an endpoint can ask to be told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Someone commented on one of my articles.
    CommentCreated,
    /// Someone favorited one of my articles.
    ArticleFavorited,
    /// Someone followed me.
    UserFollowed,
    /// Someone I follow published an article.
    ArticlePublished,
}

impl EventType {
    /// The `type` of the message body, as stored on the endpoint.
    pub fn wire(self) -> &'static str {
        match self {
            Self::CommentCreated => "comment.created",
            Self::ArticleFavorited => "article.favorited",
            Self::UserFollowed => "user.followed",
            Self::ArticlePublished => "article.published",
        }
    }

    pub fn from_wire(name: &str) -> Option<Self> {
        [
            Self::CommentCreated,
            Self::ArticleFavorited,
            Self::UserFollowed,
            Self::ArticlePublished,
        ]
        .into_iter()
        .find(|t| t.wire() == name)
    }
}

/// How long a rotated-out secret keeps signing, so receivers can switch.
const PREVIOUS_SECRET_SIGNS_FOR: chrono::TimeDelta = chrono::TimeDelta::hours(24);
/// Room for attempts a worker's death cut short, beyond the retry schedule.
const SPARE_JOB_ATTEMPTS: i32 = 3;
/// The longest a receiver's `Retry-After` can put the next attempt off.
const LONGEST_RETRY_AFTER: Duration = Duration::from_secs(6 * 3600);

/// Registers an endpoint for the viewer; returns it with its new secret
/// (the row holds it sealed, when a key is set).
pub async fn create_endpoint(
    state: &AppState,
    viewer: &Viewer,
    url: &str,
    types: &[EventType],
) -> AppResult<(Endpoint, String)> {
    let (url, types) = checked(state, Some(url), Some(types)).await?;
    let (url, types) = (url.unwrap_or_default(), types.unwrap_or_default());
    let secret = signature::new_secret();
    let id = Uuid::now_v7();
    let sealed = state.webhooks.sealer.seal(id, &secret);
    let max = state.webhooks.settings.max_endpoints;
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        if webhook::count_of_user(conn, viewer.user_id).await? >= max {
            return Err(AppError::Invalid(vec![FieldError::new(
                "url",
                UserErrorCode::LimitReached,
                format!("an account may have at most {max} webhook endpoints"),
            )]));
        }
        let endpoint = webhook::insert(
            conn,
            &NewEndpoint {
                id,
                user_id: viewer.user_id,
                url: &url,
                event_types: &types,
                secret: &sealed,
            },
        )
        .await?;
        Ok((endpoint, secret))
    })
    .await
}

/// Changes the viewer's endpoint; `enabled: true` re-enables a disabled one.
pub async fn update_endpoint(
    state: &AppState,
    viewer: &Viewer,
    id: Uuid,
    url: Option<&str>,
    types: Option<&[EventType]>,
    enabled: Option<bool>,
) -> AppResult<Endpoint> {
    let (url, types) = checked(state, url, types).await?;
    let mut changes = EndpointChanges {
        url: url.as_deref(),
        event_types: types.as_deref(),
        ..Default::default()
    };
    match enabled {
        Some(true) => {
            changes.disabled_at = Some(None);
            changes.disabled_reason = Some(None);
            changes.failing_since = Some(None);
        }
        Some(false) => {
            changes.disabled_at = Some(Some(Utc::now()));
            changes.disabled_reason = Some(Some("disabled by its owner"));
        }
        None => {}
    }
    let mut conn = state.db.conn().await?;
    if changes.url.is_none() && changes.event_types.is_none() && changes.disabled_at.is_none() {
        return webhook::find_owned(&mut conn, id, viewer.user_id)
            .await?
            .ok_or(AppError::NotFound("webhook endpoint"));
    }
    webhook::update_owned(&mut conn, id, viewer.user_id, &changes)
        .await?
        .ok_or(AppError::NotFound("webhook endpoint"))
}

pub async fn delete_endpoint(state: &AppState, viewer: &Viewer, id: Uuid) -> AppResult<()> {
    let mut conn = state.db.conn().await?;
    if webhook::delete_owned(&mut conn, id, viewer.user_id).await? {
        Ok(())
    } else {
        Err(AppError::NotFound("webhook endpoint"))
    }
}

/// A new secret for the viewer's endpoint, returned with it; the old one
/// signs beside it for a day.
pub async fn rotate_secret(
    state: &AppState,
    viewer: &Viewer,
    id: Uuid,
) -> AppResult<(Endpoint, String)> {
    let secret = signature::new_secret();
    let mut conn = state.db.conn().await?;
    let endpoint = webhook::rotate_secret(
        &mut conn,
        id,
        viewer.user_id,
        &state.webhooks.sealer.seal(id, &secret),
        Utc::now() + PREVIOUS_SECRET_SIGNS_FOR,
    )
    .await?
    .ok_or(AppError::NotFound("webhook endpoint"))?;
    Ok((endpoint, secret))
}

pub async fn endpoints(
    state: &AppState,
    user_id: Uuid,
    page: &PageRequest,
) -> AppResult<Page<Endpoint>> {
    let mut conn = state.db.conn().await?;
    Ok(webhook::list_of_user(&mut conn, user_id, page).await?)
}

/// An endpoint's deliveries; the caller has the endpoint (it is the viewer's).
pub async fn deliveries(
    state: &AppState,
    endpoint_id: Uuid,
    page: &PageRequest,
) -> AppResult<Page<Delivery>> {
    let mut conn = state.db.conn().await?;
    Ok(webhook::list_of_endpoint(&mut conn, endpoint_id, page).await?)
}

/// Sends one of the viewer's finished deliveries again (same `webhook-id`).
pub async fn redeliver(state: &AppState, viewer: &Viewer, id: Uuid) -> AppResult<Delivery> {
    let max_attempts = job_attempts(&state.webhooks);
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        let found = webhook::find_owned_delivery(conn, id, viewer.user_id)
            .await?
            .ok_or(AppError::NotFound("webhook delivery"))?;
        if found.status == status::PENDING {
            return Err(AppError::Invalid(vec![FieldError::new(
                "id",
                UserErrorCode::Invalid,
                "this delivery is still being attempted",
            )]));
        }
        let delivery = webhook::reset_for_redelivery(conn, id)
            .await?
            .ok_or(AppError::NotFound("webhook delivery"))?;
        let request_id = crate::telemetry::request_id();
        job::enqueue(
            conn,
            &[NewJob {
                kind: jobs::kind::DELIVER_WEBHOOK,
                payload: json!({ "delivery_id": id }),
                run_at: None,
                max_attempts,
                request_id: request_id.as_deref(),
            }],
        )
        .await?;
        Ok(delivery)
    })
    .await
}

/// The URL and event types of an endpoint, checked; each `None` stays so.
async fn checked(
    state: &AppState,
    url: Option<&str>,
    types: Option<&[EventType]>,
) -> AppResult<(Option<String>, Option<Vec<String>>)> {
    let mut errors = Vec::new();
    let url = match url {
        None => None,
        Some(raw) if raw.len() > super::validation::IMAGE_MAX => {
            errors.push(FieldError::new(
                "url",
                UserErrorCode::TooLong,
                format!(
                    "url must be at most {} characters",
                    super::validation::IMAGE_MAX
                ),
            ));
            None
        }
        Some(raw) => match address::check_url(raw, state.webhooks.policy).await {
            Ok(url) => Some(url.to_string()),
            Err(why) => {
                let code = match &why {
                    address::UrlError::Refused { detail } => {
                        tracing::info!(detail, "webhook endpoint URL refused");
                        UserErrorCode::Refused
                    }
                    address::UrlError::Invalid(_) => UserErrorCode::Invalid,
                };
                errors.push(FieldError::new("url", code, format!("url {why}")));
                None
            }
        },
    };
    let types = types.map(|types| {
        let mut names: Vec<String> = types.iter().map(|t| t.wire().to_owned()).collect();
        names.sort();
        names.dedup();
        names
    });
    if types.as_ref().is_some_and(Vec::is_empty) {
        errors.push(FieldError::new(
            "eventTypes",
            UserErrorCode::Blank,
            "eventTypes must name at least one event type",
        ));
    }
    if errors.is_empty() {
        Ok((url, types))
    } else {
        Err(AppError::Invalid(errors))
    }
}

fn job_attempts(webhooks: &Webhooks) -> i32 {
    let steps = webhooks.settings.retry_schedule.0.len();
    i32::try_from(steps).unwrap_or(i32::MAX - SPARE_JOB_ATTEMPTS) + 1 + SPARE_JOB_ATTEMPTS
}

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
    webhooks: &Webhooks,
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
        kind: jobs::kind::DELIVER_WEBHOOK,
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
async fn announce(
    conn: &mut diesel_async::AsyncPgConnection,
    event: &Event,
) -> AppResult<Option<Announcement>> {
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
    let article_ref = |a: &article::Article| json!({ "id": global_id::encode("Article", a.id).0, "slug": a.slug });
    let actor_ref =
        json!({ "id": global_id::encode("User", actor.id).0, "username": actor.username });
    let (event_type, data, recipient) = match (event.kind.as_str(), &article) {
        (kind::COMMENT_ADDED, Some(a)) => (
            EventType::CommentCreated,
            json!({
                "article": article_ref(a),
                "comment": { "id": event.comment_id.map(|id| global_id::encode("Comment", id).0) },
                "author": actor_ref,
            }),
            Some(a.author_id),
        ),
        (kind::ARTICLE_FAVORITED, Some(a)) => (
            EventType::ArticleFavorited,
            json!({ "article": article_ref(a), "user": actor_ref }),
            Some(a.author_id),
        ),
        (kind::USER_FOLLOWED, _) => (
            EventType::UserFollowed,
            json!({ "follower": actor_ref }),
            event.user_id,
        ),
        (kind::ARTICLE_PUBLISHED, Some(a)) => {
            let mut reference = article_ref(a);
            reference["title"] = json!(a.title);
            (
                EventType::ArticlePublished,
                json!({ "article": reference, "author": actor_ref }),
                None,
            )
        }
        _ => return Ok(None),
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

/// One attempt at a delivery, and what it means for the delivery and
/// its endpoint.
pub async fn deliver(db: &Database, webhooks: &Webhooks, delivery_id: Uuid) -> AppResult<Outcome> {
    let settings = &webhooks.settings;
    let mut conn = db.conn().await?;
    let Some((delivery, endpoint)) = webhook::find_delivery(&mut conn, delivery_id).await? else {
        return Ok(Outcome::Done);
    };
    if delivery.status != status::PENDING {
        return Ok(Outcome::Done);
    }
    let attempts = delivery.attempts + 1;
    if let Some(reason) = &endpoint.disabled_reason {
        let error = format!("not sent: the endpoint is disabled ({reason})");
        return not_sent(&mut conn, &delivery, &error).await;
    }
    // No connection is held while the receiver takes its time.
    drop(conn);
    let now = Utc::now();
    let sealer = &webhooks.sealer;
    // A secret that does not open is never signed with: the operator
    // learns why from the log, the owner (below) that it must be rotated.
    let mut opened = Vec::new();
    match sealer.open(endpoint.id, &endpoint.secret) {
        Ok(secret) => opened.push(secret),
        Err(why) => tracing::warn!(
            endpoint_id = %endpoint.id,
            reason = %why,
            "webhook signing secret not used"
        ),
    }
    if let (Some(previous), Some(until)) = (
        &endpoint.previous_secret,
        endpoint.previous_secret_expires_at,
    ) && until > now
    {
        match sealer.open(endpoint.id, previous) {
            Ok(secret) => opened.push(secret),
            // Rotating an unusable secret leaves it here for a day; the
            // rotation already was the remedy.
            Err(why) => tracing::debug!(
                endpoint_id = %endpoint.id,
                reason = %why,
                "previous webhook signing secret not used"
            ),
        }
    }
    if opened.is_empty() {
        let error =
            "not sent: the signing secret cannot be used; rotate it (rotateWebhookEndpointSecret)";
        return not_sent(&mut *db.conn().await?, &delivery, error).await;
    }
    let secrets: Vec<&str> = opened.iter().map(String::as_str).collect();
    let body = serde_json::to_vec(&delivery.payload).map_err(anyhow::Error::from)?;
    let message_id = format!("msg_{}", delivery.id.simple());
    let response = webhooks
        .send(&Message {
            url: &endpoint.url,
            id: &message_id,
            body: &body,
            secrets: &secrets,
        })
        .await;
    let status_code = response.status.map(i32::from);
    let mut conn = db.conn().await?;
    if response.error.is_none() {
        record(
            &mut conn,
            &delivery,
            attempts,
            status::SUCCEEDED,
            status_code,
            None,
            None,
        )
        .await?;
        if endpoint.failing_since.is_some() {
            webhook::mark_succeeding(&mut conn, endpoint.id).await?;
        }
        return Ok(Outcome::Done);
    }
    let error = response.error.unwrap_or_default();
    // Given up, and whether the endpoint is disabled too; or the next wait.
    let verdict = if response.status == Some(410) {
        Err((
            error.clone(),
            Some("the receiver answered 410 Gone".to_owned()),
        ))
    } else {
        let failing_since = webhook::mark_failing(&mut conn, endpoint.id)
            .await?
            .unwrap_or(now);
        let failing_for = (Utc::now() - failing_since).to_std().unwrap_or_default();
        let next = settings
            .retry_schedule
            .0
            .get(attempts as usize - 1)
            .copied();
        if failing_for >= settings.disable_after {
            let hours = failing_for.as_secs() / 3600;
            let reason = format!("every delivery failed for {hours} hours (last: {error})");
            Err((error.clone(), Some(reason)))
        } else {
            next.ok_or_else(|| {
                (
                    format!("gave up after {attempts} attempts (last: {error})"),
                    None,
                )
            })
        }
    };
    let wait = match verdict {
        Ok(wait) => wait,
        Err((last_error, disable)) => {
            record(
                &mut conn,
                &delivery,
                attempts,
                status::FAILED,
                status_code,
                Some(&last_error),
                None,
            )
            .await?;
            if let Some(reason) = disable {
                webhook::disable(&mut conn, endpoint.id, &reason).await?;
                tracing::info!(endpoint_id = %endpoint.id, reason, "webhook endpoint disabled");
            }
            return Ok(Outcome::Done);
        }
    };
    let mut wait = wait.mul_f64(rand::rng().random_range(0.8..=1.2));
    let honours_retry_after = matches!(response.status, Some(429 | 500..=599));
    if let Some(asked) = response.retry_after.filter(|_| honours_retry_after) {
        wait = wait.max(asked.min(LONGEST_RETRY_AFTER));
    }
    let next = Utc::now() + chrono::TimeDelta::from_std(wait).unwrap_or_default();
    record(
        &mut conn,
        &delivery,
        attempts,
        status::PENDING,
        status_code,
        Some(&error),
        Some(next),
    )
    .await?;
    Ok(Outcome::Retry {
        after: wait,
        reason: error,
    })
}

/// A delivery that fails without being sent: no attempt is counted.
async fn not_sent(
    conn: &mut diesel_async::AsyncPgConnection,
    delivery: &Delivery,
    error: &str,
) -> AppResult<Outcome> {
    let attempts = delivery.attempts;
    record(
        conn,
        delivery,
        attempts,
        status::FAILED,
        None,
        Some(error),
        None,
    )
    .await?;
    Ok(Outcome::Done)
}

async fn record(
    conn: &mut diesel_async::AsyncPgConnection,
    delivery: &Delivery,
    attempts: i32,
    status: &str,
    response_status: Option<i32>,
    last_error: Option<&str>,
    next_attempt_at: Option<chrono::DateTime<Utc>>,
) -> AppResult<()> {
    let delivered_at = (status == status::SUCCEEDED).then(Utc::now);
    webhook::record_attempt(
        conn,
        delivery.id,
        &Attempted {
            status,
            attempts,
            response_status,
            last_error,
            next_attempt_at,
            delivered_at,
        },
    )
    .await?;
    crate::telemetry::metrics_export::record_webhook(match status {
        status::SUCCEEDED => "succeeded",
        status::FAILED => "failed",
        _ => "retrying",
    });
    Ok(())
}
