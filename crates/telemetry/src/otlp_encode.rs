//! OTLP protobuf encoding of spans and log records, straight from the SDK's data into wire
//! bytes.
//!
//! The stock path converts every batch into `opentelemetry-proto` structs (a `String` per
//! attribute key and value) and lets prost encode them, recomputing nested lengths at every
//! level; measured here, that was most of the per-request export cost. This encoder writes each
//! message once into one buffer and back-patches its length. The receiver in
//! [`crate::testkit`] decodes with the official generated types, so every contract test checks
//! this encoding.

use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanKind, Status};
use opentelemetry::{Array, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SpanData;

const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LEN: u32 = 2;
const FIXED32: u32 = 5;

/// A protobuf writer appending to one buffer.
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            buf: Vec::with_capacity(capacity),
        }
    }

    pub(crate) fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    pub(crate) fn tag(&mut self, field: u32, wire: u32) {
        self.varint(u64::from(field << 3 | wire));
    }

    pub(crate) fn bytes(&mut self, field: u32, value: &[u8]) {
        self.tag(field, LEN);
        self.varint(value.len() as u64);
        self.buf.extend_from_slice(value);
    }

    /// A string field; proto3 omits empty strings.
    pub(crate) fn string(&mut self, field: u32, value: &str) {
        if !value.is_empty() {
            self.bytes(field, value.as_bytes());
        }
    }

    pub(crate) fn uint(&mut self, field: u32, value: u64) {
        if value != 0 {
            self.tag(field, VARINT);
            self.varint(value);
        }
    }

    pub(crate) fn fixed64(&mut self, field: u32, value: u64) {
        if value != 0 {
            self.tag(field, FIXED64);
            self.buf.extend_from_slice(&value.to_le_bytes());
        }
    }

    pub(crate) fn fixed32(&mut self, field: u32, value: u32) {
        if value != 0 {
            self.tag(field, FIXED32);
            self.buf.extend_from_slice(&value.to_le_bytes());
        }
    }

    /// Bytes that are already encoded fields.
    pub(crate) fn raw(&mut self, encoded: &[u8]) {
        self.buf.extend_from_slice(encoded);
    }

    /// A varint field written even when zero (inside a oneof, zero is a value).
    pub(crate) fn int_field(&mut self, field: u32, value: u64) {
        self.tag(field, VARINT);
        self.varint(value);
    }

    /// A double field written even when zero.
    pub(crate) fn double_field(&mut self, field: u32, value: f64) {
        self.tag(field, FIXED64);
        self.buf.extend_from_slice(&value.to_le_bytes());
    }

    /// A nested message: writes the body with `body`, then its length in front of it.
    pub(crate) fn message(&mut self, field: u32, body: impl FnOnce(&mut Self)) {
        self.tag(field, LEN);
        let len_at = self.buf.len();
        self.buf.push(0);
        let start = self.buf.len();
        body(self);
        let len = self.buf.len() - start;
        if len < 0x80 {
            self.buf[len_at] = len as u8;
            return;
        }
        // Longer than one varint byte: encode the length and shift the body to make room.
        let mut prefix = [0u8; 10];
        let mut n = 0;
        let mut v = len as u64;
        while v >= 0x80 {
            prefix[n] = (v as u8) | 0x80;
            v >>= 7;
            n += 1;
        }
        prefix[n] = v as u8;
        n += 1;
        self.buf
            .splice(len_at..len_at + 1, prefix[..n].iter().copied());
    }
}

pub(crate) fn nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

pub(crate) fn key_value(w: &mut Writer, field: u32, key: &str, value: &Value) {
    w.message(field, |w| {
        w.string(1, key);
        w.message(2, |w| any_value(w, value));
    });
}

fn any_value(w: &mut Writer, value: &Value) {
    match value {
        Value::String(s) => w.bytes(1, s.as_str().as_bytes()),
        Value::Bool(b) => {
            w.tag(2, VARINT);
            w.varint(u64::from(*b));
        }
        Value::I64(i) => {
            w.tag(3, VARINT);
            w.varint(*i as u64);
        }
        Value::F64(f) => {
            w.tag(4, FIXED64);
            w.buf.extend_from_slice(&f.to_le_bytes());
        }
        Value::Array(array) => w.message(5, |w| match array {
            Array::Bool(values) => values
                .iter()
                .for_each(|v| w.message(1, |w| any_value(w, &Value::Bool(*v)))),
            Array::I64(values) => values
                .iter()
                .for_each(|v| w.message(1, |w| any_value(w, &Value::I64(*v)))),
            Array::F64(values) => values
                .iter()
                .for_each(|v| w.message(1, |w| any_value(w, &Value::F64(*v)))),
            Array::String(values) => values
                .iter()
                .for_each(|v| w.message(1, |w| w.bytes(1, v.as_str().as_bytes()))),
            _ => {}
        }),
        _ => w.bytes(1, value.as_str().as_bytes()),
    }
}

/// The encoded `Resource` message body (attributes), computed once per exporter.
pub(crate) fn resource_body(resource: &Resource) -> Vec<u8> {
    let mut w = Writer::with_capacity(512);
    for (key, value) in resource.iter() {
        key_value(&mut w, 1, key.as_str(), value);
    }
    w.buf
}

#[cfg(test)]
fn scope(
    w: &mut Writer,
    field: u32,
    scope: &opentelemetry::InstrumentationScope,
    name_override: Option<&str>,
) {
    w.message(field, |w| {
        w.string(1, name_override.unwrap_or(scope.name()));
        w.string(2, scope.version().unwrap_or(""));
        for kv in scope.attributes() {
            key_value(w, 3, kv.key.as_str(), &kv.value);
        }
    });
}

#[cfg(test)]
fn same_scope(
    a: &opentelemetry::InstrumentationScope,
    b: &opentelemetry::InstrumentationScope,
) -> bool {
    a.name() == b.name() && a.version() == b.version() && a.schema_url() == b.schema_url()
}

/// `ExportTraceServiceRequest` for `spans`, grouped by instrumentation scope.
#[cfg(test)]
pub(crate) fn encode_spans(resource: &[u8], spans: &[SpanData], out: &mut Writer) {
    out.message(1, |w| {
        w.bytes(1, resource);
        let mut done = vec![false; spans.len()];
        for i in 0..spans.len() {
            if done[i] {
                continue;
            }
            let current = &spans[i].instrumentation_scope;
            w.message(2, |w| {
                scope(w, 1, current, None);
                for (j, span) in spans.iter().enumerate().skip(i) {
                    if !done[j] && same_scope(&span.instrumentation_scope, current) {
                        done[j] = true;
                        w.message(2, |w| encode_span(w, span));
                    }
                }
                w.string(3, current.schema_url().unwrap_or(""));
            });
        }
    });
}

/// One `Span` message body.
pub(crate) fn encode_span(w: &mut Writer, span: &SpanData) {
    let context = &span.span_context;
    w.bytes(1, &context.trace_id().to_bytes());
    w.bytes(2, &context.span_id().to_bytes());
    w.string(
        3,
        &crate::trace_context::tracestate_header(context.trace_state()),
    );
    if span.parent_span_id != opentelemetry::trace::SpanId::INVALID {
        w.bytes(4, &span.parent_span_id.to_bytes());
    }
    w.string(5, &span.name);
    let kind = match span.span_kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    };
    w.uint(6, kind);
    w.fixed64(7, nanos(span.start_time));
    w.fixed64(8, nanos(span.end_time));
    for kv in &span.attributes {
        key_value(w, 9, kv.key.as_str(), &kv.value);
    }
    w.uint(10, u64::from(span.dropped_attributes_count));
    for event in span.events.iter() {
        w.message(11, |w| {
            w.fixed64(1, nanos(event.timestamp));
            w.string(2, &event.name);
            for kv in &event.attributes {
                key_value(w, 3, kv.key.as_str(), &kv.value);
            }
            w.uint(4, u64::from(event.dropped_attributes_count));
        });
    }
    w.uint(12, u64::from(span.events.dropped_count));
    for link in span.links.iter() {
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
    w.uint(14, u64::from(span.links.dropped_count));
    w.message(15, |w| match &span.status {
        Status::Unset => {}
        Status::Ok => w.uint(3, 1),
        Status::Error { description } => {
            w.string(2, description);
            w.uint(3, 2);
        }
    });
    w.fixed32(
        16,
        span_flags(span.parent_span_is_remote, context.trace_flags().to_u8()),
    );
}

/// W3C trace flags plus OTLP's "is remote is known" (0x100) and "is remote" (0x200) bits.
pub(crate) fn span_flags(remote: bool, trace_flags: u8) -> u32 {
    u32::from(trace_flags) | 0x100 | if remote { 0x200 } else { 0 }
}

#[cfg(all(test, feature = "testkit"))]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use opentelemetry::KeyValue;
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value;
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
    use prost::Message;
    use std::time::Duration;

    fn span(attributes: Vec<KeyValue>) -> SpanData {
        let mut events = SpanEvents::default();
        events.events.push(opentelemetry::trace::Event::new(
            "exception",
            UNIX_EPOCH + Duration::from_nanos(1_500),
            vec![KeyValue::new("exception.message", "x".repeat(200))],
            0,
        ));
        let mut links = SpanLinks::default();
        links
            .links
            .push(opentelemetry::trace::Link::with_context(SpanContext::new(
                TraceId::from(7u128),
                SpanId::from(9u64),
                TraceFlags::SAMPLED,
                true,
                TraceState::default(),
            )));
        SpanData {
            span_context: SpanContext::new(
                TraceId::from(0x0af7651916cd43dd8448eb211c80319cu128),
                SpanId::from(0xb7ad6b7169203331u64),
                TraceFlags::SAMPLED,
                false,
                "congo=t61rcWkgMzE".parse().unwrap(),
            ),
            parent_span_id: SpanId::from(0x00f067aa0ba902b7u64),
            parent_span_is_remote: true,
            span_kind: SpanKind::Server,
            name: "GET /v1/products/{id}".into(),
            start_time: UNIX_EPOCH + Duration::from_nanos(1_000),
            end_time: UNIX_EPOCH + Duration::from_nanos(2_000),
            attributes,
            dropped_attributes_count: 0,
            events,
            links,
            status: Status::error("handler.panic"),
            instrumentation_scope: opentelemetry::InstrumentationScope::builder("telemetry")
                .with_version("1.2.3")
                .build(),
        }
    }

    #[test]
    fn spans_decode_with_the_official_types_field_for_field() {
        let long = "p".repeat(300); // nested lengths above one varint byte
        let spans = vec![span(vec![
            KeyValue::new("url.path", long.clone()),
            KeyValue::new("http.response.status_code", -42i64),
            KeyValue::new("ratio", 0.25),
            KeyValue::new("flag", true),
            KeyValue::new("list", Value::Array(vec![1i64, 2, 3].into())),
        ])];
        let resource = Resource::builder_empty()
            .with_attribute(KeyValue::new("service.name", "shop"))
            .build();
        let mut w = Writer::with_capacity(0);
        encode_spans(&resource_body(&resource), &spans, &mut w);
        let decoded = ExportTraceServiceRequest::decode(w.buf.as_slice()).unwrap();

        let rs = &decoded.resource_spans[0];
        assert_eq!(
            rs.resource.as_ref().unwrap().attributes[0].key,
            "service.name"
        );
        let ss = &rs.scope_spans[0];
        assert_eq!(ss.scope.as_ref().unwrap().name, "telemetry");
        assert_eq!(ss.scope.as_ref().unwrap().version, "1.2.3");
        let s = &ss.spans[0];
        assert_eq!(hex(&s.trace_id), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(hex(&s.span_id), "b7ad6b7169203331");
        assert_eq!(hex(&s.parent_span_id), "00f067aa0ba902b7");
        assert_eq!(s.trace_state, "congo=t61rcWkgMzE");
        assert_eq!(s.flags, 0x301);
        assert_eq!(s.name, "GET /v1/products/{id}");
        assert_eq!(s.kind, 2);
        assert_eq!(
            (s.start_time_unix_nano, s.end_time_unix_nano),
            (1_000, 2_000)
        );
        let value = |i: usize| {
            s.attributes[i]
                .value
                .as_ref()
                .unwrap()
                .value
                .clone()
                .unwrap()
        };
        assert_eq!(value(0), any_value::Value::StringValue(long));
        assert_eq!(value(1), any_value::Value::IntValue(-42));
        assert_eq!(value(2), any_value::Value::DoubleValue(0.25));
        assert_eq!(value(3), any_value::Value::BoolValue(true));
        match value(4) {
            any_value::Value::ArrayValue(array) => assert_eq!(array.values.len(), 3),
            other => panic!("{other:?}"),
        }
        assert_eq!(s.events[0].name, "exception");
        assert_eq!(s.events[0].time_unix_nano, 1_500);
        assert_eq!(s.links[0].flags, 0x301);
        assert_eq!(hex(&s.links[0].span_id), "0000000000000009");
        let status = s.status.as_ref().unwrap();
        assert_eq!((status.code, status.message.as_str()), (2, "handler.panic"));
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}
