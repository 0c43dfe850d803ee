//! How a webhook reaches its receiver: the HTTP client every delivery
//! goes through, with the address guard (`address`), the Standard Webhooks
//! signature and headers (`signature`), and the sealing of the secrets
//! that sign (`sealing`). What is sent to whom, and what an attempt means
//! for a delivery, is decided in `services::webhooks`.

pub mod address;
pub mod sealing;
pub mod signature;

use std::time::Duration;

use address::{GuardedResolver, Policy};

use crate::config::Webhooks as Settings;

/// The client and the settings deliveries share. Cheap to clone.
#[derive(Clone)]
pub struct WebhookTransport {
    pub settings: Settings,
    pub policy: Policy,
    /// Seals and opens the secrets endpoints store.
    pub sealer: sealing::Sealer,
    client: reqwest::Client,
}

/// What one attempt got back.
#[derive(Debug)]
pub struct Response {
    /// The status, when the receiver answered.
    pub status: Option<u16>,
    /// The receiver's `Retry-After` (seconds, or an HTTP date), from now.
    pub retry_after: Option<Duration>,
    /// Why the attempt failed without an answer, or what the answer was.
    pub error: Option<String>,
}

/// One message to send.
pub struct Message<'a> {
    pub url: &'a str,
    /// The `webhook-id`: the same on every attempt.
    pub id: &'a str,
    pub body: &'a [u8],
    /// Every secret that signs (the current, and the previous during a rotation).
    pub secrets: &'a [&'a str],
}

impl WebhookTransport {
    pub fn new(settings: Settings, production: bool) -> anyhow::Result<Self> {
        let policy = Policy {
            allow_private: settings.allow_private_addresses,
            allow_http: !production,
        };
        let client = reqwest::Client::builder()
            .user_agent(concat!("Conduit-Webhooks/", env!("CARGO_PKG_VERSION")))
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            // A redirect could lead anywhere, the guard's addresses included.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(GuardedResolver::shared(policy))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self {
            sealer: sealing::Sealer::new(settings.secrets_key.as_deref()),
            settings,
            policy,
            client,
        })
    }

    /// Sends `message` once, signed now.
    pub async fn send(&self, message: &Message<'_>) -> Response {
        let failed = |error: String| Response {
            status: None,
            retry_after: None,
            error: Some(error),
        };
        // A literal address is not resolved, so the guard is asked here.
        let url = match address::check_literal(message.url, self.policy) {
            Ok(url) => url,
            Err(why) => return failed(why),
        };
        let timestamp = chrono::Utc::now().timestamp();
        let signature = signature::header(
            message.secrets.iter().copied(),
            message.id,
            timestamp,
            message.body,
        );
        let sent = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", message.id)
            .header("webhook-timestamp", timestamp)
            .header("webhook-signature", signature)
            .body(message.body.to_vec())
            .send()
            .await;
        match sent {
            Ok(response) => {
                let status = response.status();
                let retry_after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(retry_after);
                Response {
                    status: Some(status.as_u16()),
                    retry_after,
                    error: (!status.is_success())
                        .then(|| format!("the receiver answered {status}")),
                }
            }
            Err(e) => failed(describe(&e)),
        }
    }
}

/// A `Retry-After` value: delay seconds, or an HTTP date (RFC 9110).
fn retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
            .to_std()
            .unwrap_or_default(),
    )
}

/// A reqwest error with its causes, for the delivery's `lastError`.
fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "no answer within the timeout".into();
    }
    let mut text = String::from(if error.is_connect() {
        "could not connect"
    } else {
        "the request failed"
    });
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<address::Refused>() {
            return refused.to_string();
        }
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_as_seconds_or_a_date() {
        assert_eq!(retry_after(" 120 "), Some(Duration::from_secs(120)));
        let later = chrono::Utc::now() + chrono::TimeDelta::seconds(90);
        let date = later.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        let wait = retry_after(&date).unwrap();
        assert!(
            wait > Duration::from_secs(85) && wait <= Duration::from_secs(90),
            "{wait:?}"
        );
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon"), None);
    }
}
