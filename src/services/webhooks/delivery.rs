//! A delivery's state machine: one attempt, and what its answer means
//! for the delivery (succeeded, failed for good, or due again after the
//! retry schedule's next wait or the receiver's `Retry-After`) and for its
//! endpoint (failing since when, disabled after failing too long or on
//! `410 Gone`).

use std::time::Duration;

use chrono::Utc;
use diesel_async::AsyncPgConnection;
use rand::Rng as _;
use uuid::Uuid;

use crate::{
    db::{
        Database,
        models::webhook::{self, Attempted, Delivery, status},
    },
    error::AppResult,
    webhook_transport::{Message, WebhookTransport},
};

/// The longest a receiver's `Retry-After` can put the next attempt off.
const LONGEST_RETRY_AFTER: Duration = Duration::from_secs(6 * 3600);

/// What a delivery needs after an attempt.
#[derive(Debug)]
pub enum DeliveryOutcome {
    /// Nothing more: it succeeded, failed for good, or was not to be sent.
    Finished,
    /// Another attempt, `after` from now, because of `reason`.
    RetryAfter { after: Duration, reason: String },
}

/// One attempt at a delivery, and what it means for the delivery and
/// its endpoint.
pub async fn deliver(
    db: &Database,
    webhooks: &WebhookTransport,
    delivery_id: Uuid,
) -> AppResult<DeliveryOutcome> {
    let settings = &webhooks.settings;
    let mut conn = db.conn().await?;
    let Some((delivery, endpoint)) = webhook::find_delivery(&mut conn, delivery_id).await? else {
        return Ok(DeliveryOutcome::Finished);
    };
    if delivery.status != status::PENDING {
        return Ok(DeliveryOutcome::Finished);
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
        return Ok(DeliveryOutcome::Finished);
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
            return Ok(DeliveryOutcome::Finished);
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
    Ok(DeliveryOutcome::RetryAfter {
        after: wait,
        reason: error,
    })
}

/// A delivery that fails without being sent: no attempt is counted.
async fn not_sent(
    conn: &mut AsyncPgConnection,
    delivery: &Delivery,
    error: &str,
) -> AppResult<DeliveryOutcome> {
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
    Ok(DeliveryOutcome::Finished)
}

async fn record(
    conn: &mut AsyncPgConnection,
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
