//! Charging each operation its cost, and telling the client what is left.

use std::{
    net::IpAddr,
    sync::{Arc, Mutex},
};

use async_graphql::{Context, ServerError, SimpleObject};
use chrono::{DateTime, Utc};

use crate::{
    error::AppError,
    rate_limit::{Charge, Spender, refuse_if_exceeded},
    state::AppState,
};

/// The client's address as the server trusts it (see `TRUSTED_PROXY_HOPS`).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress(pub IpAddr);

impl ClientAddress {
    /// The address of the request `ctx` runs in. Every transport attaches
    /// one; a request without it is refused rather than let past the
    /// per-address budgets.
    pub fn of(ctx: &Context<'_>) -> Result<IpAddr, AppError> {
        ctx.data_opt::<Self>().map(|a| a.0).ok_or_else(|| {
            AppError::Internal(anyhow::anyhow!("no client address attached to the request"))
        })
    }
}

/// Who pays for a request, and what the last charge came to. Shared by
/// the operations of a batch, which are charged one by one.
pub struct RateLimitTicket {
    pub spender: Spender,
    last: Mutex<Option<Charge>>,
}

impl RateLimitTicket {
    pub fn new(spender: Spender) -> Arc<Self> {
        Arc::new(Self {
            spender,
            last: Mutex::new(None),
        })
    }

    pub fn last_charge(&self) -> Option<Charge> {
        *self.last.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record(&self, charge: Option<Charge>) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = charge;
    }
}

/// Charges an operation its cost (the static limits measured it, so a
/// document they refuse costs nothing).
pub async fn charge(
    state: &AppState,
    ticket: &RateLimitTicket,
    cost: usize,
) -> Result<(), ServerError> {
    let charge = state
        .limiter
        .charge_query(ticket.spender, cost as u64)
        .await;
    ticket.record(charge);
    if let Some(charge) = charge
        && charge.exceeded()
    {
        crate::telemetry::record_rate_limited("queries");
    }
    refuse_if_exceeded(charge).map_err(AppError::into_server_error)
}

/// The spender's budget after this request was charged.
#[derive(SimpleObject)]
#[graphql(cache_control(no_cache))]
pub struct RateLimit {
    /// Points this request cost.
    pub cost: i64,
    /// Points per window.
    pub limit: i64,
    /// Points left in this window.
    pub remaining: i64,
    /// When the window closes and the budget is full again.
    pub reset_at: DateTime<Utc>,
}

/// The `rateLimit` field: null when rate limiting is off.
pub fn current(ctx: &Context<'_>) -> Option<RateLimit> {
    let charge = ctx.data_opt::<Arc<RateLimitTicket>>()?.last_charge()?;
    let points = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    Some(RateLimit {
        cost: points(charge.cost),
        limit: points(charge.limit),
        remaining: points(charge.remaining()),
        reset_at: charge.reset_at,
    })
}
