//! Webhook endpoints and deliveries: visible only to their owner, through
//! `viewer` (they are not nodes, so `node(id:)` never reaches them).

use async_graphql::{
    Context, Enum, ID, Object,
    connection::{Connection, EmptyFields},
};
use chrono::{DateTime, Utc};

use super::global_id;
use crate::{
    db::models::{
        page::Keyset,
        webhook::{Delivery, Endpoint, status},
    },
    graphql::{ContextExt, connection::PageArgs},
    services::webhooks::{self, EventType},
};

pub type WebhookEndpointConnection = Connection<String, WebhookEndpoint, EmptyFields, EmptyFields>;
pub type WebhookDeliveryConnection = Connection<String, WebhookDelivery, EmptyFields, EmptyFields>;

/// What an endpoint can be told about. The message's `type` is the
/// dotted name given with each value.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "crate::services::webhooks::EventType")]
pub enum WebhookEventType {
    /// `comment.created`: someone commented on one of the viewer's articles.
    CommentCreated,
    /// `article.favorited`: someone favorited one of the viewer's articles.
    ArticleFavorited,
    /// `user.followed`: someone followed the viewer.
    UserFollowed,
    /// `article.published`: someone the viewer follows published an article.
    ArticlePublished,
}

/// Where a delivery stands.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookDeliveryStatus {
    /// Not delivered yet; `nextAttemptAt` says when it is tried again.
    Pending,
    /// The receiver answered with a 2xx status.
    Succeeded,
    /// Given up: out of attempts, the receiver answered 410, or the
    /// endpoint is disabled. `lastError` says which.
    Failed,
}

/// A URL the viewer's activity is posted to, signed per the Standard
/// Webhooks specification.
pub struct WebhookEndpoint(pub Endpoint);

#[Object(cache_control(private))]
impl WebhookEndpoint {
    /// Opaque global id.
    async fn id(&self) -> ID {
        global_id::of::<Self>(self.0.id)
    }

    async fn url(&self) -> &str {
        &self.0.url
    }

    async fn event_types(&self) -> Vec<WebhookEventType> {
        self.0
            .event_types
            .iter()
            .filter_map(|name| EventType::from_wire(name))
            .map(WebhookEventType::from)
            .collect()
    }

    /// False once disabled, by its owner or because it kept failing.
    async fn enabled(&self) -> bool {
        self.0.disabled_at.is_none()
    }

    /// Why the endpoint was disabled.
    async fn disabled_reason(&self) -> Option<&str> {
        self.0.disabled_reason.as_deref()
    }

    async fn disabled_at(&self) -> Option<DateTime<Utc>> {
        self.0.disabled_at
    }

    /// Since when every attempt has failed (null after a success).
    async fn failing_since(&self) -> Option<DateTime<Utc>> {
        self.0.failing_since
    }

    /// Until when the secret before the last rotation still signs.
    async fn previous_secret_expires_at(&self) -> Option<DateTime<Utc>> {
        self.0
            .previous_secret
            .as_ref()
            .and(self.0.previous_secret_expires_at)
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// Deliveries to this endpoint, newest first.
    async fn deliveries(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<WebhookDeliveryConnection> {
        let args = PageArgs::new(&ctx.app().pagination, first, after, last, before)?;
        let page = Box::pin(webhooks::deliveries(ctx.app(), self.0.id, &args.request)).await?;
        Ok(args.connection(page, EmptyFields, |row| {
            let keyset = Keyset {
                created_at: row.created_at,
                id: row.id,
            };
            (keyset, WebhookDelivery(row))
        }))
    }
}

impl WebhookEndpoint {
    pub fn keyset(&self) -> Keyset {
        Keyset {
            created_at: self.0.created_at,
            id: self.0.id,
        }
    }
}

/// One event sent (or being sent) to one endpoint.
pub struct WebhookDelivery(pub Delivery);

#[Object(cache_control(private))]
impl WebhookDelivery {
    /// Opaque global id.
    async fn id(&self) -> ID {
        global_id::of::<Self>(self.0.id)
    }

    /// The `webhook-id` header: the same on every attempt, so a receiver
    /// can ignore one it has processed.
    async fn webhook_id(&self) -> String {
        format!("msg_{}", self.0.id.simple())
    }

    async fn event_type(&self) -> Option<WebhookEventType> {
        EventType::from_wire(&self.0.event_type).map(WebhookEventType::from)
    }

    async fn status(&self) -> WebhookDeliveryStatus {
        match self.0.status.as_str() {
            status::SUCCEEDED => WebhookDeliveryStatus::Succeeded,
            status::FAILED => WebhookDeliveryStatus::Failed,
            _ => WebhookDeliveryStatus::Pending,
        }
    }

    async fn attempts(&self) -> i32 {
        self.0.attempts
    }

    /// The status of the receiver's last answer.
    async fn response_status(&self) -> Option<i32> {
        self.0.response_status
    }

    /// Why the last attempt failed.
    async fn last_error(&self) -> Option<&str> {
        self.0.last_error.as_deref()
    }

    /// When a pending delivery is tried next.
    async fn next_attempt_at(&self) -> Option<DateTime<Utc>> {
        (self.0.status == status::PENDING)
            .then_some(self.0.next_attempt_at)
            .flatten()
    }

    async fn delivered_at(&self) -> Option<DateTime<Utc>> {
        self.0.delivered_at
    }

    /// The message body sent, as JSON text.
    async fn payload(&self) -> String {
        self.0.payload.to_string()
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}
