//! The instruments the middleware records, with the cardinality rules applied at record time.
//!
//! - `http.server.request.duration` (s): semconv boundaries plus 0.2 s, the latency SLO edge;
//! - `http.server.active_requests` ({request});
//! - `app.errors` ({error}): one increment per failed request, `error.type` + `http.route`.
//!
//! Attribute values are bounded by construction: methods outside the known set become
//! `_OTHER`, routes are templates (or absent when nothing matched), status codes are numbers,
//! `error.type` is a closed set. A per-instrument cardinality limit (a metric view) folds any
//! excess into the `otel.metric.overflow=true` series.

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter, UpDownCounter};

/// Bucket boundaries of `http.server.request.duration`: semconv's advice plus 0.2 s (the SLO).
pub const HTTP_SERVER_DURATION_BOUNDARIES: [f64; 15] =
    [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.2, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0];

/// Attribute keys that must never appear on a metric (user, request or free-form values).
pub const FORBIDDEN_METRIC_ATTRIBUTE_KEYS: [&str; 14] = [
    "enduser.id",
    "enduser.pseudo.id",
    "user.id",
    "order.id",
    "session.id",
    "request_id",
    "http.request.header.x-request-id",
    "client.address",
    "user_agent.original",
    "error.message",
    "exception.message",
    "url.path",
    "url.full",
    "timestamp",
];

/// The HTTP server instruments.
#[derive(Debug, Clone)]
pub(crate) struct HttpServerInstruments {
    pub(crate) duration: Histogram<f64>,
    pub(crate) active: UpDownCounter<i64>,
    pub(crate) errors: Counter<u64>,
}

impl HttpServerInstruments {
    pub(crate) fn new(meter: &Meter) -> Self {
        Self {
            duration: meter
                .f64_histogram("http.server.request.duration")
                .with_unit("s")
                .with_description("Duration of HTTP server requests.")
                .with_boundaries(HTTP_SERVER_DURATION_BOUNDARIES.to_vec())
                .build(),
            active: meter
                .i64_up_down_counter("http.server.active_requests")
                .with_unit("{request}")
                .with_description("Number of active HTTP server requests.")
                .build(),
            errors: meter
                .u64_counter("app.errors")
                .with_unit("{error}")
                .with_description("Failed requests, observed once each, by error.type and http.route.")
                .build(),
        }
    }
}

/// Drops any forbidden key from a caller-supplied attribute list (used by the domain-metric helper).
pub fn retain_allowed_attributes(attributes: &mut Vec<KeyValue>) {
    attributes.retain(|kv| !FORBIDDEN_METRIC_ATTRIBUTE_KEYS.contains(&kv.key.as_str()));
}
