//! Building one telemetry instance: resource, tracer, meter and logger providers, OTLP
//! exporters on their own threads, the `/metrics` reader, the stdout log sink. And shutting it
//! down in order without blocking the runtime.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{
    Instrument, ManualReader, PeriodicReader, SdkMeterProvider, Stream,
};
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};

use crate::config::{OtlpProtocol, Persona, SamplerConfig, TelemetryConfig};
use crate::log_filter::LogFilter;
use crate::log_sink::LogSink;
use crate::metrics::HttpServerInstruments;
use crate::otlp::queue::{RecordQueue, Signal};
use crate::otlp::resource::resource_body;
use crate::otlp::warnings::ExportWarnings;
use crate::otlp_http::RuntimeHttpClient;
use crate::pii::PiiPolicy;
use crate::prometheus::SharedReader;

/// Instrumentation scope name of everything this library records.
pub const SCOPE_NAME: &str = "telemetry";

/// How long [`TelemetryGuard::shutdown`] waits for the exporters before giving up (Cloud Run
/// allows 10 s from SIGTERM to exit, for draining requests and flushing telemetry together).
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(4);

/// One telemetry instance: the handle an app passes to its layers, handlers and helpers.
///
/// Cheap to clone. Nothing here is process-global: two instances in one process (two tests,
/// or an app and an in-process dependency) never see each other's signals.
#[derive(Clone, Debug)]
pub struct Telemetry {
    pub(crate) inner: Arc<TelemetryInner>,
}

/// Flushes and stops the exporters of the instance it came with. Call
/// [`TelemetryGuard::shutdown`] after the server stopped; dropping it without that only stops
/// the stdout writer.
#[derive(Debug)]
#[must_use = "call `shutdown().await` after the server stops, or buffered telemetry is lost"]
pub struct TelemetryGuard {
    inner: Arc<TelemetryInner>,
}

pub(crate) struct TelemetryInner {
    pub(crate) config: TelemetryConfig,
    pub(crate) tracer: SdkTracer,
    pub(crate) tracer_provider: SdkTracerProvider,
    pub(crate) meter_provider: SdkMeterProvider,
    pub(crate) meter: Meter,
    pub(crate) prometheus: Arc<ManualReader>,
    pub(crate) log_queue: Option<RecordQueue>,
    pub(crate) span_queue: Option<RecordQueue>,
    pub(crate) sink: LogSink,
    pub(crate) pii: PiiPolicy,
    pub(crate) http: Arc<HttpServerInstruments>,
    pub(crate) log_filter: LogFilter,
    shut_down: AtomicBool,
}

impl std::fmt::Debug for TelemetryInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("service", &self.config.service_name)
            .field("otlp", &self.config.otlp_endpoint)
            .finish_non_exhaustive()
    }
}

/// Why a telemetry instance could not be built.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// OTLP export over gRPC or our HTTP client needs a tokio runtime.
    #[error("telemetry must be initialised inside a tokio runtime when OTLP export is on")]
    NoRuntime,
    /// The OTLP endpoint cannot be used for export.
    #[error("cannot export to OTEL_EXPORTER_OTLP_ENDPOINT: {0}")]
    Endpoint(String),
    /// An OTLP exporter rejected its configuration.
    #[error("cannot build the OTLP {signal} exporter for OTEL_EXPORTER_OTLP_ENDPOINT: {source}")]
    Exporter {
        /// traces, metrics or logs
        signal: &'static str,
        /// the exporter's own error
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },
}

/// Options of [`Telemetry::builder`].
#[derive(Debug)]
pub struct TelemetryBuilder {
    config: TelemetryConfig,
    sink: Option<LogSink>,
}

impl TelemetryBuilder {
    /// Writes log lines to `sink` instead of stdout (tests use [`LogSink::memory`]).
    pub fn log_sink(mut self, sink: LogSink) -> Self {
        self.sink = Some(sink);
        self
    }

    /// Builds the instance. Call it inside the tokio runtime when OTLP export is on.
    pub fn build(self) -> Result<(Telemetry, TelemetryGuard), InitError> {
        let inner = Arc::new(TelemetryInner::build(self.config, self.sink)?);
        Ok((
            Telemetry {
                inner: Arc::clone(&inner),
            },
            TelemetryGuard { inner },
        ))
    }
}

impl Telemetry {
    /// Builds an instance from `config`, logging to stdout.
    pub fn init(config: TelemetryConfig) -> Result<(Telemetry, TelemetryGuard), InitError> {
        Self::builder(config).build()
    }

    /// Starts building an instance with non-default options.
    pub fn builder(config: TelemetryConfig) -> TelemetryBuilder {
        TelemetryBuilder { config, sink: None }
    }

    /// The resolved configuration.
    pub fn config(&self) -> &TelemetryConfig {
        &self.inner.config
    }

    /// A meter of this instance, for domain metrics (`shop.*`).
    pub fn meter(&self) -> &Meter {
        &self.inner.meter
    }

    /// The tracer of this instance, for custom spans.
    pub fn tracer(&self) -> &SdkTracer {
        &self.inner.tracer
    }

    /// The PII policy of this instance.
    pub fn pii(&self) -> &PiiPolicy {
        &self.inner.pii
    }

    /// The log sink of this instance.
    pub fn log_sink(&self) -> &LogSink {
        &self.inner.sink
    }

    /// Exports everything queued so far (spans, logs, then metrics) and waits for it, on a
    /// blocking thread. For tests and benchmarks; services rely on the batch schedule.
    pub async fn force_flush(&self) {
        let inner = Arc::clone(&self.inner);
        let _ = tokio::task::spawn_blocking(move || {
            let _ = inner.tracer_provider.force_flush();
            if let Some(spans) = &inner.span_queue {
                spans.flush(inner.config.otlp_timeout);
            }
            if let Some(logs) = &inner.log_queue {
                logs.flush(inner.config.otlp_timeout);
            }
            let _ = inner.meter_provider.force_flush();
        })
        .await;
    }

    /// The Prometheus text exposition of this instance's metrics (what `/metrics` serves).
    pub fn prometheus_text(&self) -> String {
        crate::prometheus::render(&self.inner.prometheus)
    }

    /// A `tracing` layer writing events as this instance's log lines (stdout and OTLP), with
    /// the `RUST_LOG` filter of its configuration. Events inside a request go to the instance
    /// serving that request; events outside any request go to this one.
    pub fn log_layer(&self) -> crate::logs::TelemetryLogLayer {
        crate::logs::TelemetryLogLayer::new(Some(Arc::clone(&self.inner)))
    }

    /// Installs [`Telemetry::log_layer`] as the process's global `tracing` subscriber.
    /// Returns `false` when one was already installed (the existing one is kept).
    pub fn install_global_subscriber(&self) -> bool {
        use tracing_subscriber::layer::SubscriberExt;
        let subscriber = tracing_subscriber::registry().with(self.log_layer());
        tracing::subscriber::set_global_default(subscriber).is_ok()
    }
}

impl TelemetryGuard {
    /// Flushes and stops the exporters within [`SHUTDOWN_TIMEOUT`]; see
    /// [`TelemetryGuard::shutdown_within`].
    pub async fn shutdown(self) {
        self.shutdown_within(SHUTDOWN_TIMEOUT).await;
    }

    /// Flushes and stops traces and logs (in parallel), then metrics (so the last export
    /// counts every request), each on a blocking thread so the runtime keeps serving, and
    /// returns within `budget` even when the collector is down; then writes out the stdout
    /// buffer. If this future is dropped early, the stdout buffer is still written out.
    /// Idempotent.
    pub async fn shutdown_within(self, budget: Duration) {
        shutdown_inner(&self.inner, budget).await;
    }
}

/// Writes out the stdout buffer when dropped: also when a shutdown is cancelled midway.
struct CloseSinkOnDrop<'a>(&'a LogSink);

impl Drop for CloseSinkOnDrop<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

pub(crate) async fn shutdown_inner(inner: &Arc<TelemetryInner>, budget: Duration) {
    if inner.shut_down.swap(true, Ordering::SeqCst) {
        return;
    }
    let _close_sink = CloseSinkOnDrop(&inner.sink);
    let started = tokio::time::Instant::now();
    let deadline = started + budget;
    let traces = {
        let worker = Arc::clone(inner);
        tokio::task::spawn_blocking(move || {
            if let Some(spans) = &worker.span_queue {
                spans.shutdown(budget);
            }
            worker.tracer_provider.shutdown_with_timeout(budget)
        })
    };
    let logs = {
        let worker = Arc::clone(inner);
        tokio::task::spawn_blocking(move || {
            if let Some(logs) = &worker.log_queue {
                logs.shutdown(budget);
            }
        })
    };
    let _ = tokio::time::timeout_at(deadline, async {
        let _ = traces.await;
        let _ = logs.await;
    })
    .await;
    let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
    let metrics = {
        let worker = Arc::clone(inner);
        tokio::task::spawn_blocking(move || worker.meter_provider.shutdown_with_timeout(remaining))
    };
    let _ = tokio::time::timeout_at(
        deadline.max(tokio::time::Instant::now() + Duration::from_millis(200)),
        metrics,
    )
    .await;
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if !self.inner.shut_down.load(Ordering::SeqCst) {
            self.inner.sink.close();
        }
    }
}

/// An instance dropped without [`TelemetryGuard::shutdown`] (a test, a server task ending):
/// the meter provider's own drop flushes synchronously, waiting for the exporter up to its
/// timeout (5 s against a collector that went away), and the last reference is usually dropped
/// on an async worker thread — which that wait would stall, with every request queued on it.
/// The provider is shut down on a thread of its own instead.
impl Drop for TelemetryInner {
    fn drop(&mut self) {
        if self.shut_down.load(Ordering::SeqCst) {
            return;
        }
        let provider = self.meter_provider.clone();
        // Without a thread to spare, the provider's drop flushes here, as it would have.
        let _ = std::thread::Builder::new()
            .name("telemetry-drop".to_owned())
            .spawn(move || {
                let _ = provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT);
            });
    }
}

impl TelemetryInner {
    fn build(config: TelemetryConfig, sink: Option<LogSink>) -> Result<Self, InitError> {
        let export = config.otlp_enabled();
        if export && tokio::runtime::Handle::try_current().is_err() {
            return Err(InitError::NoRuntime);
        }
        let resource = build_resource(&config);

        let sink = sink.unwrap_or_else(LogSink::stdout);
        let (log_queue, span_queue) = if export {
            let body = resource_body(&resource);
            let warnings = || Some(ExportWarnings::new(&config, sink.clone()));
            (
                Some(
                    RecordQueue::start(&config, Signal::Logs, body.clone(), warnings())
                        .map_err(InitError::Endpoint)?,
                ),
                Some(
                    RecordQueue::start(&config, Signal::Spans, body, warnings())
                        .map_err(InitError::Endpoint)?,
                ),
            )
        } else {
            (None, None)
        };

        let mut tracer_builder = SdkTracerProvider::builder()
            .with_resource(resource.clone())
            .with_sampler(sampler(config.sampler));
        if let Some(spans) = &span_queue {
            // Child spans share the SERVER spans' bounded queue, counters and export thread.
            tracer_builder = tracer_builder.with_span_processor(QueueSpanProcessor(spans.pusher()));
        }
        // Failed metric exports (periodic reader).
        let metric_failures = Arc::new(AtomicU64::new(0));
        let tracer_provider = tracer_builder.build();
        let tracer = tracer_provider.tracer_with_scope(scope());

        let prometheus = Arc::new(ManualReader::builder().build());
        let limit = config.metric_cardinality_limit;
        let mut meter_builder = SdkMeterProvider::builder()
            .with_resource(resource.clone())
            .with_reader(SharedReader(Arc::clone(&prometheus)))
            .with_view(move |_: &Instrument| {
                Stream::builder().with_cardinality_limit(limit).build().ok()
            });
        if export {
            let exporter = metric_exporter(&config).map_err(|source| InitError::Exporter {
                signal: "metrics",
                source,
            })?;
            let exporter = CountingMetricExporter {
                inner: exporter,
                failures: Arc::clone(&metric_failures),
            };
            let reader = PeriodicReader::builder(exporter)
                .with_interval(config.metric_export_interval)
                .build();
            meter_builder = meter_builder.with_reader(reader);
        }
        let meter_provider = meter_builder.build();
        let meter = meter_provider.meter_with_scope(scope());

        register_health_metrics(
            &meter,
            &sink,
            span_queue.as_ref().map(RecordQueue::stats),
            log_queue.as_ref().map(RecordQueue::stats),
            &metric_failures,
        );

        let pii = PiiPolicy::new(
            config.pii_mode,
            config.pii_key.as_ref().map(|k| k.expose().as_bytes()),
        );
        let log_filter = LogFilter::parse(&config.log_filter).unwrap_or_else(|_| {
            // from_lookup validated it; a hand-built config with a bad filter falls back to info.
            LogFilter::parse("info").unwrap_or_else(|e| unreachable!("{e}"))
        });
        Ok(Self {
            http: Arc::new(HttpServerInstruments::new(&meter)),
            sink,
            config,
            tracer,
            tracer_provider,
            meter_provider,
            meter,
            prometheus,
            log_queue,
            span_queue,
            pii,
            log_filter,
            shut_down: AtomicBool::new(false),
        })
    }
}

/// Child spans (database and custom spans of [`Telemetry::tracer`]) go through the same
/// bounded queue as SERVER spans: encoded when they end, dropped and counted when the queue is
/// full, exported by the same thread, reported by the same WARN line.
#[derive(Debug)]
struct QueueSpanProcessor(crate::otlp::queue::RecordPusher);

impl opentelemetry_sdk::trace::SpanProcessor for QueueSpanProcessor {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &opentelemetry::Context) {}

    fn on_end(&self, span: opentelemetry_sdk::trace::SpanData) {
        if span.span_context.is_sampled() {
            // Every span of this instance comes from its one tracer, whose scope is SCOPE_NAME.
            self.0.push(SCOPE_NAME, |w| {
                crate::otlp::span::encode_span(w, &(&span).into())
            });
        }
    }

    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }
}

/// The metric exporter, counting the exports that fail (their points are not lost for
/// cumulative counters and histograms: the next export carries the totals).
struct CountingMetricExporter {
    inner: opentelemetry_otlp::MetricExporter,
    failures: Arc<AtomicU64>,
}

impl opentelemetry_sdk::metrics::exporter::PushMetricExporter for CountingMetricExporter {
    async fn export(
        &self,
        metrics: &opentelemetry_sdk::metrics::data::ResourceMetrics,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        let result = self.inner.export(metrics).await;
        if result.is_err() {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> opentelemetry_sdk::metrics::Temporality {
        self.inner.temporality()
    }
}

/// The telemetry plane's own health, on `/metrics` and over OTLP: what was dropped (full
/// queues, blocked stdout) and which exports failed. Read from counters at collection time, so
/// the hot path pays nothing for them.
fn register_health_metrics(
    meter: &Meter,
    sink: &LogSink,
    spans: Option<crate::otlp::queue::QueueStats>,
    logs: Option<crate::otlp::queue::QueueStats>,
    metric_failures: &Arc<AtomicU64>,
) {
    let queues: Vec<(&'static str, crate::otlp::queue::QueueStats)> = spans
        .map(|s| ("spans", s))
        .into_iter()
        .chain(logs.map(|l| ("logs", l)))
        .collect();
    if !queues.is_empty() {
        let dropped = queues.clone();
        meter
            .u64_observable_counter("app.telemetry.dropped")
            .with_unit("{record}")
            .with_description(
                "Spans and log records dropped before export because the export queue was full.",
            )
            .with_callback(move |observer| {
                for (signal, stats) in &dropped {
                    observer.observe(stats.dropped(), &[KeyValue::new("signal", *signal)]);
                }
            })
            .build();
        let metrics = Arc::clone(metric_failures);
        meter
            .u64_observable_counter("app.telemetry.export.failures")
            .with_unit("{request}")
            .with_description(
                "OTLP export requests that failed or timed out (their records are lost).",
            )
            .with_callback(move |observer| {
                for (signal, stats) in &queues {
                    observer.observe(stats.failed_exports(), &[KeyValue::new("signal", *signal)]);
                }
                observer.observe(
                    metrics.load(Ordering::Relaxed),
                    &[KeyValue::new("signal", "metrics")],
                );
            })
            .build();
    }
    let sink = sink.clone();
    meter
        .u64_observable_counter("app.telemetry.log_lines.dropped")
        .with_unit("{line}")
        .with_description("Log lines dropped because stdout could not keep up.")
        .with_callback(move |observer| observer.observe(sink.dropped_lines(), &[]))
        .build();
}

fn scope() -> opentelemetry::InstrumentationScope {
    opentelemetry::InstrumentationScope::builder(SCOPE_NAME)
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
}

fn build_resource(config: &TelemetryConfig) -> Resource {
    let instance_id = {
        let bytes: [u8; 16] = rand::random();
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let mut attributes = vec![
        KeyValue::new("service.name", config.service_name.clone()),
        KeyValue::new("service.version", config.service_version.clone()),
        KeyValue::new("service.instance.id", instance_id),
        KeyValue::new(
            "deployment.environment.name",
            config.deployment_environment.clone(),
        ),
        KeyValue::new("telemetry.sdk.name", "opentelemetry"),
        KeyValue::new("telemetry.sdk.language", "rust"),
        KeyValue::new("telemetry.sdk.version", "0.33.1"),
    ];
    if config.persona == Persona::Cloud || config.cloud_run_service.is_some() {
        attributes.push(KeyValue::new("cloud.provider", "gcp"));
        attributes.push(KeyValue::new("cloud.platform", "gcp_cloud_run"));
        if let Some(project) = &config.gcp_project {
            attributes.push(KeyValue::new("cloud.account.id", project.clone()));
        }
        if let Some(service) = &config.cloud_run_service {
            attributes.push(KeyValue::new("faas.name", service.clone()));
        }
        if let Some(revision) = &config.cloud_run_revision {
            attributes.push(KeyValue::new("faas.version", revision.clone()));
        }
    }
    Resource::builder_empty()
        .with_attributes(attributes)
        .build()
}

fn sampler(config: SamplerConfig) -> Sampler {
    match config {
        SamplerConfig::AlwaysOn => Sampler::AlwaysOn,
        SamplerConfig::AlwaysOff => Sampler::AlwaysOff,
        SamplerConfig::TraceIdRatio(r) => Sampler::TraceIdRatioBased(r),
        SamplerConfig::ParentBasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        SamplerConfig::ParentBasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        SamplerConfig::ParentBasedTraceIdRatio(r) => {
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(r)))
        }
    }
}

fn endpoint(config: &TelemetryConfig) -> &str {
    config
        .otlp_endpoint
        .as_deref()
        .unwrap_or("http://localhost:4317")
}

fn http_headers(config: &TelemetryConfig) -> HashMap<String, String> {
    config
        .otlp_headers
        .iter()
        .map(|(k, v)| (k.clone(), v.expose().to_owned()))
        .collect()
}

/// The stock OTLP metric exporter (metrics leave once per interval, so its cost is not on the
/// request path), on the same transport settings as the span and log queues.
fn metric_exporter(
    config: &TelemetryConfig,
) -> Result<opentelemetry_otlp::MetricExporter, opentelemetry_otlp::ExporterBuildError> {
    match config.otlp_protocol {
        OtlpProtocol::Grpc => opentelemetry_otlp::MetricExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint(config))
            .with_timeout(config.otlp_timeout)
            .with_metadata(crate::otlp_export::grpc_metadata(config))
            .build(),
        OtlpProtocol::HttpProtobuf => opentelemetry_otlp::MetricExporter::builder()
            .with_http()
            .with_endpoint(format!("{}/v1/metrics", endpoint(config)))
            .with_timeout(config.otlp_timeout)
            .with_headers(http_headers(config))
            .with_http_client(RuntimeHttpClient::new(config.otlp_timeout))
            .build(),
    }
}
