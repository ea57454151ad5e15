//! `tracing` spans as OpenTelemetry spans: `#[tracing::instrument]`, `info_span!` and
//! `.instrument(span)` on spawned tasks produce INTERNAL child spans of the request's SERVER
//! span (or of their enclosing `tracing` span), exported through the instance's SDK tracer
//! ([`crate::Telemetry::tracer`]) and so through the same bounded, counted span queue as
//! database and outbound spans.
//!
//! The layer returned by [`crate::Telemetry::log_layer`] (also installed by
//! [`crate::Telemetry::install_global_subscriber`] and `testkit::install_test_subscriber`)
//! forwards span callbacks here:
//! - **new span**: its parent is the nearest enclosing `tracing` span that became an
//!   OpenTelemetry span, else the SERVER span of the request current on this thread
//!   ([`RequestContext::current`]). Outside any request the span is a new trace of the layer's
//!   fallback instance, or not exported, per `APP_SPANS_OUTSIDE_REQUESTS` (`trace`, the
//!   default, or `drop`; a layer without a fallback instance drops them). The instance's
//!   `RUST_LOG` filter applies to spans as it does to events, and the targets whose events stay
//!   local (`hyper`, `h2`, `tonic`, …) never become spans.
//! - **fields**, at creation and through `span.record(..)`: attributes under the same PII rules
//!   as log fields (secret keys `[REDACTED]`, email fields reduced to their domain or
//!   redacted, free text scrubbed), string values cut at [`MAX_ATTRIBUTE_LEN`] bytes; a field
//!   recorded twice keeps its last value.
//! - **close** (the last handle dropped): the span ends and is queued for export.
//!
//! The span's state (its OpenTelemetry ids, the request it belongs to and its instance) lives
//! in the `tracing` span's extensions, so it travels with the span: a task spawned with
//! `.instrument(span)` has no request context on its thread, yet its spans keep their parent
//! and its events are written by the right instance with the span's `trace_id`, `span_id` and
//! the request's `request_id`. Several instances in one process never see each other's spans:
//! a span belongs to the instance of the request (or parent span) it was started in.
//!
//! A request in which no `tracing` span is created pays nothing here: the request path is
//! untouched, and an event outside any span costs one look-up of the current span.

use std::fmt::Write as _;
use std::sync::Arc;

use opentelemetry::trace::{Span as _, SpanContext, SpanKind, TraceContextExt as _, Tracer as _};
use opentelemetry::{Context as OtelContext, Key, KeyValue, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::config::SpansOutsideRequests;
use crate::context::RequestContext;
use crate::event_fields::{EventFields, OwnedValue, is_local_only};
use crate::log_emitter::{LogEmitter, RecordTrace};
use crate::log_format::Correlation;
use crate::trace_context::{span_id_hex, trace_id_hex};

/// Longest string value of a span attribute taken from a `tracing` field (longer values are cut
/// at a character boundary).
pub const MAX_ATTRIBUTE_LEN: usize = 1024;

/// `code.file.path` (semantic conventions): the source file of the span's callsite.
const CODE_FILE_PATH: &str = "code.file.path";
/// `code.line.number`: the line of the span's callsite.
const CODE_LINE_NUMBER: &str = "code.line.number";

/// What events and child spans need to know about an exported `tracing` span; shared, so an
/// event inside the span clones one `Arc`.
pub(crate) struct SpanLink {
    instance: Arc<LogEmitter>,
    request: Option<Arc<RequestContext>>,
    context: SpanContext,
    trace_id_hex: [u8; 32],
    span_id_hex: [u8; 16],
}

impl SpanLink {
    /// The instance the span belongs to: the one that writes the log lines of its events.
    pub(crate) fn instance(&self) -> &Arc<LogEmitter> {
        &self.instance
    }

    /// The request the span was started in (directly or through its parent), if any.
    pub(crate) fn request(&self) -> Option<&RequestContext> {
        self.request.as_deref()
    }

    /// The trace correlation of a log line written inside the span. Outside any request the
    /// `request_id` is empty.
    pub(crate) fn correlation(&self) -> Correlation<'_> {
        Correlation {
            trace_id: &self.trace_id_hex,
            span_id: &self.span_id_hex,
            sampled: self.context.is_sampled(),
            request_id: self.request.as_ref().map_or("", |r| r.request_id()),
        }
    }

    /// The span's trace id, span id and trace flags (and the request's id, if any), as an OTLP
    /// log record carries them.
    pub(crate) fn record_trace(&self) -> RecordTrace<'_> {
        RecordTrace {
            trace_id: self.context.trace_id().to_bytes(),
            span_id: self.context.span_id().to_bytes(),
            flags: self.context.trace_flags().to_u8(),
            request_id: self.request.as_ref().map(|r| &r.request_id),
        }
    }
}

/// The extension stored on a `tracing` span that became an OpenTelemetry span.
struct TracingSpan {
    link: Arc<SpanLink>,
    otel: opentelemetry_sdk::trace::Span,
    /// Set on the SDK span when it ends, so that a field recorded twice keeps one value.
    attributes: Vec<KeyValue>,
}

/// A new `tracing` span: becomes an OpenTelemetry span when it belongs to a request (or to an
/// exported span), or outside requests when the fallback instance traces them.
pub(crate) fn on_new_span<S>(
    attrs: &Attributes<'_>,
    id: &Id,
    ctx: &Context<'_, S>,
    fallback: Option<&Arc<LogEmitter>>,
) where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let metadata = attrs.metadata();
    if is_local_only(metadata.target()) {
        return;
    }
    let parent = if let Some(parent) = attrs.parent() {
        link_of(ctx.span(parent))
    } else if attrs.is_contextual() {
        link_of(ctx.lookup_current())
    } else {
        None
    };
    let (instance, request, parent_context) = match parent {
        Some(parent) => (
            Arc::clone(&parent.instance),
            parent.request.clone(),
            Some(parent.context.clone()),
        ),
        None => match RequestContext::current() {
            Some(request) => {
                let parent_context = request.span_context();
                (
                    Arc::clone(&request.logs),
                    Some(request),
                    Some(parent_context),
                )
            }
            None => match fallback {
                Some(fallback)
                    if fallback.spans_outside_requests() == SpansOutsideRequests::Trace =>
                {
                    (Arc::clone(fallback), None, None)
                }
                _ => return,
            },
        },
    };
    if !instance.filter().enabled_metadata(metadata) {
        return;
    }
    // `parent: None` asks for a new trace, also inside a request.
    let parent_context = parent_context.filter(|_| !attrs.is_root());
    let Some(span) = ctx.span(id) else {
        return;
    };

    let mut attributes = Vec::with_capacity(metadata.fields().len() + 2);
    if let Some(file) = metadata.file() {
        attributes.push(KeyValue::new(CODE_FILE_PATH, file));
    }
    if let Some(line) = metadata.line() {
        attributes.push(KeyValue::new(CODE_LINE_NUMBER, i64::from(line)));
    }
    record_fields(&instance, &mut attributes, |visitor| attrs.record(visitor));

    let tracer = instance.tracer();
    let parent_cx = match parent_context {
        Some(parent) => OtelContext::new().with_remote_span_context(parent),
        None => OtelContext::new(),
    };
    let otel = tracer
        .span_builder(metadata.name())
        .with_kind(SpanKind::Internal)
        .start_with_context(tracer, &parent_cx);
    let context = otel.span_context().clone();
    if !context.is_valid() {
        // The instance was shut down: no span, and its events keep the request's ids.
        return;
    }
    let link = Arc::new(SpanLink {
        trace_id_hex: trace_id_hex(context.trace_id()),
        span_id_hex: span_id_hex(context.span_id()),
        context,
        request,
        instance,
    });
    span.extensions_mut().insert(TracingSpan {
        link,
        otel,
        attributes,
    });
}

/// `span.record(..)`: the recorded fields become attributes (the last value of a field wins).
pub(crate) fn on_record<S>(id: &Id, values: &Record<'_>, ctx: &Context<'_, S>)
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let Some(span) = ctx.span(id) else {
        return;
    };
    let instance = span
        .extensions()
        .get::<TracingSpan>()
        .map(|state| Arc::clone(&state.link.instance));
    let Some(instance) = instance else {
        return;
    };
    // Rendered with no lock held: a field's `Debug` may itself log inside this span.
    let mut recorded = Vec::new();
    record_fields(&instance, &mut recorded, |visitor| values.record(visitor));
    if let Some(state) = span.extensions_mut().get_mut::<TracingSpan>() {
        for KeyValue { key, value, .. } in recorded {
            upsert(&mut state.attributes, key, value);
        }
    }
}

/// The span closed: it ends now and goes to the export queue (when sampled and export is on).
pub(crate) fn on_close<S>(id: &Id, ctx: &Context<'_, S>)
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let Some(span) = ctx.span(id) else {
        return;
    };
    let Some(state) = span.extensions_mut().remove::<TracingSpan>() else {
        return;
    };
    let TracingSpan {
        mut otel,
        attributes,
        ..
    } = state;
    otel.set_attributes(attributes);
    otel.end();
}

/// The exported span an event belongs to (its own span or the nearest exported ancestor).
/// Outside any span this is one look-up of the thread's current span.
pub(crate) fn event_span<S>(event: &Event<'_>, ctx: &Context<'_, S>) -> Option<Arc<SpanLink>>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    link_of(ctx.event_span(event))
}

/// The parent for a span started now with [`crate::Telemetry::tracer`] (database and outbound
/// helpers use it): the current `tracing` span when it was exported, else the SERVER span of
/// the current request, else none.
///
/// The `tracing` span is found when the process's subscriber is built on
/// `tracing_subscriber::Registry` (as [`crate::Telemetry::install_global_subscriber`] does).
pub fn current_span_context() -> Option<SpanContext> {
    let current = tracing::Span::current();
    let from_span = current.with_subscriber(|(id, dispatch)| {
        let registry = dispatch.downcast_ref::<tracing_subscriber::Registry>()?;
        let span = registry.span(id)?;
        link_of(Some(span)).map(|link| link.context.clone())
    });
    match from_span.flatten() {
        Some(context) => Some(context),
        None => RequestContext::current().map(|request| request.span_context()),
    }
}

fn link_of<'a, R: LookupSpan<'a>>(
    span: Option<tracing_subscriber::registry::SpanRef<'a, R>>,
) -> Option<Arc<SpanLink>> {
    span?.scope().find_map(|span| {
        span.extensions()
            .get::<TracingSpan>()
            .map(|state| Arc::clone(&state.link))
    })
}

/// Visits fields with the log layer's PII rules and upserts them into `attributes`. Text is
/// cut to [`MAX_ATTRIBUTE_LEN`] before scrubbing (the scan and a `Debug` rendering stay
/// bounded however large the value) and again after it (a redaction marker can be longer than
/// what it replaces).
fn record_fields(
    instance: &LogEmitter,
    attributes: &mut Vec<KeyValue>,
    record: impl FnOnce(&mut dyn Visit),
) {
    let mut visitor = EventFields::new(instance.pii());
    record(&mut Bounded(&mut visitor));
    let EventFields {
        message, fields, ..
    } = visitor;
    let message = (!message.is_empty()).then_some(("message", OwnedValue::Str(message)));
    for (name, value) in fields.into_iter().chain(message) {
        let value = match value {
            OwnedValue::Str(mut s) => {
                let cut = bounded_len(&s, MAX_ATTRIBUTE_LEN);
                s.truncate(cut);
                Value::from(s)
            }
            OwnedValue::I64(n) => Value::I64(n),
            OwnedValue::U64(n) => match i64::try_from(n) {
                Ok(n) => Value::I64(n),
                Err(_) => Value::from(n.to_string()),
            },
            OwnedValue::F64(n) => Value::F64(n),
            OwnedValue::Bool(b) => Value::Bool(b),
        };
        upsert(attributes, Key::from_static_str(name), value);
    }
}

/// Sets `key` to `value`, replacing an earlier value of the same key.
fn upsert(attributes: &mut Vec<KeyValue>, key: Key, value: Value) {
    match attributes.iter_mut().find(|kv| kv.key == key) {
        Some(existing) => existing.value = value,
        None => attributes.push(KeyValue::new(key, value)),
    }
}

/// Hands text to the PII visitor cut to [`MAX_ATTRIBUTE_LEN`]; `Debug` values are rendered
/// only that far.
struct Bounded<'v, 'p>(&'v mut EventFields<'p>);

impl Visit for Bounded<'_, '_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut text = BoundedText(String::new());
        // Stops with an error once the bound is reached; what was written is kept.
        let _ = write!(text, "{value:?}");
        self.0.record_str(field, &text.0);
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0
            .record_str(field, &value[..bounded_len(value, MAX_ATTRIBUTE_LEN)]);
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.record_i64(field, value);
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.record_u64(field, value);
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.record_f64(field, value);
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.record_bool(field, value);
    }
}

/// A `fmt::Write` target that takes at most [`MAX_ATTRIBUTE_LEN`] bytes, then refuses more.
struct BoundedText(String);

impl std::fmt::Write for BoundedText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let room = MAX_ATTRIBUTE_LEN - self.0.len();
        if s.len() <= room {
            self.0.push_str(s);
            Ok(())
        } else {
            self.0.push_str(&s[..bounded_len(s, room)]);
            Err(std::fmt::Error)
        }
    }
}

/// The longest prefix of `s` of at most `max` bytes ending at a character boundary.
fn bounded_len(s: &str, max: usize) -> usize {
    if s.len() <= max {
        return s.len();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_cut_at_a_character_boundary() {
        assert_eq!(bounded_len("short", 10), 5);
        assert_eq!(bounded_len("ééé", 3), 2);
        assert_eq!(bounded_len("abcdef", 4), 4);
    }

    #[test]
    fn debug_text_is_rendered_only_up_to_the_bound() {
        let mut text = BoundedText(String::new());
        let huge = vec![1u8; 100_000];
        assert!(write!(text, "{huge:?}").is_err());
        assert_eq!(text.0.len(), MAX_ATTRIBUTE_LEN);
        let mut small = BoundedText(String::new());
        assert!(write!(small, "{:?}", "é").is_ok());
        assert_eq!(small.0, "\"é\"");
    }
}
