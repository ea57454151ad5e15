//! The fields of a `tracing` event or span as the telemetry records them, with the PII rules
//! applied (secret keys redacted, the application's email fields reduced to their domain, free
//! text scrubbed), and which targets stay out of the OTLP pipeline. Read by the log layer
//! (`logs.rs`) and by the span exporter (`tracing_spans.rs`).

use std::fmt::Write as _;

use tracing::field::{Field, Visit};

use crate::pii::{REDACTED, is_secret_key, scrub};

/// Targets whose events stay on stdout and never enter the OTLP log pipeline: the exporters'
/// own transport would otherwise log about exporting logs about exporting, forever.
const LOCAL_ONLY_TARGETS: [&str; 7] = [
    "hyper",
    "h2",
    "tonic",
    "tower",
    "reqwest",
    "opentelemetry",
    "rustls",
];

pub(crate) fn is_local_only(target: &str) -> bool {
    LOCAL_ONLY_TARGETS.iter().any(|t| target.starts_with(t))
}

/// The fields of an event (or span), with the PII rules applied: secret keys redacted, email
/// fields reduced to their domain (or redacted), free text scrubbed.
pub(crate) struct EventFields<'a> {
    pub(crate) pii: &'a crate::pii::PiiPolicy,
    pub(crate) message: String,
    pub(crate) fields: Vec<(&'static str, OwnedValue)>,
}

pub(crate) enum OwnedValue {
    Str(String),
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
}

impl<'a> EventFields<'a> {
    pub(crate) fn new(pii: &'a crate::pii::PiiPolicy) -> Self {
        Self {
            pii,
            message: String::new(),
            fields: Vec::new(),
        }
    }

    fn push(&mut self, field: &Field, value: OwnedValue) {
        let name = field.name();
        if is_secret_key(name) {
            self.fields
                .push((name, OwnedValue::Str(REDACTED.to_owned())));
        } else {
            self.fields.push((name, value));
        }
    }
}

impl Visit for EventFields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut text = String::new();
        let _ = write!(text, "{value:?}");
        self.record_str(field, &text);
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = scrub(value).into_owned();
        } else if self.pii.is_email_field(field.name()) {
            // A field the application named as an email: only the domain, when the PII mode
            // allows it.
            let shown = match self.pii.email_domain(value) {
                Some(domain) => format!("{REDACTED}@{}", scrub(domain)),
                None => REDACTED.to_owned(),
            };
            self.push(field, OwnedValue::Str(shown));
        } else {
            self.push(field, OwnedValue::Str(scrub(value).into_owned()));
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, OwnedValue::I64(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, OwnedValue::U64(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, OwnedValue::F64(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, OwnedValue::Bool(value));
    }
}
