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

use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::SystemTime;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{
    BoundHistogram, BoundUpDownCounter, Counter, Histogram, Meter, UpDownCounter,
};

use crate::error::ErrorKind;
use crate::exemplars::{ExemplarRegistry, HistogramSlots, SeriesSlots, Slot, SpanRef};
use crate::semconv::{
    APP_ERRORS, ERROR_TYPE, HTTP_REQUEST_METHOD, HTTP_RESPONSE_STATUS_CODE, HTTP_ROUTE,
    HTTP_SERVER_ACTIVE_REQUESTS, HTTP_SERVER_REQUEST_DURATION, METHODS, URL_SCHEME,
};

/// Bucket boundaries of `http.server.request.duration`: semconv's advice plus 0.2 s (the SLO).
pub const HTTP_SERVER_DURATION_BOUNDARIES: [f64; 15] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.2, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Attribute keys that must never appear on a metric (user, request or free-form values): the
/// library's generic list. An application adds the identifiers of its domain with
/// `TelemetryBuilder::forbidden_metric_attribute_keys`.
pub const FORBIDDEN_METRIC_ATTRIBUTE_KEYS: [&str; 13] = [
    "enduser.id",
    "enduser.pseudo.id",
    "user.id",
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
    active: UpDownCounter<i64>,
    pub(crate) errors: Counter<u64>,
    /// `http.server.active_requests` bound per method, on first use (a bound instrument skips
    /// the attribute lookup: one atomic add per request).
    active_by_method: [OnceLock<BoundUpDownCounter<i64>>; METHODS.len()],
    /// The exemplar slots of the bound duration series and of the `app.errors` series.
    pub(crate) exemplars: Arc<ExemplarRegistry>,
}

impl HttpServerInstruments {
    pub(crate) fn new(meter: &Meter) -> Self {
        Self {
            duration: meter
                .f64_histogram(HTTP_SERVER_REQUEST_DURATION)
                .with_unit("s")
                .with_description("Duration of HTTP server requests.")
                .with_boundaries(HTTP_SERVER_DURATION_BOUNDARIES.to_vec())
                .build(),
            active: meter
                .i64_up_down_counter(HTTP_SERVER_ACTIVE_REQUESTS)
                .with_unit("{request}")
                .with_description("Number of active HTTP server requests.")
                .build(),
            errors: meter
                .u64_counter(APP_ERRORS)
                .with_unit("{error}")
                .with_description(
                    "Failed requests, observed once each, by error.type and http.route.",
                )
                .build(),
            active_by_method: Default::default(),
            exemplars: Arc::default(),
        }
    }

    /// The active-requests counter of `method` (one of [`METHODS`]).
    pub(crate) fn active(&self, method: &'static str) -> &BoundUpDownCounter<i64> {
        let index = METHODS
            .iter()
            .position(|m| *m == method)
            .unwrap_or(METHODS.len() - 1);
        self.active_by_method[index].get_or_init(|| {
            self.active.bind(&[
                KeyValue::new(HTTP_REQUEST_METHOD, METHODS[index]),
                KeyValue::new(URL_SCHEME, "http"),
            ])
        })
    }
}

/// Most distinct (method, status, error) combinations one route keeps bound; beyond it,
/// measurements take the SDK's ordinary attribute lookup.
const MAX_BOUND_PER_ROUTE: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
struct DurationKey {
    method: &'static str,
    status: u16,
    error: Option<ErrorKind>,
    route: Option<Arc<str>>,
}

/// Per-route cache of the route template and of bound `http.server.request.duration` series.
///
/// One exists per route service (the layer wraps each route separately), so lookups scan a
/// handful of entries instead of hashing five attributes on every request.
#[derive(Default)]
pub(crate) struct RouteInstruments {
    route: OnceLock<Arc<str>>,
    durations: RwLock<Vec<BoundDuration>>,
    /// The exemplar slot of each `app.errors` series of this route, by error kind and route.
    errors: RwLock<Vec<ErrorSlot>>,
}

/// A bound duration series and the exemplar slots of its buckets.
type BoundDuration = (DurationKey, BoundHistogram<f64>, Arc<HistogramSlots>);
/// The exemplar slot of one `app.errors` series (error kind, route).
type ErrorSlot = (ErrorKind, Option<Arc<str>>, Arc<Slot>);

impl std::fmt::Debug for RouteInstruments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteInstruments")
            .field("route", &self.route.get())
            .finish_non_exhaustive()
    }
}

impl RouteInstruments {
    /// The shared template string for `matched` (allocated once per route).
    pub(crate) fn route(&self, matched: &str) -> Arc<str> {
        let cached = self.route.get_or_init(|| Arc::from(matched));
        if cached.as_ref() == matched {
            Arc::clone(cached)
        } else {
            Arc::from(matched)
        }
    }

    /// Records one request duration with the semconv attributes, and offers it as an
    /// exemplar of its bucket when `exemplar` is given (a sampled, exported span).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record_duration(
        &self,
        instruments: &HttpServerInstruments,
        seconds: f64,
        method: &'static str,
        status: u16,
        error: Option<ErrorKind>,
        route: Option<&Arc<str>>,
        exemplar: Option<(SpanRef, SystemTime)>,
    ) {
        let matches = |key: &DurationKey| {
            key.method == method
                && key.status == status
                && key.error == error
                && match (&key.route, route) {
                    (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
                    (None, None) => true,
                    _ => false,
                }
        };
        {
            let durations = self
                .durations
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some((_, bound, slots)) = durations.iter().find(|(key, ..)| matches(key)) {
                bound.record(seconds);
                if let Some((span, at)) = exemplar {
                    slots.offer(span, seconds, at);
                }
                return;
            }
        }
        let mut attributes = Vec::with_capacity(5);
        attributes.push(KeyValue::new(HTTP_REQUEST_METHOD, method));
        if let Some(route) = route {
            attributes.push(KeyValue::new(HTTP_ROUTE, Arc::clone(route)));
        }
        attributes.push(KeyValue::new(HTTP_RESPONSE_STATUS_CODE, i64::from(status)));
        attributes.push(KeyValue::new(URL_SCHEME, "http"));
        if let Some(error) = error {
            attributes.push(KeyValue::new(ERROR_TYPE, error.as_str()));
        }
        let mut durations = self
            .durations
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((_, bound, slots)) = durations.iter().find(|(key, ..)| matches(key)) {
            bound.record(seconds);
            if let Some((span, at)) = exemplar {
                slots.offer(span, seconds, at);
            }
        } else if durations.len() < MAX_BOUND_PER_ROUTE {
            let bound = instruments.duration.bind(&attributes);
            bound.record(seconds);
            let slots = Arc::new(HistogramSlots::new(&HTTP_SERVER_DURATION_BOUNDARIES));
            if let Some((span, at)) = exemplar {
                slots.offer(span, seconds, at);
            }
            instruments.exemplars.register(
                HTTP_SERVER_REQUEST_DURATION,
                &attributes,
                SeriesSlots::Histogram(Arc::clone(&slots)),
            );
            durations.push((
                DurationKey {
                    method,
                    status,
                    error,
                    route: route.cloned(),
                },
                bound,
                slots,
            ));
        } else {
            drop(durations);
            instruments.duration.record(seconds, &attributes);
        }
    }
}

impl RouteInstruments {
    /// Counts one failed request in `app.errors` (`error.type`, `http.route`), and offers it as
    /// an exemplar of its series when `exemplar` is given.
    pub(crate) fn record_error(
        &self,
        instruments: &HttpServerInstruments,
        kind: ErrorKind,
        route: Option<&Arc<str>>,
        exemplar: Option<(SpanRef, SystemTime)>,
    ) {
        let mut attributes = Vec::with_capacity(2);
        attributes.push(KeyValue::new(ERROR_TYPE, kind.as_str()));
        if let Some(route) = route {
            attributes.push(KeyValue::new(HTTP_ROUTE, Arc::clone(route)));
        }
        instruments.errors.add(1, &attributes);
        let Some((span, at)) = exemplar else {
            return;
        };
        let matches = |(k, r, _): &&ErrorSlot| *k == kind && r.as_deref() == route.map(|r| &**r);
        let found = self
            .errors
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(matches)
            .map(|(.., slot)| Arc::clone(slot));
        let slot = match found {
            Some(slot) => slot,
            None => {
                let mut errors = self.errors.write().unwrap_or_else(PoisonError::into_inner);
                if let Some((.., slot)) = errors.iter().find(matches) {
                    Arc::clone(slot)
                } else if errors.len() < MAX_BOUND_PER_ROUTE {
                    let slot = Arc::new(Slot::default());
                    instruments.exemplars.register(
                        APP_ERRORS,
                        &attributes,
                        SeriesSlots::Counter(Arc::clone(&slot)),
                    );
                    errors.push((kind, route.cloned(), Arc::clone(&slot)));
                    slot
                } else {
                    return;
                }
            }
        };
        slot.offer(span, 1.0, at);
    }
}

/// Drops any forbidden key from a caller-supplied attribute list (used by the domain-metric helper).
pub fn retain_allowed_attributes(attributes: &mut Vec<KeyValue>) {
    attributes.retain(|kv| !FORBIDDEN_METRIC_ATTRIBUTE_KEYS.contains(&kv.key.as_str()));
}
