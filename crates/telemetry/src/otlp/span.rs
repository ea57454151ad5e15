//! The one span encoder: an OTLP `Span` message body from a [`SpanRecord`], which both the
//! middleware's SERVER span and the SDK's finished child spans (`SpanData`) lend themselves as.

use std::time::SystemTime;

use opentelemetry::KeyValue;
use opentelemetry::trace::{Event, Link, SpanContext, SpanId, SpanKind, Status};
use opentelemetry_sdk::trace::SpanData;

use super::protobuf::{Writer, key_value, nanos};

/// One finished span, borrowed.
#[derive(Debug)]
pub(crate) struct SpanRecord<'a> {
    pub(crate) context: &'a SpanContext,
    /// `SpanId::INVALID` for a root.
    pub(crate) parent_span_id: SpanId,
    pub(crate) parent_is_remote: bool,
    pub(crate) name: SpanName<'a>,
    pub(crate) kind: SpanKind,
    pub(crate) start: SystemTime,
    pub(crate) end: SystemTime,
    pub(crate) attributes: &'a [KeyValue],
    pub(crate) dropped_attributes: u32,
    pub(crate) events: &'a [Event],
    pub(crate) dropped_events: u32,
    pub(crate) links: &'a [Link],
    pub(crate) dropped_links: u32,
    pub(crate) status: &'a Status,
}

impl<'a> From<&'a SpanData> for SpanRecord<'a> {
    fn from(span: &'a SpanData) -> Self {
        Self {
            context: &span.span_context,
            parent_span_id: span.parent_span_id,
            parent_is_remote: span.parent_span_is_remote,
            name: SpanName::Whole(&span.name),
            kind: span.span_kind.clone(),
            start: span.start_time,
            end: span.end_time,
            attributes: &span.attributes,
            dropped_attributes: span.dropped_attributes_count,
            events: &span.events.events,
            dropped_events: span.events.dropped_count,
            links: &span.links.links,
            dropped_links: span.links.dropped_count,
            status: &span.status,
        }
    }
}

/// A span's name: whole, or `{method} {route}` written from its two parts.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SpanName<'a> {
    Whole(&'a str),
    MethodRoute(&'a str, &'a str),
}

/// One `Span` message body.
pub(crate) fn encode_span(w: &mut Writer, span: &SpanRecord<'_>) {
    encode_span_with(w, span, |_| {});
}

/// One `Span` message body whose attributes start with those `leading` writes (as field 9),
/// before `span.attributes`.
pub(crate) fn encode_span_with(
    w: &mut Writer,
    span: &SpanRecord<'_>,
    leading: impl FnOnce(&mut Writer),
) {
    let context = span.context;
    w.bytes(1, &context.trace_id().to_bytes());
    w.bytes(2, &context.span_id().to_bytes());
    w.string(
        3,
        &crate::trace_context::tracestate_header(context.trace_state()),
    );
    if span.parent_span_id != SpanId::INVALID {
        w.bytes(4, &span.parent_span_id.to_bytes());
    }
    match span.name {
        SpanName::Whole(name) => w.string(5, name),
        SpanName::MethodRoute(method, route) => {
            w.message_head(5, method.len() + 1 + route.len());
            w.raw(method.as_bytes());
            w.raw(b" ");
            w.raw(route.as_bytes());
        }
    }
    let kind = match span.kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    };
    w.uint(6, kind);
    w.fixed64(7, nanos(span.start));
    w.fixed64(8, nanos(span.end));
    leading(w);
    for kv in span.attributes {
        key_value(w, 9, kv.key.as_str(), &kv.value);
    }
    w.uint(10, u64::from(span.dropped_attributes));
    for event in span.events {
        w.message(11, |w| {
            w.fixed64(1, nanos(event.timestamp));
            w.string(2, &event.name);
            for kv in &event.attributes {
                key_value(w, 3, kv.key.as_str(), &kv.value);
            }
            w.uint(4, u64::from(event.dropped_attributes_count));
        });
    }
    w.uint(12, u64::from(span.dropped_events));
    for link in span.links {
        w.message(13, |w| {
            let linked = &link.span_context;
            w.bytes(1, &linked.trace_id().to_bytes());
            w.bytes(2, &linked.span_id().to_bytes());
            w.string(
                3,
                &crate::trace_context::tracestate_header(linked.trace_state()),
            );
            for kv in &link.attributes {
                key_value(w, 4, kv.key.as_str(), &kv.value);
            }
            w.uint(5, u64::from(link.dropped_attributes_count));
            w.fixed32(
                6,
                span_flags(linked.is_remote(), linked.trace_flags().to_u8()),
            );
        });
    }
    w.uint(14, u64::from(span.dropped_links));
    w.message(15, |w| match span.status {
        Status::Unset => {}
        Status::Ok => w.uint(3, 1),
        Status::Error { description } => {
            w.string(2, description);
            w.uint(3, 2);
        }
    });
    w.fixed32(
        16,
        span_flags(span.parent_is_remote, context.trace_flags().to_u8()),
    );
}

/// W3C trace flags plus OTLP's "is remote is known" (0x100) and "is remote" (0x200) bits.
fn span_flags(remote: bool, trace_flags: u8) -> u32 {
    u32::from(trace_flags) | 0x100 | if remote { 0x200 } else { 0 }
}
