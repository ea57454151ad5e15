//! Building one telemetry instance: resource, tracer and meter providers, the OTLP export
//! queues and the metric exporter, the `/metrics` reader, the stdout log sink, the exporter
//! health metrics — and the narrow handles the middleware and the log layer get.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{
    Instrument, ManualReader, PeriodicReader, SdkMeterProvider, Stream,
};
use opentelemetry_sdk::resource::TelemetryResourceDetector;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};

use crate::config::{Persona, SamplerConfig, TelemetryConfig};
use crate::export_tap::{ExportTap, TapMetricExporter};
use crate::layer::LayerHandles;
use crate::log_emitter::LogEmitter;
use crate::log_filter::LogFilter;
use crate::log_sink::LogSink;
use crate::metrics::HttpServerInstruments;
use crate::otlp::queue::{RecordQueue, Signal};
use crate::otlp::resource::resource_body;
use crate::otlp::warnings::ExportWarnings;
use crate::pii::PiiPolicy;
use crate::prometheus::SharedReader;
use crate::semconv::{
    APP_TELEMETRY_DROPPED, APP_TELEMETRY_EXPORT_FAILURES, APP_TELEMETRY_LOG_LINES_DROPPED,
    APP_TELEMETRY_SIGNAL, CLOUD_ACCOUNT_ID, CLOUD_PLATFORM, CLOUD_PROVIDER, CLOUD_REGION,
    DEPLOYMENT_ENVIRONMENT_NAME, FAAS_INSTANCE, FAAS_NAME, FAAS_VERSION, SERVICE_INSTANCE_ID,
    SERVICE_NAME, SERVICE_VERSION,
};
use crate::sentry::SentryReporter;

use super::{Instance, SCOPE_NAME, Telemetry, TelemetryGuard};

/// Why a telemetry instance could not be built.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// OTLP export over gRPC or our HTTP client needs a tokio runtime.
    #[error(
        "telemetry must be initialised inside a tokio runtime when OTLP export is on or SENTRY_DSN is set"
    )]
    NoRuntime,
    /// Sentry reporting could not start.
    #[error("cannot report to SENTRY_DSN: {0}")]
    Sentry(String),
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
    email_fields: &'static [&'static str],
    forbidden_metric_keys: &'static [&'static str],
    tap: Option<Arc<dyn ExportTap>>,
    startup_fields: Vec<(&'static str, String)>,
}

impl TelemetryBuilder {
    /// Adds `key=value` to the instance's start-up line (target `telemetry::startup`), e.g.
    /// the URL of a console the application serves.
    pub fn startup_field(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.startup_fields.push((key, value.into()));
        self
    }

    /// Hands every encoded OTLP export request (spans, log records, metrics) to `tap` as well,
    /// in process: exactly what is exported, also when no OTLP endpoint is set (see
    /// [`crate::export_tap`]). Without a tap (the default) nothing extra is encoded.
    pub fn export_tap(mut self, tap: Arc<dyn ExportTap>) -> Self {
        self.tap = Some(tap);
        self
    }

    /// Writes log lines to `sink` instead of stdout (tests use [`LogSink::memory`]).
    pub fn log_sink(mut self, sink: LogSink) -> Self {
        self.sink = Some(sink);
        self
    }

    /// The application's log fields that hold email addresses: only their domain is recorded
    /// (see [`PiiPolicy::with_email_fields`]). The library knows no field names.
    pub fn email_fields(mut self, fields: &'static [&'static str]) -> Self {
        self.email_fields = fields;
        self
    }

    /// The application's attribute keys that must never appear on a metric (its domain's
    /// identifiers, such as an order id), on top of the library's generic
    /// [`FORBIDDEN_METRIC_ATTRIBUTE_KEYS`](crate::metrics::FORBIDDEN_METRIC_ATTRIBUTE_KEYS).
    /// See [`Telemetry::retain_allowed_metric_attributes`].
    pub fn forbidden_metric_attribute_keys(mut self, keys: &'static [&'static str]) -> Self {
        self.forbidden_metric_keys = keys;
        self
    }

    /// Builds the instance. Call it inside the tokio runtime when OTLP export is on.
    pub fn build(self) -> Result<(Telemetry, TelemetryGuard), InitError> {
        let inner = Arc::new(Instance::build(
            self.config,
            self.sink,
            self.email_fields,
            self.forbidden_metric_keys,
            self.tap,
            &self.startup_fields,
        )?);
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
        TelemetryBuilder {
            config,
            sink: None,
            email_fields: &[],
            forbidden_metric_keys: &[],
            tap: None,
            startup_fields: Vec::new(),
        }
    }
}

impl Instance {
    fn build(
        config: TelemetryConfig,
        sink: Option<LogSink>,
        email_fields: &'static [&'static str],
        forbidden_metric_keys: &'static [&'static str],
        tap: Option<Arc<dyn ExportTap>>,
        startup_fields: &[(&'static str, String)],
    ) -> Result<Self, InitError> {
        let export = config.otlp_enabled();
        // The record queues run when OTLP export is on or a tap wants the encoded batches.
        let queues = export || tap.is_some();
        if (queues || config.sentry.is_some()) && tokio::runtime::Handle::try_current().is_err() {
            return Err(InitError::NoRuntime);
        }
        let resource = build_resource(&config);

        let sink = sink.unwrap_or_else(LogSink::stdout);
        let (log_queue, span_queue) = if queues {
            let body = resource_body(&resource);
            let warnings = || export.then(|| ExportWarnings::new(&config, sink.clone()));
            (
                Some(
                    RecordQueue::start(
                        &config,
                        Signal::Logs,
                        body.clone(),
                        warnings(),
                        tap.clone(),
                    )
                    .map_err(InitError::Endpoint)?,
                ),
                Some(
                    RecordQueue::start(&config, Signal::Spans, body, warnings(), tap.clone())
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
            let exporter =
                crate::otlp_export::metric_exporter(&config).map_err(InitError::Endpoint)?;
            let exporter = CountingMetricExporter {
                inner: exporter,
                failures: Arc::clone(&metric_failures),
            };
            let reader = PeriodicReader::builder(exporter)
                .with_interval(config.metric_export_interval)
                .build();
            meter_builder = meter_builder.with_reader(reader);
        }
        if let Some(tap) = &tap {
            let interval = tap.metric_interval();
            let reader = PeriodicReader::builder(TapMetricExporter(Arc::clone(tap)))
                .with_interval(interval)
                .build();
            meter_builder = meter_builder.with_reader(reader);
        }
        let meter_provider = meter_builder.build();
        let meter = meter_provider.meter_with_scope(scope());

        let sentry = match &config.sentry {
            Some(sentry) => Some(Arc::new(
                SentryReporter::start(&config, sentry).map_err(InitError::Sentry)?,
            )),
            None => None,
        };
        register_health_metrics(
            &meter,
            &sink,
            span_queue.as_ref().map(RecordQueue::stats),
            log_queue.as_ref().map(RecordQueue::stats),
            &metric_failures,
            sentry.clone(),
        );

        let pii = PiiPolicy::new(
            config.pii_mode,
            config.pii_key.as_ref().map(|k| k.expose().as_bytes()),
        )
        .with_email_fields(email_fields);
        let log_filter = LogFilter::parse(&config.log_filter).unwrap_or_else(|_| {
            // from_lookup validated it; a hand-built config with a bad filter falls back to info.
            LogFilter::parse("info").unwrap_or_else(|e| unreachable!("{e}"))
        });
        crate::otlp_export::announce(&config, &log_filter, &sink, startup_fields);
        crate::gcp_metadata::warn_if_incomplete(&config, &log_filter, &sink);
        let logs = Arc::new(LogEmitter::new(
            &config,
            log_filter,
            pii,
            sink.clone(),
            log_queue.as_ref().map(RecordQueue::pusher),
            tracer.clone(),
        ));
        let layer = Arc::new(LayerHandles::new(
            &config,
            Arc::new(HttpServerInstruments::new(&meter)),
            span_queue.as_ref().map(RecordQueue::pusher),
            Arc::clone(&logs),
            sentry.clone(),
        ));
        Ok(Self {
            sink,
            config,
            tracer,
            tracer_provider,
            meter_provider,
            meter,
            prometheus,
            log_queue,
            span_queue,
            logs,
            layer,
            forbidden_metric_keys,
            sentry,
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
    sentry: Option<Arc<SentryReporter>>,
) {
    let queues: Vec<(&'static str, crate::otlp::queue::QueueStats)> = spans
        .map(|s| ("spans", s))
        .into_iter()
        .chain(logs.map(|l| ("logs", l)))
        .collect();
    let export = !queues.is_empty();
    if export || sentry.is_some() {
        let dropped = queues.clone();
        let dropped_sentry = sentry.clone();
        meter
            .u64_observable_counter(APP_TELEMETRY_DROPPED)
            .with_unit("{record}")
            .with_description(
                "Spans and log records dropped before export because the export queue was full.",
            )
            .with_callback(move |observer| {
                for (signal, stats) in &dropped {
                    observer.observe(
                        stats.dropped(),
                        &[KeyValue::new(APP_TELEMETRY_SIGNAL, *signal)],
                    );
                }
                if let Some(sentry) = &dropped_sentry {
                    observer.observe(
                        sentry.stats().0,
                        &[KeyValue::new(APP_TELEMETRY_SIGNAL, "sentry")],
                    );
                }
            })
            .build();
        let metrics = Arc::clone(metric_failures);
        meter
            .u64_observable_counter(APP_TELEMETRY_EXPORT_FAILURES)
            .with_unit("{request}")
            .with_description(
                "OTLP export requests that failed or timed out (their records are lost).",
            )
            .with_callback(move |observer| {
                for (signal, stats) in &queues {
                    observer.observe(
                        stats.failed_exports(),
                        &[KeyValue::new(APP_TELEMETRY_SIGNAL, *signal)],
                    );
                }
                if export {
                    observer.observe(
                        metrics.load(Ordering::Relaxed),
                        &[KeyValue::new(APP_TELEMETRY_SIGNAL, "metrics")],
                    );
                }
                if let Some(sentry) = &sentry {
                    observer.observe(
                        sentry.stats().1,
                        &[KeyValue::new(APP_TELEMETRY_SIGNAL, "sentry")],
                    );
                }
            })
            .build();
    }
    let sink = sink.clone();
    meter
        .u64_observable_counter(APP_TELEMETRY_LOG_LINES_DROPPED)
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
        KeyValue::new(SERVICE_NAME, config.service_name.clone()),
        KeyValue::new(SERVICE_VERSION, config.service_version.clone()),
        KeyValue::new(SERVICE_INSTANCE_ID, instance_id),
        KeyValue::new(
            DEPLOYMENT_ENVIRONMENT_NAME,
            config.deployment_environment.clone(),
        ),
    ];
    if config.persona == Persona::Cloud || config.cloud_run_service.is_some() {
        attributes.push(KeyValue::new(CLOUD_PROVIDER, "gcp"));
        attributes.push(KeyValue::new(CLOUD_PLATFORM, "gcp_cloud_run"));
        if let Some(project) = &config.gcp_project {
            attributes.push(KeyValue::new(CLOUD_ACCOUNT_ID, project.clone()));
        }
        if let Some(region) = &config.gcp_region {
            attributes.push(KeyValue::new(CLOUD_REGION, region.clone()));
        }
        if let Some(instance) = &config.gcp_instance_id {
            attributes.push(KeyValue::new(FAAS_INSTANCE, instance.clone()));
        }
        if let Some(service) = &config.cloud_run_service {
            attributes.push(KeyValue::new(FAAS_NAME, service.clone()));
        }
        if let Some(revision) = &config.cloud_run_revision {
            attributes.push(KeyValue::new(FAAS_VERSION, revision.clone()));
        }
    }
    // `telemetry.sdk.{name,language,version}` from the SDK itself: its detector carries the
    // version of the `opentelemetry_sdk` crate this library was built against, so the value can
    // never go stale when the dependency moves.
    Resource::builder_empty()
        .with_detector(Box::new(TelemetryResourceDetector))
        .with_attributes(attributes)
        .build()
}

/// The instance's sampler for SDK spans (database, outbound, `tracing` spans): the configured
/// one, except that a span started while serving an untraced request (a probe) is dropped.
#[derive(Debug, Clone)]
struct ProbeAwareSampler(Sampler);

impl opentelemetry_sdk::trace::ShouldSample for ProbeAwareSampler {
    fn should_sample(
        &self,
        parent_context: Option<&opentelemetry::Context>,
        trace_id: opentelemetry::trace::TraceId,
        name: &str,
        span_kind: &opentelemetry::trace::SpanKind,
        attributes: &[KeyValue],
        links: &[opentelemetry::trace::Link],
    ) -> opentelemetry_sdk::trace::SamplingResult {
        let untraced = crate::context::RequestContext::with_current(|request| {
            request.is_some_and(|request| request.untraced && request.trace_id == trace_id)
        });
        if untraced {
            use opentelemetry::trace::TraceContextExt as _;
            return opentelemetry_sdk::trace::SamplingResult {
                decision: opentelemetry_sdk::trace::SamplingDecision::Drop,
                attributes: Vec::new(),
                trace_state: parent_context
                    .map(|cx| cx.span().span_context().trace_state().clone())
                    .unwrap_or_default(),
            };
        }
        self.0
            .should_sample(parent_context, trace_id, name, span_kind, attributes, links)
    }
}

fn sampler(config: SamplerConfig) -> ProbeAwareSampler {
    ProbeAwareSampler(match config {
        SamplerConfig::AlwaysOn => Sampler::AlwaysOn,
        SamplerConfig::AlwaysOff => Sampler::AlwaysOff,
        SamplerConfig::TraceIdRatio(r) => Sampler::TraceIdRatioBased(r),
        SamplerConfig::ParentBasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        SamplerConfig::ParentBasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        SamplerConfig::ParentBasedTraceIdRatio(r) => {
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(r)))
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_sdk_version_is_the_opentelemetry_sdk_we_are_built_with() {
        let config = TelemetryConfig::from_lookup("svc", "1.2.3", |_| None).unwrap();
        let resource = build_resource(&config);
        let get = |key: &str| {
            resource
                .get(&opentelemetry::Key::from_static_str(match key {
                    "name" => "telemetry.sdk.name",
                    "language" => "telemetry.sdk.language",
                    _ => "telemetry.sdk.version",
                }))
                .map(|v| v.as_str().into_owned())
        };
        assert_eq!(get("name").as_deref(), Some("opentelemetry"));
        assert_eq!(get("language").as_deref(), Some("rust"));
        // The lock file names the opentelemetry_sdk this build used.
        let lock =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.lock"))
                .unwrap();
        let locked = lock
            .split("[[package]]")
            .find(|p| p.contains("name = \"opentelemetry_sdk\""))
            .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = ")))
            .map(|v| v.trim_matches('"').to_owned());
        assert_eq!(get("version"), locked);
        assert_eq!(
            resource
                .get(&opentelemetry::Key::from_static_str("service.version"))
                .map(|v| v.as_str().into_owned())
                .as_deref(),
            Some("1.2.3")
        );
    }
}
