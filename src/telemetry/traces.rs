//! Distributed traces: OpenTelemetry spans exported over OTLP/HTTP
//! (protobuf), on only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
//!
//! A request's span (with its request id, continuing the caller's trace
//! when a W3C `traceparent` comes with it) holds one span per GraphQL
//! operation, one per loader batch and one per SQL statement, so a trace
//! shows where a request's time went, across instances and the database.
//!
//! Spans come from `tracing`; `tracing-opentelemetry` turns them into
//! OpenTelemetry spans and the SDK's batch processor exports them from a
//! thread of its own. When traces are off, the loader and statement spans
//! are not made at all.

use std::{
    sync::{
        OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use anyhow::Context as _;
use opentelemetry::{
    KeyValue,
    propagation::TextMapPropagator as _,
    trace::{TraceContextExt as _, TracerProvider as _},
};
use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::{
    Resource,
    propagation::TraceContextPropagator,
    trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider},
};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::{EnvFilter, Layer, registry::LookupSpan};

static ENABLED: AtomicBool = AtomicBool::new(false);
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Whether spans are exported (and so worth making).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Where to send spans, and as what service.
#[derive(Debug, Clone)]
pub struct Exporter {
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: the collector's base URL;
    /// `/v1/traces` is appended, as the OpenTelemetry specification says.
    pub endpoint: String,
    pub service_name: String,
}

/// The layer that exports spans. Its own filter keeps the exporter's
/// HTTP client out of the traces (and out of a loop).
pub(super) fn layer<S>(exporter: &Exporter) -> anyhow::Result<impl Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    let url = format!("{}/v1/traces", exporter.endpoint.trim_end_matches('/'));
    let spans = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(TokioClient::new()?)
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url)
        .with_timeout(Duration::from_secs(3))
        .build()
        .context("OTEL_EXPORTER_OTLP_ENDPOINT")?;
    let processor = BatchSpanProcessor::builder(spans)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_scheduled_delay(Duration::from_millis(500))
                .with_max_queue_size(8192)
                .build(),
        )
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(
            Resource::builder()
                .with_service_name(exporter.service_name.clone())
                .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
                .build(),
        )
        .build();
    let tracer = provider.tracer("conduit");
    let _ = PROVIDER.set(provider);
    Ok(tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_target(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_filter(EnvFilter::new(
            "info,opentelemetry=off,opentelemetry_sdk=off,opentelemetry-otlp=off,\
             opentelemetry-http=off,hyper=off,hyper_util=off,reqwest=off,h2=off",
        )))
}

/// Called once the layer is installed.
pub(super) fn enable() {
    ENABLED.store(PROVIDER.get().is_some(), Ordering::Relaxed);
}

/// Sends what is still buffered; call once, as the process ends.
pub async fn shutdown() {
    let Some(provider) = PROVIDER.get() else {
        return;
    };
    let provider = provider.clone();
    // The SDK waits on its export thread, which sends through this
    // runtime: wait off the runtime's threads.
    let flushed = tokio::task::spawn_blocking(move || provider.shutdown()).await;
    if let Ok(Err(e)) = flushed {
        tracing::warn!(error = %e, "traces not all exported at shutdown");
    }
}

/// Exports what is buffered now.
pub async fn flush() {
    if let Some(provider) = PROVIDER.get().cloned() {
        let _ = tokio::task::spawn_blocking(move || provider.force_flush()).await;
    }
}

/// Makes `span` continue the trace of a W3C `traceparent` (and
/// `tracestate`) among `headers`; without one, `span` starts a trace.
/// Before the span is first entered.
pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    if !enabled() {
        return;
    }
    let parent =
        TraceContextPropagator::new().extract(&opentelemetry_http::HeaderExtractor(headers));
    if parent.has_active_span() {
        let _ = span.set_parent(parent);
    }
}

/// A span for one loader batch.
pub fn loader_span(key: &str, keys: usize) -> tracing::Span {
    if !enabled() {
        return tracing::Span::none();
    }
    tracing::info_span!("loader", otel.name = %format_args!("loader {key}"), loader.key = key, loader.keys = keys)
}

/// A span for one SQL statement, named by its verb; the text goes
/// without its bind values (they may be personal data).
pub fn statement_span(query: &dyn std::fmt::Display) -> tracing::Span {
    if !enabled() {
        return tracing::Span::none();
    }
    let text = query.to_string();
    let sql = text.split(" -- binds:").next().unwrap_or_default().trim();
    let verb = sql
        .split_whitespace()
        .next()
        .unwrap_or("SQL")
        .to_ascii_uppercase();
    tracing::info_span!(
        "sql",
        otel.name = %format_args!("sql {verb}"),
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        db.system = "postgresql",
        db.statement = sql,
    )
}

/// The exporter's HTTP client: the server's own `reqwest`, its requests
/// run on the server's runtime (the batch processor's thread has none).
#[derive(Debug, Clone)]
struct TokioClient {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

impl TokioClient {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(3))
                .build()?,
            runtime: tokio::runtime::Handle::try_current()
                .context("traces are set up inside the runtime")?,
        })
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for TokioClient {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let client = self.client.clone();
        self.runtime
            .spawn(async move {
                let response = client.execute(reqwest::Request::try_from(request)?).await?;
                let status = response.status();
                let headers = response.headers().clone();
                let mut answer = http::Response::new(response.bytes().await?);
                *answer.status_mut() = status;
                *answer.headers_mut() = headers;
                Ok::<_, opentelemetry_http::HttpError>(answer)
            })
            .await?
    }
}
