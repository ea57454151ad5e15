//! One telemetry instance ([`Telemetry`]): what an app holds and passes to its layers,
//! handlers and helpers. Built by [`setup`], stopped by [`shutdown`].
//!
//! The instance owns the providers, the export queues and the stdout sink; each part that
//! records something gets only the narrow handle it needs when the instance is built — the
//! middleware its [`LayerHandles`], the `tracing` layer and the request context the
//! instance's [`LogEmitter`] — and never reads the instance itself.

pub(crate) mod setup;
pub(crate) mod shutdown;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use opentelemetry::KeyValue;
use opentelemetry::metrics::Meter;
use opentelemetry_sdk::metrics::{ManualReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

use crate::config::TelemetryConfig;
use crate::layer::{LayerHandles, TelemetryLayer};
use crate::log_emitter::LogEmitter;
use crate::log_sink::LogSink;
use crate::otlp::queue::RecordQueue;
use crate::pii::PiiPolicy;

pub use setup::{InitError, TelemetryBuilder};
pub use shutdown::{SHUTDOWN_TIMEOUT, TelemetryGuard};

pub use crate::semconv::SCOPE_NAME;

/// One telemetry instance: the handle an app passes to its layers, handlers and helpers.
///
/// Cheap to clone. Nothing here is process-global: two instances in one process (two tests,
/// or an app and an in-process dependency) never see each other's signals.
#[derive(Clone, Debug)]
pub struct Telemetry {
    pub(crate) inner: Arc<Instance>,
}

/// What one instance owns. Only the instance's own modules read it.
pub(crate) struct Instance {
    pub(crate) config: TelemetryConfig,
    pub(crate) tracer: SdkTracer,
    pub(crate) tracer_provider: SdkTracerProvider,
    pub(crate) meter_provider: SdkMeterProvider,
    pub(crate) meter: Meter,
    pub(crate) prometheus: Arc<ManualReader>,
    pub(crate) span_queue: Option<RecordQueue>,
    pub(crate) log_queue: Option<RecordQueue>,
    pub(crate) sink: LogSink,
    /// The handle of the `tracing` layer and the request context.
    pub(crate) logs: Arc<LogEmitter>,
    /// The handle of the middleware.
    pub(crate) layer: Arc<LayerHandles>,
    /// The application's forbidden metric attribute keys (`TelemetryBuilder`).
    pub(crate) forbidden_metric_keys: &'static [&'static str],
    /// The Sentry sender, when `SENTRY_DSN` is set.
    pub(crate) sentry: Option<Arc<crate::sentry::SentryReporter>>,
    pub(crate) shut_down: AtomicBool,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("service", &self.config.service_name)
            .field("otlp", &self.config.otlp_endpoint)
            .finish_non_exhaustive()
    }
}

impl Telemetry {
    /// The resolved configuration.
    pub fn config(&self) -> &TelemetryConfig {
        &self.inner.config
    }

    /// Attribute keys that must never appear on a metric: the library's generic
    /// [`FORBIDDEN_METRIC_ATTRIBUTE_KEYS`](crate::metrics::FORBIDDEN_METRIC_ATTRIBUTE_KEYS)
    /// and the application's (`TelemetryBuilder::forbidden_metric_attribute_keys`).
    pub fn forbidden_metric_attribute_keys(&self) -> impl Iterator<Item = &'static str> + '_ {
        crate::metrics::FORBIDDEN_METRIC_ATTRIBUTE_KEYS
            .iter()
            .chain(self.inner.forbidden_metric_keys)
            .copied()
    }

    /// Drops every forbidden key ([`Self::forbidden_metric_attribute_keys`]) from attributes
    /// about to be recorded on a domain metric.
    pub fn retain_allowed_metric_attributes(&self, attributes: &mut Vec<KeyValue>) {
        attributes.retain(|kv| {
            !self
                .forbidden_metric_attribute_keys()
                .any(|key| key == kv.key.as_str())
        });
    }

    /// A meter of this instance, for the application's domain metrics.
    pub fn meter(&self) -> &Meter {
        &self.inner.meter
    }

    /// The tracer of this instance, for custom spans.
    pub fn tracer(&self) -> &SdkTracer {
        &self.inner.tracer
    }

    /// The PII policy of this instance.
    pub fn pii(&self) -> &PiiPolicy {
        self.inner.logs.pii()
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

    /// The OpenMetrics exposition of this instance's metrics, with the exemplars of
    /// `http.server.request.duration` and `app.errors` (what `/metrics` serves to a scraper
    /// that accepts `application/openmetrics-text`).
    pub fn openmetrics_text(&self) -> String {
        crate::prometheus::render_openmetrics(
            &self.inner.prometheus,
            &self.inner.layer.http().exemplars,
        )
    }

    /// The middleware layer of this instance. Apply it with `Router::layer` (after the routes,
    /// so `http.route` is known), or use [`Telemetry::observe_router`].
    pub fn layer(&self) -> TelemetryLayer {
        TelemetryLayer::new(Arc::clone(&self.inner.layer))
    }

    /// A `tracing` layer writing events as this instance's log lines (stdout and OTLP), with
    /// the `RUST_LOG` filter of its configuration, and exporting `tracing` spans as
    /// OpenTelemetry spans ([`crate::tracing_spans`]). Events and spans inside a request go to
    /// the instance serving that request; outside any request, to this one.
    pub fn log_layer(&self) -> crate::logs::TelemetryLogLayer {
        crate::logs::TelemetryLogLayer::new(Some(Arc::clone(&self.inner.logs)))
    }

    /// Installs [`Telemetry::log_layer`] as the process's global `tracing` subscriber.
    /// Returns `false` when one was already installed (the existing one is kept).
    pub fn install_global_subscriber(&self) -> bool {
        use tracing_subscriber::layer::SubscriberExt;
        let subscriber = tracing_subscriber::registry().with(self.log_layer());
        tracing::subscriber::set_global_default(subscriber).is_ok()
    }
}
