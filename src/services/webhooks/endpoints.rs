//! Users' webhook endpoints: registering, changing, disabling and
//! removing them, rotating their signing secrets, listing them with their
//! deliveries, and sending a finished delivery again.

use chrono::Utc;
use diesel_async::AsyncConnection;
use serde_json::json;
use uuid::Uuid;

use super::{EventType, job_attempts};
use crate::{
    auth::Viewer,
    db::models::{
        job::{self, JobKind, NewJob},
        page::{Page, PageRequest},
        webhook::{self, Delivery, Endpoint, EndpointChanges, NewEndpoint, status},
    },
    error::{AppError, AppResult, FieldError, UserErrorCode},
    services::validation,
    state::AppState,
    webhook_transport::{address, signature},
};

/// How long a rotated-out secret keeps signing, so receivers can switch.
const PREVIOUS_SECRET_SIGNS_FOR: chrono::TimeDelta = chrono::TimeDelta::hours(24);

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
                kind: JobKind::DeliverWebhook,
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
        Some(raw) if raw.len() > validation::IMAGE_MAX => {
            errors.push(FieldError::new(
                "url",
                UserErrorCode::TooLong,
                format!("url must be at most {} characters", validation::IMAGE_MAX),
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
