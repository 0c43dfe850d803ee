//! Logging: human-readable lines in development, JSON in production. Span
//! fields (the request id among them) appear on every line of a request.

use std::io::IsTerminal as _;

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

pub mod traces;

/// How log lines are written (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines for a terminal.
    #[value(alias = "text")]
    Pretty,
    /// One JSON object per line for log collectors.
    Json,
}

tokio::task_local! {
    /// The request being served, for what it causes beyond itself (the
    /// jobs a mutation enqueues carry it into their log lines).
    pub static REQUEST_ID: std::sync::Arc<str>;
}

/// The id of the request this task serves, if it serves one.
pub fn request_id() -> Option<std::sync::Arc<str>> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Installs the log subscriber: `format`, and `filter` (`RUST_LOG`'s
/// syntax, checked with the configuration).
pub fn init(format: LogFormat, filter: &str) {
    // Without an exporter nothing can fail.
    let _ = init_with_traces(format, filter, None);
}

/// [`init`], and spans exported to `traces` when given.
pub fn init_with_traces(
    format: LogFormat,
    filter: &str,
    traces: Option<&traces::Exporter>,
) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let exporting = traces.map(traces::layer).transpose()?;
    let traced = exporting.is_some();
    let registry = tracing_subscriber::registry().with(exporting);
    let result = match format {
        // Colour only for a person at a terminal, not for a file or a
        // log collector.
        LogFormat::Pretty => registry
            .with(
                fmt::layer()
                    .with_target(false)
                    .with_ansi(std::io::stdout().is_terminal())
                    .with_filter(filter),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_filter(filter),
            )
            .try_init(),
    };
    // An error means already initialised (tests start several apps in one
    // process); the first subscriber stays.
    if result.is_ok() && traced {
        traces::enable();
    }
    Ok(())
}

/// Prometheus metrics. The recorder is process-wide (the `metrics` crate
/// has one global recorder), made on first use.
pub mod metrics_export {
    use std::{
        collections::HashSet,
        sync::{Mutex, OnceLock},
        time::Duration,
    };

    use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

    const UPKEEP_EVERY: Duration = Duration::from_secs(5);
    const LATENCY_BUCKETS: [f64; 12] = [
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
    ];
    /// Operation names are chosen by clients: only this many distinct ones
    /// get their own series, the rest are `other`, so a client cannot blow
    /// up the metrics' memory.
    const MAX_OPERATION_LABELS: usize = 200;

    pub fn handle() -> &'static PrometheusHandle {
        static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
        HANDLE.get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&LATENCY_BUCKETS)
                .expect("bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed");
            }
            // Histograms keep every sample until upkeep folds them into
            // their buckets; rendering does it too, but a server nobody
            // scrapes would grow by every request's latency forever.
            let upkeep = handle.clone();
            let started = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(UPKEEP_EVERY);
                        upkeep.run_upkeep();
                    }
                });
            if let Err(e) = started {
                tracing::error!(error = %e, "failed to start the metrics upkeep thread");
            }
            handle
        })
    }

    fn operation_label(name: Option<&str>) -> String {
        static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
        let Some(name) = name.filter(|n| {
            (1..=64).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        }) else {
            return "anonymous".into();
        };
        let mut seen = SEEN
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if seen.contains(name) || seen.len() < MAX_OPERATION_LABELS {
            seen.insert(name.to_owned());
            name.to_owned()
        } else {
            "other".into()
        }
    }

    /// One GraphQL operation served.
    pub fn record_operation(name: Option<&str>, duration: Duration, error_codes: &[String]) {
        handle();
        let operation = operation_label(name);
        let outcome = if error_codes.is_empty() {
            "ok"
        } else {
            "error"
        };
        metrics::counter!("graphql_requests_total", "operation" => operation.clone(), "outcome" => outcome)
            .increment(1);
        metrics::histogram!("graphql_request_duration_seconds", "operation" => operation)
            .record(duration.as_secs_f64());
        for code in error_codes {
            metrics::counter!("graphql_errors_total", "code" => code.clone()).increment(1);
        }
    }

    /// A response-cache lookup or store: `hit`, `miss`, `evicted`, or
    /// `stale_refused` (a response not kept because what it shows changed
    /// while it ran).
    pub fn record_response_cache(outcome: &'static str) {
        handle();
        metrics::counter!("response_cache_requests_total", "outcome" => outcome).increment(1);
    }

    /// Entries the response cache dropped because what they show changed.
    pub fn record_response_cache_invalidations(dropped: usize) {
        handle();
        metrics::counter!("response_cache_invalidations_total").increment(dropped as u64);
    }

    /// What the response cache holds now.
    pub fn record_response_cache_size(entries: usize, bytes: usize) {
        handle();
        metrics::gauge!("response_cache_entries").set(entries as f64);
        metrics::gauge!("response_cache_bytes").set(bytes as f64);
    }

    /// A request refused by a rate limit.
    pub fn record_rate_limited(budget: &'static str) {
        handle();
        metrics::counter!("rate_limit_rejections_total", "budget" => budget).increment(1);
    }

    /// Events the bus read and fanned out.
    pub fn record_events(count: usize) {
        handle();
        metrics::counter!("events_delivered_total").increment(count as u64);
    }

    /// The bus's listening connection was lost and is being replaced.
    pub fn record_listener_reconnect() {
        handle();
        metrics::counter!("events_listener_reconnects_total").increment(1);
    }

    /// A WebSocket opened (`1`) or closed (`-1`).
    pub fn record_socket(change: f64) {
        handle();
        metrics::gauge!("websocket_connections").increment(change);
    }

    /// A subscription started (`1`) or ended (`-1`).
    pub fn record_subscription(change: f64) {
        handle();
        metrics::gauge!("graphql_active_subscriptions").increment(change);
    }

    /// One event sent to one subscriber, `lag` after it was committed.
    pub fn record_event_sent(lag: Duration) {
        handle();
        metrics::histogram!("subscription_delivery_lag_seconds").record(lag.as_secs_f64());
    }

    /// A job started, `waited` after it was due (`first`: its first attempt,
    /// so `waited` runs from when it was enqueued).
    pub fn record_job_started(kind: &str, waited: Duration, first: bool) {
        handle();
        let attempt = if first { "first" } else { "retry" };
        metrics::histogram!("job_wait_seconds", "kind" => kind.to_owned(), "attempt" => attempt)
            .record(waited.as_secs_f64());
    }

    /// A job's attempt ended: `succeeded`, `retried` or `failed`.
    pub fn record_job_outcome(kind: &str, outcome: &'static str, took: Duration) {
        handle();
        metrics::counter!("jobs_total", "kind" => kind.to_owned(), "outcome" => outcome)
            .increment(1);
        metrics::histogram!("job_duration_seconds", "kind" => kind.to_owned())
            .record(took.as_secs_f64());
    }

    /// Jobs a stopping worker handed back to the queue unfinished.
    pub fn record_jobs_released(count: usize) {
        handle();
        metrics::counter!("jobs_released_total").increment(count as u64);
    }

    /// Jobs per kind and state, read from the queue.
    pub fn record_queue_depth(kind: &str, state: &str, count: i64) {
        handle();
        metrics::gauge!("job_queue_depth", "kind" => kind.to_owned(), "state" => state.to_owned())
            .set(count as f64);
    }

    /// One webhook delivery attempt's outcome: `succeeded`, `retrying`,
    /// `failed`, `skipped` (the endpoint's backlog was full).
    pub fn record_webhook(outcome: &'static str) {
        handle();
        metrics::counter!("webhook_deliveries_total", "outcome" => outcome).increment(1);
    }

    /// Where a request's reads went: `primary` or `replica`.
    pub fn record_read_target(target: &'static str) {
        handle();
        metrics::counter!("db_read_requests_total", "target" => target).increment(1);
    }

    /// Why reads that could have gone to a replica went to the primary.
    pub fn record_replica_fallback(reason: &'static str) {
        handle();
        metrics::counter!("db_replica_fallbacks_total", "reason" => reason).increment(1);
    }

    /// A replica's state, as its last poll saw it.
    pub fn record_replica(name: &str, up: bool, lag: Duration) {
        handle();
        metrics::gauge!("db_replica_up", "replica" => name.to_owned()).set(f64::from(u8::from(up)));
        metrics::gauge!("db_replica_lag_seconds", "replica" => name.to_owned())
            .set(lag.as_secs_f64());
    }

    /// Pool figures and the statements sent so far, read at scrape time.
    pub fn record_database(state: &bb8::State, statements: u64) {
        handle();
        metrics::counter!("db_statements_total").absolute(statements);
        metrics::gauge!("db_pool_connections").set(f64::from(state.connections));
        metrics::gauge!("db_pool_idle_connections").set(f64::from(state.idle_connections));
        let stats = &state.statistics;
        metrics::gauge!("db_pool_checkouts_waited_total").set(stats.get_waited as f64);
        metrics::gauge!("db_pool_checkouts_timed_out_total").set(stats.get_timed_out as f64);
        metrics::gauge!("db_pool_wait_seconds_total").set(stats.get_wait_time.as_secs_f64());
        // Connections dropped because they died: found closed (or failing a
        // ping) at checkout, or broken when given back.
        metrics::gauge!("db_pool_connections_replaced_total", "when" => "checkout")
            .set(stats.connections_closed_invalid as f64);
        metrics::gauge!("db_pool_connections_replaced_total", "when" => "return")
            .set(stats.connections_closed_broken as f64);
    }
}

pub use metrics_export::record_rate_limited;
