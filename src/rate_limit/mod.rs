//! Rate limiting in the spirit of GitHub's points: each request is charged
//! its query cost against a budget per window, per signed-in user or per
//! client IP; sign-in and sign-up have much tighter budgets of their own.
//!
//! Windows are fixed: the first charge opens one and it lasts the window's
//! length. The store is a trait: [`memory::MemoryStore`] for a single
//! instance, [`redis::RedisStore`] to share budgets across instances,
//! picked from the [`Backend`] (`RATE_LIMIT_STORE`) once at start-up.

pub mod memory;
pub mod redis;

use std::{net::IpAddr, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{
    error::{AppError, AppResult},
    redis::Backend,
};

/// Where charges are counted.
#[async_trait::async_trait]
pub trait RateLimitStore: Send + Sync {
    /// Adds `cost` to the current window of `key` (opening one of length
    /// `window` if none is open) and returns the window's total so far and
    /// when it closes.
    async fn charge(
        &self,
        key: &str,
        cost: u64,
        window: Duration,
    ) -> anyhow::Result<(u64, DateTime<Utc>)>;
}

/// How much may be spent per window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Points per window; 0 turns the budget off.
    pub limit: u64,
    pub window: Duration,
}

/// The outcome of one charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Charge {
    pub cost: u64,
    pub used: u64,
    pub limit: u64,
    pub reset_at: DateTime<Utc>,
}

impl Charge {
    pub fn remaining(&self) -> u64 {
        self.limit.saturating_sub(self.used)
    }

    pub fn exceeded(&self) -> bool {
        self.used > self.limit
    }
}

/// Who is spending: a signed-in user, else the client's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spender {
    User(Uuid),
    Address(IpAddr),
}

#[derive(Debug, Clone, Copy)]
pub struct Budgets {
    pub queries: Budget,
    pub sign_in_per_account: Budget,
    pub sign_in_per_address: Budget,
    pub sign_up_per_address: Budget,
}

#[derive(Clone)]
pub struct RateLimiter {
    store: Arc<dyn RateLimitStore>,
    budgets: Budgets,
}

impl RateLimiter {
    /// Budgets counted in `backend`; in Redis, under keys beginning with
    /// `redis_prefix`.
    pub fn new(backend: &Backend, redis_prefix: &str, budgets: Budgets) -> Self {
        let store: Arc<dyn RateLimitStore> = match backend {
            Backend::Memory => Arc::new(memory::MemoryStore::default()),
            Backend::Redis(connection) => {
                Arc::new(redis::RedisStore::new(connection.clone(), redis_prefix))
            }
        };
        Self { store, budgets }
    }

    /// Charges a request's cost to its spender. `None` when the query
    /// budget is off. A store failure admits the request (and is logged):
    /// an outage of the shared store must not take reading down with it.
    pub async fn charge_query(&self, spender: Spender, cost: u64) -> Option<Charge> {
        let key = match spender {
            Spender::User(id) => format!("q:u:{id}"),
            Spender::Address(ip) => format!("q:ip:{ip}"),
        };
        match self.charge(&key, cost.max(1), self.budgets.queries).await {
            Ok(charge) => charge,
            Err(e) => {
                tracing::error!(
                    error = format!("{e:#}"),
                    "rate-limit store failed; request admitted"
                );
                None
            }
        }
    }

    /// One sign-in attempt for `email` from `address`. Every attempt
    /// counts against both budgets, refused or not.
    pub async fn sign_in_attempt(&self, address: IpAddr, email: &str) -> AppResult<()> {
        let account = format!("signin:a:{}", email.trim().to_lowercase());
        let from = format!("signin:ip:{address}");
        let (by_account, by_address) = tokio::join!(
            self.charge(&account, 1, self.budgets.sign_in_per_account),
            self.charge(&from, 1, self.budgets.sign_in_per_address),
        );
        let (by_account, by_address) = (closed(by_account)?, closed(by_address)?);
        if [by_account, by_address]
            .iter()
            .flatten()
            .any(Charge::exceeded)
        {
            crate::telemetry::record_rate_limited("sign_in");
        }
        refuse_if_exceeded(by_account)?;
        refuse_if_exceeded(by_address)
    }

    /// One sign-up attempt from `address`.
    pub async fn sign_up_attempt(&self, address: IpAddr) -> AppResult<()> {
        let key = format!("signup:ip:{address}");
        let charge = closed(self.charge(&key, 1, self.budgets.sign_up_per_address).await)?;
        if charge.is_some_and(|c| c.exceeded()) {
            crate::telemetry::record_rate_limited("sign_up");
        }
        refuse_if_exceeded(charge)
    }

    async fn charge(&self, key: &str, cost: u64, budget: Budget) -> anyhow::Result<Option<Charge>> {
        if budget.limit == 0 {
            return Ok(None);
        }
        let (used, reset_at) = self.store.charge(key, cost, budget.window).await?;
        Ok(Some(Charge {
            cost,
            used,
            limit: budget.limit,
            reset_at,
        }))
    }
}

/// Sign-in and sign-up budgets fail closed: while the store is out, a
/// password guesser must not get unlimited tries. The client is told to
/// retry.
fn closed(charge: anyhow::Result<Option<Charge>>) -> AppResult<Option<Charge>> {
    charge.map_err(|e| {
        tracing::error!(
            error = format!("{e:#}"),
            "rate-limit store failed; sign-in or sign-up refused"
        );
        AppError::Unavailable("signing in and up is briefly unavailable; retry in a moment")
    })
}

/// `RATE_LIMITED` when the charge went over its budget.
pub fn refuse_if_exceeded(charge: Option<Charge>) -> AppResult<()> {
    match charge {
        Some(charge) if charge.exceeded() => Err(AppError::RateLimited {
            reset_at: charge.reset_at,
        }),
        _ => Ok(()),
    }
}
