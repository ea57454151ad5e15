//! The access line: exactly one log record per request, on stdout and (when export is on) as
//! an OTLP log record, assembled from the request's facts and its outcome.

use std::borrow::Cow;

use crate::context::RequestContext;
use crate::log_emitter::OtlpRecord;
use crate::log_format::{FieldValue, HttpRequestLog, LogLine};
use crate::semconv::{
    ACCESS_EVENT_NAME, APP_ERROR_CODE, APP_ERROR_MESSAGE, APP_REQUEST_DURATION_MS, CLIENT_ADDRESS,
    ERROR_TYPE, HTTP_REQUEST_METHOD, HTTP_RESPONSE_BODY_SIZE, HTTP_RESPONSE_STATUS_CODE,
    HTTP_ROUTE, URL_PATH, USER_AGENT_ORIGINAL,
};

use super::error_observation::level;
use super::facts::{Outcome, RequestFacts};

/// Target of access lines.
pub(crate) const ACCESS_TARGET: &str = "access";

/// Most fields one access line carries.
const MAX_FIELDS: usize = 14;

/// The fields of an access line, borrowed from the facts and the outcome: under the stdout
/// line's short names, and under the OTLP record's keys (semantic conventions, or `app.*`;
/// docs/telemetry.md lists the mapping).
pub(crate) struct AccessFields<'a> {
    fields: [(&'static str, FieldValue<'a>); MAX_FIELDS],
    otlp: [(&'static str, FieldValue<'a>); MAX_FIELDS],
    count: usize,
    otlp_count: usize,
}

impl<'a> AccessFields<'a> {
    /// The fields of the access line of a request with `facts` and `outcome`.
    pub(crate) fn new(
        facts: &'a RequestFacts,
        outcome: &'a Outcome,
        user: Option<&'a (&'static str, String)>,
    ) -> Self {
        let mut this = Self {
            fields: [("", FieldValue::Bool(false)); MAX_FIELDS],
            otlp: [("", FieldValue::Bool(false)); MAX_FIELDS],
            count: 0,
            otlp_count: 0,
        };
        this.push(
            "method",
            HTTP_REQUEST_METHOD,
            FieldValue::Static(facts.method),
        );
        match &facts.route {
            Some(route) => this.push("route", HTTP_ROUTE, FieldValue::Shared(route)),
            // The stdout line says "no route" with ""; the OTLP record leaves the key out.
            None => this.push_stdout("route", FieldValue::Static("")),
        }
        this.push("path", URL_PATH, FieldValue::Str(facts.path()));
        this.push(
            "status",
            HTTP_RESPONSE_STATUS_CODE,
            FieldValue::U64(u64::from(outcome.status.as_u16())),
        );
        this.push(
            "duration_ms",
            APP_REQUEST_DURATION_MS,
            FieldValue::F64(outcome.elapsed.as_secs_f64() * 1000.0),
        );
        if let Some(size) = outcome.response_size {
            this.push(
                "response_size",
                HTTP_RESPONSE_BODY_SIZE,
                FieldValue::U64(size),
            );
        }
        if let Some(address) = facts.client_address() {
            this.push(CLIENT_ADDRESS, CLIENT_ADDRESS, FieldValue::Str(address));
        }
        if let Some(ua) = facts.user_agent() {
            this.push(
                USER_AGENT_ORIGINAL,
                USER_AGENT_ORIGINAL,
                FieldValue::Str(ua),
            );
        }
        if let Some((key, value)) = user {
            this.push(key, key, FieldValue::Str(value));
        }
        if let Some(failure) = &outcome.failure {
            let observation = &failure.observation;
            let kind = FieldValue::Static(observation.kind.as_str());
            this.push(ERROR_TYPE, ERROR_TYPE, kind);
            let code = match &observation.code {
                Cow::Borrowed(code) => FieldValue::Static(code),
                Cow::Owned(code) => FieldValue::Str(code),
            };
            this.push("error.code", APP_ERROR_CODE, code);
            // `error.message` is deprecated in the conventions: OTLP carries `app.error.message`.
            this.push(
                "error.message",
                APP_ERROR_MESSAGE,
                FieldValue::Str(&failure.detail),
            );
        }
        this
    }

    fn push(&mut self, stdout: &'static str, otlp: &'static str, value: FieldValue<'a>) {
        self.push_stdout(stdout, value);
        self.otlp[self.otlp_count] = (otlp, value);
        self.otlp_count += 1;
    }

    fn push_stdout(&mut self, key: &'static str, value: FieldValue<'a>) {
        self.fields[self.count] = (key, value);
        self.count += 1;
    }

    /// The stdout line's fields, in order.
    pub(crate) fn as_slice(&self) -> &[(&'static str, FieldValue<'a>)] {
        &self.fields[..self.count]
    }

    /// The OTLP record's attributes, in order.
    pub(crate) fn otlp(&self) -> &[(&'static str, FieldValue<'a>)] {
        &self.otlp[..self.otlp_count]
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
            path: facts.path(),
            status: outcome.status.as_u16(),
            response_size: outcome.response_size,
            user_agent: facts.user_agent().unwrap_or(""),
            remote_ip: facts.client_address(),
            latency_secs: outcome.elapsed.as_secs_f64(),
        }),
    };
    context.logs.write(&line);
    context.logs.export(
        &line,
        Some(context.record_trace()),
        OtlpRecord {
            event_name: Some(ACCESS_EVENT_NAME),
            fields: Some(fields.otlp()),
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
        RequestFacts::gather(
            &request,
            &pii,
            &crate::layer::client_address::TrustedProxies::Off,
            &crate::metrics::RouteInstruments::default(),
            std::time::SystemTime::now(),
        )
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
        let otlp: Vec<&str> = fields.otlp().iter().map(|(k, _)| *k).collect();
        assert_eq!(
            otlp,
            [
                "http.request.method",
                "url.path",
                "http.response.status_code",
                "app.request.duration_ms",
                "http.response.body.size",
                "user_agent.original"
            ],
            "semantic-convention or app.* keys; no route matched, so no http.route"
        );
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
        let otlp = fields.otlp();
        let otlp_value = |key: &str| otlp.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
        assert!(otlp_value("error.message").is_none(), "deprecated in OTLP");
        assert!(otlp_value("error.code").is_none());
        assert!(matches!(
            otlp_value("app.error.code"),
            Some(FieldValue::Static("thing.not_found"))
        ));
        assert!(matches!(
            otlp_value("app.error.message"),
            Some(FieldValue::Str(_))
        ));
        assert!(matches!(
            otlp_value("error.type"),
            Some(FieldValue::Static("not_found"))
        ));
        assert!(matches!(
            otlp_value("enduser.id"),
            Some(FieldValue::Str("u1"))
        ));
    }
}
