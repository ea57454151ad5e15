//! Log records: `tracing` events and access lines, written once to stdout and, when export is
//! on, sent as OTLP log records carrying the same trace context.

use std::sync::Arc;
use std::time::SystemTime;

use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::Context as LayerContext;
use tracing_subscriber::registry::LookupSpan;

use crate::context::RequestContext;
use crate::event_fields::{EventFields, OwnedValue, is_local_only};
use crate::log_emitter::{LogEmitter, OtlpRecord};
use crate::log_format::{FieldValue, LogLine};
use crate::semconv::EVENT_NAME_FIELD;
use crate::tracing_spans::{self, SpanLink};

/// A `tracing` layer that writes events as log lines of the telemetry instance serving the
/// current request (or of its fallback instance outside requests), and exports `tracing` spans
/// as OpenTelemetry spans ([`crate::tracing_spans`]). See [`crate::Telemetry::log_layer`].
#[derive(Debug)]
pub struct TelemetryLogLayer {
    fallback: Option<Arc<LogEmitter>>,
}

impl TelemetryLogLayer {
    pub(crate) fn new(fallback: Option<Arc<LogEmitter>>) -> Self {
        Self { fallback }
    }

    /// A layer with no fallback instance: events outside any request are dropped. Used by
    /// test processes that run several instances side by side.
    pub fn requests_only() -> Self {
        Self { fallback: None }
    }
}

impl<S> tracing_subscriber::Layer<S> for TelemetryLogLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn enabled(&self, metadata: &Metadata<'_>, _ctx: LayerContext<'_, S>) -> bool {
        match &self.fallback {
            Some(logs) => logs.filter().enabled_metadata(metadata),
            // Each instance applies its own filter in `on_event`.
            None => true,
        }
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        self.fallback.as_ref().map(|logs| logs.filter().max_level())
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: LayerContext<'_, S>) {
        tracing_spans::on_new_span(attrs, id, &ctx, self.fallback.as_ref());
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: LayerContext<'_, S>) {
        tracing_spans::on_record(id, values, &ctx);
    }

    fn on_close(&self, id: Id, ctx: LayerContext<'_, S>) {
        tracing_spans::on_close(&id, &ctx);
    }

    fn on_event(&self, event: &Event<'_>, ctx: LayerContext<'_, S>) {
        // Inside an exported `tracing` span the span decides (also on a spawned task, where no
        // request context is current): its instance, its request, its ids.
        let span = tracing_spans::event_span(event, &ctx);
        RequestContext::with_current(|current| {
            let request = match &span {
                Some(span) => span.request(),
                None => current,
            };
            let logs = match (&span, request, &self.fallback) {
                (Some(span), _, _) => span.instance(),
                (None, Some(request), _) => &request.logs,
                (None, None, Some(fallback)) => fallback,
                (None, None, None) => return,
            };
            if !logs.filter().enabled_metadata(event.metadata()) {
                return;
            }
            let mut visitor = EventFields::new(logs.pii());
            event.record(&mut visitor);
            emit_event(logs, request, span.as_deref(), event.metadata(), &visitor);
        });
    }
}

fn emit_event(
    logs: &LogEmitter,
    request: Option<&RequestContext>,
    span: Option<&SpanLink>,
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
        correlation: match span {
            Some(span) => Some(span.correlation()),
            None => request.map(RequestContext::correlation),
        },
        fields: &fields,
        http: None,
    };
    logs.write(&line);
    if !is_local_only(metadata.target()) {
        // A field `event.name` names the event: in OTLP it is the LogRecord's `event_name`,
        // not an attribute (deprecated there); the stdout line keeps it as a field.
        let event_name = fields.iter().find_map(|(key, value)| match (key, value) {
            (&EVENT_NAME_FIELD, FieldValue::Str(name)) => Some(*name),
            _ => None,
        });
        let attributes: Vec<(&'static str, FieldValue<'_>)>;
        let otlp = match event_name {
            Some(_) => {
                attributes = fields
                    .iter()
                    .filter(|(key, _)| *key != EVENT_NAME_FIELD)
                    .copied()
                    .collect();
                OtlpRecord {
                    event_name,
                    fields: Some(&attributes),
                }
            }
            None => OtlpRecord::default(),
        };
        let trace = match span {
            Some(span) => Some(span.record_trace()),
            None => request.map(RequestContext::record_trace),
        };
        logs.export(&line, trace, otlp);
    }
}
