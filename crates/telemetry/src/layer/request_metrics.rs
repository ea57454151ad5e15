//! The RED metrics of one request: `http.server.active_requests` while it runs,
//! `http.server.request.duration` and (for a failure) the one `app.errors` increment when it
//! ends. Attribute values come from the bounded [`RequestFacts`] only.

use std::sync::Arc;

use opentelemetry::KeyValue;

use crate::metrics::{HttpServerInstruments, RouteInstruments};
use crate::semconv::{ERROR_TYPE, HTTP_ROUTE};

use super::facts::{Outcome, RequestFacts};

/// Counts the request in `http.server.active_requests` until dropped: also when its future is
/// dropped because the client went away, or a panic unwinds through `call`.
pub(crate) struct ActiveRequest {
    instruments: Arc<HttpServerInstruments>,
    method: &'static str,
}

impl ActiveRequest {
    pub(crate) fn start(instruments: &Arc<HttpServerInstruments>, method: &'static str) -> Self {
        instruments.active(method).add(1);
        Self {
            instruments: Arc::clone(instruments),
            method,
        }
    }
}

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        self.instruments.active(self.method).add(-1);
    }
}

/// Records the duration of a finished request and, when it failed, its `app.errors` increment.
pub(crate) fn record(
    instruments: &HttpServerInstruments,
    routes: &RouteInstruments,
    facts: &RequestFacts,
    outcome: &Outcome,
) {
    let error = outcome.failure.as_ref().map(|f| f.observation.kind);
    routes.record_duration(
        instruments,
        outcome.elapsed.as_secs_f64(),
        facts.method,
        outcome.status.as_u16(),
        error,
        facts.route.as_ref(),
    );
    if let Some(kind) = error {
        let kind = KeyValue::new(ERROR_TYPE, kind.as_str());
        match &facts.route {
            Some(route) => instruments
                .errors
                .add(1, &[kind, KeyValue::new(HTTP_ROUTE, Arc::clone(route))]),
            None => instruments.errors.add(1, &[kind]),
        }
    }
}
