//! Webhooks: users' endpoints for activity on their own things
//! ([`endpoints`]), the fan-out of a recorded event to the endpoints that
//! want it, with the payload it announces ([`fan_out`]), and each
//! delivery's attempts and what they mean for the endpoint ([`delivery`]).
//! The jobs that run fan-outs and deliveries are the job runner's; how a
//! message reaches a receiver is `webhook_transport`'s.

mod delivery;
mod endpoints;
mod fan_out;

pub use self::{
    delivery::{DeliveryOutcome, deliver},
    endpoints::{
        create_endpoint, delete_endpoint, deliveries, endpoints, redeliver, rotate_secret,
        update_endpoint,
    },
    fan_out::fan_out,
};
use crate::{db::models::event::EventKind, webhook_transport::WebhookTransport};

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

    /// What an endpoint is told of an event of `kind`, if anything (the
    /// kinds `record_event` enqueues a fan-out for; a test compares them).
    pub fn announcing(kind: EventKind) -> Option<Self> {
        match kind {
            EventKind::CommentAdded => Some(Self::CommentCreated),
            EventKind::ArticleFavorited => Some(Self::ArticleFavorited),
            EventKind::UserFollowed => Some(Self::UserFollowed),
            EventKind::ArticlePublished => Some(Self::ArticlePublished),
            EventKind::CommentDeleted
            | EventKind::ArticleUpdated
            | EventKind::ArticleDeleted
            | EventKind::ArticleUnfavorited
            | EventKind::ArticleFavoritesChanged
            | EventKind::UserCreated
            | EventKind::UserUpdated
            | EventKind::UserUnfollowed
            | EventKind::SessionRevoked => None,
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

/// Room for attempts a worker's death cut short, beyond the retry schedule.
const SPARE_JOB_ATTEMPTS: i32 = 3;

/// The attempts a delivery's job may make: one per step of the retry
/// schedule, the first, and spares.
fn job_attempts(webhooks: &WebhookTransport) -> i32 {
    let steps = webhooks.settings.retry_schedule.0.len();
    i32::try_from(steps).unwrap_or(i32::MAX - SPARE_JOB_ATTEMPTS) + 1 + SPARE_JOB_ATTEMPTS
}
