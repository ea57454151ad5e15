//! Production observability for axum services, built on the OpenTelemetry SDK.
//!
//! One [`Telemetry`] instance per service (or per test) gives:
//! - a tower layer ([`Telemetry::observe_router`]) doing the whole request lifecycle: request id,
//!   W3C trace context, a SERVER span per the HTTP semantic conventions, a request-scoped
//!   logging context (every log line carries `trace_id`, `span_id`, `request_id`), RED
//!   metrics under a cardinality budget, one access line, and the single error observation
//!   point ([`error`]), panics included;
//! - log lines on stdout in `json`, `gcp` or `pretty` format, written by a background thread,
//!   and the same records as OTLP logs;
//! - `tracing` spans (`#[tracing::instrument]`, `info_span!`, `.instrument(span)` on spawned
//!   tasks) exported as child spans of the request's SERVER span ([`tracing_spans`]);
//! - non-blocking OTLP export (gRPC or HTTP/protobuf) of traces, metrics and logs;
//! - `/metrics` in Prometheus text format from the same meter provider;
//! - PII modes ([`pii`]) applied to every signal;
//! - helpers for database client spans and metrics ([`db`]), and for outbound HTTP calls
//!   (CLIENT spans, W3C propagation, `http.client.request.duration`: [`outbound`]).
//!
//! Nothing is process-global: two instances in one process never see each other's signals.
//! See `examples/basic.rs` for a complete service.

#![warn(missing_docs)]

pub mod config;
pub mod context;
pub mod db;
pub mod env;
pub mod error;
mod event_fields;
mod exemplars;
pub mod export_tap;
pub mod gcp_metadata;
mod instance;
pub mod layer;
mod log_emitter;
pub mod log_filter;
mod log_format;
pub mod log_sink;
mod logs;
pub mod metrics;
mod otlp;
mod otlp_export;
mod otlp_http;
pub mod outbound;
pub mod pii;
mod prometheus;
pub mod semconv;
pub mod sentry;
pub mod serve;
pub mod settings_help;
pub mod trace_context;
pub mod tracing_spans;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use config::TelemetryConfig;
pub use context::RequestContext;
pub use error::{AppErrorKind, ErrorKind, ErrorObservation};
pub use instance::{
    InitError, SCOPE_NAME, SHUTDOWN_TIMEOUT, Telemetry, TelemetryBuilder, TelemetryGuard,
};
pub use layer::TelemetryLayer;
pub use logs::TelemetryLogLayer;

use axum::Router;
use axum::routing::get;

impl Telemetry {
    /// Adds `GET /metrics` (Prometheus text; OpenMetrics with exemplars when the `Accept`
    /// header asks for `application/openmetrics-text`) to `router` and applies [`Telemetry::layer`] to
    /// every route and the fallback: one call instruments a whole app.
    ///
    /// (Not named `instrument`: `tracing::Instrument` is implemented for every type, takes
    /// `self` by value and is in scope wherever `.instrument(span)` is used, so
    /// `telemetry.instrument(router)` would resolve to it and fail to compile.)
    ///
    /// ```
    /// use axum::{Router, routing::get};
    /// use tracing::Instrument as _; // `.instrument(span)` below, `observe_router` unaffected
    ///
    /// # async fn demo() {
    /// let (telemetry, _guard) =
    ///     telemetry::Telemetry::init(telemetry::TelemetryConfig::for_tests("doc")).unwrap();
    /// let app: Router = telemetry.observe_router(Router::new().route("/", get(|| async { "hi" })));
    /// tokio::spawn(async {}.instrument(tracing::info_span!("background")));
    /// # drop(app); }
    /// ```
    pub fn observe_router<S: Clone + Send + Sync + 'static>(&self, router: Router<S>) -> Router<S> {
        let telemetry = self.clone();
        router
            .route(
                "/metrics",
                get(move |headers: http::HeaderMap| {
                    let telemetry = telemetry.clone();
                    async move {
                        let accept = headers
                            .get(http::header::ACCEPT)
                            .and_then(|v| v.to_str().ok());
                        if prometheus::wants_openmetrics(accept) {
                            (
                                [(
                                    http::header::CONTENT_TYPE,
                                    prometheus::OPENMETRICS_CONTENT_TYPE,
                                )],
                                telemetry.openmetrics_text(),
                            )
                        } else {
                            (
                                [(http::header::CONTENT_TYPE, prometheus::CONTENT_TYPE)],
                                telemetry.prometheus_text(),
                            )
                        }
                    }
                })
                // Another method gets the JSON 405, like the app's own routes.
                .fallback(layer::method_not_allowed_fallback),
            )
            .layer(self.layer())
    }
}
