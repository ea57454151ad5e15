//! Log records: `tracing` events and access lines, written once to stdout and, when export is
//! on, sent as OTLP log records carrying the same trace context.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::SystemTime;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::Context as LayerContext;

use crate::context::RequestContext;
use crate::log_format::{Correlation, FieldValue, LogLine, write_line};
use crate::otlp::log_record::LogRecordView;
use crate::pii::{REDACTED, is_secret_key, scrub};
use crate::pipeline::TelemetryInner;

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

fn is_local_only(target: &str) -> bool {
    LOCAL_ONLY_TARGETS.iter().any(|t| target.starts_with(t))
}

thread_local! {
    static LINE_BUFFER: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(1024));
}

/// A `tracing` layer that writes events as log lines of the telemetry instance serving the
/// current request (or of its fallback instance outside requests). See
/// [`crate::Telemetry::log_layer`].
#[derive(Debug)]
pub struct TelemetryLogLayer {
    fallback: Option<Arc<TelemetryInner>>,
}

impl TelemetryLogLayer {
    pub(crate) fn new(fallback: Option<Arc<TelemetryInner>>) -> Self {
        Self { fallback }
    }

    /// A layer with no fallback instance: events outside any request are dropped. Used by
    /// test processes that run several instances side by side.
    pub fn requests_only() -> Self {
        Self { fallback: None }
    }
}

impl<S: Subscriber> tracing_subscriber::Layer<S> for TelemetryLogLayer {
    fn enabled(&self, metadata: &Metadata<'_>, _ctx: LayerContext<'_, S>) -> bool {
        match &self.fallback {
            Some(inner) => inner.log_filter.enabled_metadata(metadata),
            // Each instance applies its own filter in `on_event`.
            None => true,
        }
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        self.fallback
            .as_ref()
            .map(|inner| inner.log_filter.max_level())
    }

    fn on_event(&self, event: &Event<'_>, _ctx: LayerContext<'_, S>) {
        RequestContext::with_current(|request| {
            let inner = match (request, &self.fallback) {
                (Some(request), _) => &request.telemetry,
                (None, Some(fallback)) => fallback,
                (None, None) => return,
            };
            if !inner.log_filter.enabled_metadata(event.metadata()) {
                return;
            }
            let mut visitor = EventFields {
                pii: &inner.pii,
                message: String::new(),
                fields: Vec::new(),
            };
            event.record(&mut visitor);
            emit_event(inner, request, event.metadata(), &visitor);
        });
    }
}

struct EventFields<'a> {
    pii: &'a crate::pii::PiiPolicy,
    message: String,
    fields: Vec<(&'static str, OwnedValue)>,
}

enum OwnedValue {
    Str(String),
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
}

impl EventFields<'_> {
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
        } else if field.name().contains("email") {
            // Only the domain of an email, and only when the PII mode allows it.
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

fn emit_event(
    inner: &TelemetryInner,
    request: Option<&RequestContext>,
    metadata: &'static Metadata<'static>,
    event: &EventFields<'_>,
) {
    let fields: Vec<(&'static str, FieldValue<'_>)> = event
        .fields
        .iter()
        .map(|(k, v)| {
            let value = match v {
                OwnedValue::Str(s) => FieldValue::Str(s),
                OwnedValue::I64(n) => FieldValue::I64(*n),
                OwnedValue::U64(n) => FieldValue::U64(*n),
                OwnedValue::F64(n) => FieldValue::F64(*n),
                OwnedValue::Bool(b) => FieldValue::Bool(*b),
            };
            (*k, value)
        })
        .collect();
    let line = LogLine {
        time: SystemTime::now(),
        level: *metadata.level(),
        target: metadata.target(),
        message: &event.message,
        correlation: request.map(correlation),
        fields: &fields,
        http: None,
    };
    write(inner, &line);
    if !is_local_only(metadata.target()) {
        export(inner, request, &line, None);
    }
}

pub(crate) fn correlation(request: &RequestContext) -> Correlation<'_> {
    Correlation {
        trace_id: &request.trace_id_hex,
        span_id: &request.span_id_hex,
        sampled: request.flags.is_sampled(),
        request_id: &request.request_id,
    }
}

/// Writes one line to the instance's sink, formatting into a per-thread buffer.
pub(crate) fn write(inner: &TelemetryInner, line: &LogLine<'_>) {
    let format = inner.config.log_format;
    let project = inner.config.gcp_project.as_deref();
    LINE_BUFFER.with(|buffer| match buffer.try_borrow_mut() {
        Ok(mut buffer) => {
            buffer.clear();
            write_line(&mut buffer, format, project, line);
            inner.sink.write(&buffer);
        }
        Err(_) => {
            let mut buffer = Vec::with_capacity(512);
            write_line(&mut buffer, format, project, line);
            inner.sink.write(&buffer);
        }
    });
}

/// Sends the same record as an OTLP log record (when export is on).
pub(crate) fn export(
    inner: &TelemetryInner,
    request: Option<&RequestContext>,
    line: &LogLine<'_>,
    event_name: Option<&'static str>,
) {
    let Some(queue) = &inner.log_queue else {
        return;
    };
    let (severity_number, severity_text) = severity(line.level);
    let trace_id = request.map(|r| r.trace_id.to_bytes());
    let span_id = request.map(|r| r.span_id.to_bytes());
    let trace = match (request, &trace_id, &span_id) {
        (Some(r), Some(t), Some(s)) => Some((t, s, r.flags.to_u8())),
        _ => None,
    };
    let request_id = request.map(|r| ("request_id", FieldValue::Shared(&r.request_id)));
    queue.push_log(&LogRecordView {
        time: line.time,
        severity_number,
        severity_text,
        body: line.message,
        target: line.target,
        event_name,
        trace,
        leading: match &request_id {
            Some(id) => std::slice::from_ref(id),
            None => &[],
        },
        fields: line.fields,
    });
}

/// OTLP severity number and text of a level.
fn severity(level: Level) -> (u8, &'static str) {
    match level {
        Level::ERROR => (17, "ERROR"),
        Level::WARN => (13, "WARN"),
        Level::INFO => (9, "INFO"),
        Level::DEBUG => (5, "DEBUG"),
        Level::TRACE => (1, "TRACE"),
    }
}

/// Writes an access line and exports it.
pub(crate) fn emit_access(inner: &TelemetryInner, request: &RequestContext, line: &LogLine<'_>) {
    write(inner, line);
    export(inner, Some(request), line, Some("http.server.request"));
}
