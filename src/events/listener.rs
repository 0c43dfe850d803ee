//! The bus's listening connection: woken by `NOTIFY`, it reads what
//! committed since the last event delivered and hands it on, and on any
//! failure reconnects and reads what it missed.

use std::{pin::pin, sync::Arc, sync::atomic::Ordering, time::Duration};

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use futures_util::{FutureExt, StreamExt};

use super::{
    EventBus,
    delivery::{BATCH, Carries, carries, load},
};
use crate::db::models::event;

const CHANNEL: &str = "conduit_events";
/// The listening connection's `application_name`.
pub const LISTENER_NAME: &str = "conduit events listener";
/// How often an idle listening connection is checked, so one that died
/// without a word is noticed and replaced.
const CHECK_EVERY: Duration = Duration::from_secs(15);

pub(super) struct Listener {
    url: String,
    bus: EventBus,
}

impl Listener {
    pub(super) fn new(url: &str, bus: EventBus) -> Self {
        Self {
            url: url.to_owned(),
            bus,
        }
    }

    pub(super) async fn run(self) {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.listen().await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "event listener lost its connection; reconnecting"
                    );
                    crate::telemetry::metrics_export::record_listener_reconnect();
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// Listens until the connection fails (an error) or nobody can
    /// subscribe any more (`Ok`).
    async fn listen(&self) -> anyhow::Result<()> {
        let mut conn = AsyncPgConnection::establish(&self.url).await?;
        // Named, so an operator (or a test) can find it in pg_stat_activity.
        conn.batch_execute(&format!(
            "SET application_name = '{LISTENER_NAME}'; LISTEN {CHANNEL}"
        ))
        .await?;
        // Whatever committed while no connection listened.
        self.deliver(&mut conn).await?;
        loop {
            let woke = {
                let mut notifications = pin!(conn.notifications_stream());
                match tokio::time::timeout(CHECK_EVERY, notifications.next()).await {
                    Ok(Some(Ok(_))) => {
                        // Fold the notifications already queued into this read.
                        while let Some(Some(next)) = notifications.next().now_or_never() {
                            next?;
                        }
                        true
                    }
                    Ok(Some(Err(e))) => return Err(e.into()),
                    Ok(None) => anyhow::bail!("the listening connection closed"),
                    Err(_) => false,
                }
            };
            if !woke {
                conn.batch_execute("SELECT 1").await?;
            }
            self.deliver(&mut conn).await?;
        }
    }

    /// Delivers every event after the last one delivered, reading on the
    /// listening connection (between notifications it has nothing else to
    /// do, and requests keep the whole pool).
    async fn deliver(&self, conn: &mut AsyncPgConnection) -> anyhow::Result<()> {
        loop {
            let after = self.bus.delivered();
            let events = event::after(conn, after, BATCH).await?;
            let Some(last) = events.last().map(|e| e.id) else {
                return Ok(());
            };
            let count = events.len();
            let _ = self.bus.batches.send(events.as_slice().into());
            let deliveries = load(conn, events).await?;
            for delivery in deliveries {
                // No subscriber is not an error.
                if let Carries::SignOut = carries(delivery.event.kind) {
                    if let Some(session) = delivery.event.session_id {
                        let _ = self.bus.revoked.send(session);
                    }
                    continue;
                }
                let _ = self.bus.sender.send(Arc::new(delivery));
            }
            self.bus.delivered.store(last, Ordering::Release);
            crate::telemetry::metrics_export::record_events(count);
            if (count as i64) < BATCH {
                return Ok(());
            }
        }
    }
}
