//! The RED metrics of one request: `http.server.active_requests` while it runs,
//! `http.server.request.duration` and (for a failure) the one `app.errors` increment when it
//! ends. Attribute values come from the bounded [`RequestFacts`] only.

use std::sync::Arc;

use crate::exemplars::SpanRef;
use crate::metrics::{HttpServerInstruments, RouteInstruments};

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
/// `exemplar` is the request's SERVER span when it is sampled and exported: both measurements
/// are then offered as exemplars ([`crate::exemplars`]).
pub(crate) fn record(
    instruments: &HttpServerInstruments,
    routes: &RouteInstruments,
    facts: &RequestFacts,
    outcome: &Outcome,
    exemplar: Option<SpanRef>,
) {
    let error = outcome.failure.as_ref().map(|f| f.observation.kind);
    let exemplar = exemplar.map(|span| (span, outcome.end));
    routes.record_duration(
        instruments,
        outcome.elapsed.as_secs_f64(),
        facts.method,
        outcome.status.as_u16(),
        error,
        facts.route.as_ref(),
        exemplar,
    );
    if let Some(kind) = error {
        routes.record_error(instruments, kind, facts.route.as_ref(), exemplar);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ErrorKind, ErrorObservation};
    use crate::layer::facts::Failure;
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry_sdk::metrics::{ManualReader, SdkMeterProvider};
    use std::time::{Duration, SystemTime};

    fn setup() -> (
        Arc<ManualReader>,
        Arc<HttpServerInstruments>,
        SdkMeterProvider,
    ) {
        let reader = Arc::new(ManualReader::builder().build());
        let provider = SdkMeterProvider::builder()
            .with_reader(crate::prometheus::SharedReader(Arc::clone(&reader)))
            .build();
        let instruments = Arc::new(HttpServerInstruments::new(&provider.meter("test")));
        (reader, instruments, provider)
    }

    fn facts() -> RequestFacts {
        let pii = crate::pii::PiiPolicy::new(crate::config::PiiMode::Off, None);
        let request = http::Request::get("/nothing/here")
            .body(())
            .unwrap_or_default();
        RequestFacts::gather(
            &request,
            &pii,
            &crate::layer::client_address::TrustedProxies::Off,
            &RouteInstruments::default(),
            std::time::SystemTime::now(),
        )
    }

    fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
        text.lines().find(|l| l.starts_with(prefix))
    }

    #[test]
    fn a_failed_request_records_its_duration_and_one_error() {
        let (reader, instruments, _provider) = setup();
        let facts = facts();
        let outcome = Outcome {
            status: http::StatusCode::NOT_FOUND,
            response_size: None,
            elapsed: Duration::from_millis(30),
            end: SystemTime::now(),
            failure: Some(Failure::new(ErrorObservation::new(
                ErrorKind::NotFound,
                "route.not_found",
                "none",
            ))),
        };
        record(
            &instruments,
            &RouteInstruments::default(),
            &facts,
            &outcome,
            None,
        );
        let text = crate::prometheus::render(&reader);
        let errors = line(&text, "app_errors_total{").unwrap_or_default();
        assert!(errors.contains("error_type=\"not_found\""), "{text}");
        assert!(!errors.contains("http_route"), "no route matched: {errors}");
        assert!(errors.ends_with(" 1"), "{errors}");
        let count = line(&text, "http_server_request_duration_seconds_count{").unwrap_or_default();
        assert!(
            count.contains("http_response_status_code=\"404\""),
            "{text}"
        );
        assert!(count.contains("http_request_method=\"GET\""), "{text}");
        assert!(count.ends_with(" 1"), "{count}");
    }

    #[test]
    fn active_requests_come_back_down_when_the_guard_drops() {
        let (reader, instruments, _provider) = setup();
        let active = ActiveRequest::start(&instruments, "GET");
        let during = crate::prometheus::render(&reader);
        assert!(
            line(&during, "http_server_active_requests{").is_some_and(|l| l.ends_with(" 1")),
            "{during}"
        );
        drop(active);
        let after = crate::prometheus::render(&reader);
        assert!(
            line(&after, "http_server_active_requests{").is_some_and(|l| l.ends_with(" 0")),
            "{after}"
        );
    }
}
