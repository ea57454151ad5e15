//! The access line: exactly one log record per request, on stdout and (when export is on) as
//! an OTLP log record, assembled from the request's facts and its outcome.

use std::borrow::Cow;

use crate::context::RequestContext;
use crate::log_emitter::OtlpRecord;
use crate::log_format::{FieldValue, HttpRequestLog, LogLine};
use crate::semconv::{CLIENT_ADDRESS, ERROR_TYPE, USER_AGENT_ORIGINAL};

use super::error_observation::level;
use super::facts::{Outcome, RequestFacts};

/// Target of access lines.
pub(crate) const ACCESS_TARGET: &str = "access";

/// Most fields one access line carries.
const MAX_FIELDS: usize = 14;

/// The fields of an access line, borrowed from the facts and the outcome.
pub(crate) struct AccessFields<'a> {
    fields: [(&'static str, FieldValue<'a>); MAX_FIELDS],
    count: usize,
}

impl<'a> AccessFields<'a> {
    /// The stdout line's fields (short names; docs/telemetry.md maps them to the OTLP keys).
    pub(crate) fn new(
        facts: &'a RequestFacts,
        outcome: &'a Outcome,
        user: Option<&'a (&'static str, String)>,
    ) -> Self {
        let mut this = Self {
            fields: [("", FieldValue::Bool(false)); MAX_FIELDS],
            count: 0,
        };
        this.push("method", FieldValue::Static(facts.method));
        match &facts.route {
            Some(route) => this.push("route", FieldValue::Shared(route)),
            None => this.push("route", FieldValue::Static("")),
        }
        this.push("path", FieldValue::Shared(&facts.path));
        this.push(
            "status",
            FieldValue::U64(u64::from(outcome.status.as_u16())),
        );
        this.push(
            "duration_ms",
            FieldValue::F64(outcome.elapsed.as_secs_f64() * 1000.0),
        );
        if let Some(size) = outcome.response_size {
            this.push("response_size", FieldValue::U64(size));
        }
        if let Some(address) = &facts.client_address {
            this.push(CLIENT_ADDRESS, FieldValue::Shared(address));
        }
        if let Some(ua) = &facts.user_agent {
            this.push(USER_AGENT_ORIGINAL, FieldValue::Shared(ua));
        }
        if let Some((key, value)) = user {
            this.push(key, FieldValue::Str(value));
        }
        if let Some(failure) = &outcome.failure {
            let observation = &failure.observation;
            this.push(ERROR_TYPE, FieldValue::Static(observation.kind.as_str()));
            this.push(
                "error.code",
                match &observation.code {
                    Cow::Borrowed(code) => FieldValue::Static(code),
                    Cow::Owned(code) => FieldValue::Str(code),
                },
            );
            this.push("error.message", FieldValue::Str(&failure.detail));
        }
        this
    }

    fn push(&mut self, key: &'static str, value: FieldValue<'a>) {
        self.fields[self.count] = (key, value);
        self.count += 1;
    }

    /// The fields, in order.
    pub(crate) fn as_slice(&self) -> &[(&'static str, FieldValue<'a>)] {
        &self.fields[..self.count]
    }
}

/// The access line's message: `{method} {route or path} {status}`.
pub(crate) fn message(facts: &RequestFacts, outcome: &Outcome) -> String {
    let parts = [
        facts.method,
        " ",
        facts.route_or_path(),
        " ",
        outcome.status.as_str(),
    ];
    let mut out = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for part in parts {
        out.push_str(part);
    }
    out
}

/// Writes the request's one access line (stdout and OTLP).
pub(crate) fn write(context: &RequestContext, facts: &RequestFacts, outcome: &Outcome) {
    let user = context.user.get();
    let fields = AccessFields::new(facts, outcome, user);
    let message = message(facts, outcome);
    let line = LogLine {
        time: outcome.end,
        level: level(outcome.status),
        target: ACCESS_TARGET,
        message: &message,
        correlation: Some(context.correlation()),
        fields: fields.as_slice(),
        http: Some(HttpRequestLog {
            method: facts.method,
            path: &facts.path,
            status: outcome.status.as_u16(),
            response_size: outcome.response_size,
            user_agent: facts.user_agent.as_deref().unwrap_or(""),
            remote_ip: facts.client_address.as_deref(),
            latency_secs: outcome.elapsed.as_secs_f64(),
        }),
    };
    context.logs.write(&line);
    context.logs.export(
        &line,
        Some(context.record_trace()),
        OtlpRecord {
            event_name: Some("http.server.request"),
            fields: None,
        },
    );
}

/// Whether a request gets no access line: a success on an excluded route.
pub(crate) fn excluded(exclude: &[String], facts: &RequestFacts, outcome: &Outcome) -> bool {
    outcome.failure.is_none()
        && facts
            .route
            .as_deref()
            .is_some_and(|r| exclude.iter().any(|e| e == r))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ErrorKind, ErrorObservation};
    use crate::layer::facts::Failure;
    use std::time::{Duration, SystemTime};

    fn facts() -> RequestFacts {
        let pii = crate::pii::PiiPolicy::new(crate::config::PiiMode::Off, None);
        let request = http::Request::get("/v1/nothing")
            .header("user-agent", "curl/8")
            .body(())
            .unwrap_or_default();
        RequestFacts::gather(&request, &pii, &crate::metrics::RouteInstruments::default())
    }

    fn outcome(status: u16, failure: Option<Failure>) -> Outcome {
        Outcome {
            status: http::StatusCode::from_u16(status).unwrap_or_default(),
            response_size: Some(12),
            elapsed: Duration::from_micros(1500),
            end: SystemTime::now(),
            failure,
        }
    }

    fn keys(fields: &AccessFields<'_>) -> Vec<&'static str> {
        fields.as_slice().iter().map(|(k, _)| *k).collect()
    }

    #[test]
    fn a_success_has_the_request_fields_and_no_error_fields() {
        let facts = facts();
        let outcome = outcome(200, None);
        let fields = AccessFields::new(&facts, &outcome, None);
        assert_eq!(
            keys(&fields),
            [
                "method",
                "route",
                "path",
                "status",
                "duration_ms",
                "response_size",
                "user_agent.original"
            ]
        );
        assert_eq!(message(&facts, &outcome), "GET /v1/nothing 200");
        assert!(
            !excluded(&["/healthz".into()], &facts, &outcome),
            "no route matched"
        );
    }

    #[test]
    fn a_failure_adds_its_kind_code_and_scrubbed_detail() {
        let facts = facts();
        let observation = ErrorObservation::new(
            ErrorKind::NotFound,
            "thing.not_found",
            "ann@example.com asked",
        );
        let outcome = outcome(404, Some(Failure::new(observation)));
        let user = ("enduser.id", "u1".to_owned());
        let fields = AccessFields::new(&facts, &outcome, Some(&user));
        let all = fields.as_slice();
        let value = |key: &str| all.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
        assert!(matches!(
            value("error.type"),
            Some(FieldValue::Static("not_found"))
        ));
        assert!(matches!(
            value("error.code"),
            Some(FieldValue::Static("thing.not_found"))
        ));
        assert!(matches!(value("enduser.id"), Some(FieldValue::Str("u1"))));
        match value("error.message") {
            Some(FieldValue::Str(detail)) => assert!(!detail.contains("ann@example.com")),
            other => panic!("{other:?}"),
        }
    }
}
