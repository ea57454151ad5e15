//! OTLP export requests (the `opentelemetry-proto` types) turned into the console's JSON
//! records: spans, requests (SERVER spans), log records. Nothing is re-derived from the
//! application: every field comes from an exported attribute or record field.

use std::sync::Arc;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;
use serde::Serialize;
use serde_json::{Map, Value};

/// Attributes as a JSON object.
pub(crate) type Attributes = Map<String, Value>;

/// One span, as the API serves it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SpanView {
    pub(crate) trace_id: String,
    pub(crate) span_id: String,
    pub(crate) parent_span_id: Option<String>,
    pub(crate) name: String,
    pub(crate) kind: &'static str,
    pub(crate) service: Arc<str>,
    pub(crate) scope: Arc<str>,
    pub(crate) start_unix_nano: String,
    pub(crate) end_unix_nano: String,
    pub(crate) duration_ms: f64,
    pub(crate) status: StatusView,
    pub(crate) attributes: Attributes,
    pub(crate) events: Vec<EventView>,
    pub(crate) links: Vec<LinkView>,
    pub(crate) resource: Arc<Attributes>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct StatusView {
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct EventView {
    pub(crate) name: String,
    pub(crate) time_unix_nano: String,
    pub(crate) attributes: Attributes,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct LinkView {
    pub(crate) trace_id: String,
    pub(crate) span_id: String,
    pub(crate) attributes: Attributes,
}

/// A request: the summary of one SERVER span.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RequestView {
    pub(crate) trace_id: String,
    pub(crate) span_id: String,
    pub(crate) service: Arc<str>,
    pub(crate) method: Option<String>,
    pub(crate) route: Option<String>,
    pub(crate) status: Option<i64>,
    pub(crate) duration_ms: f64,
    pub(crate) error_type: Option<String>,
    pub(crate) request_id: Option<String>,
    pub(crate) start_unix_nano: String,
}

/// One log record, as the API serves it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct LogView {
    pub(crate) time_unix_nano: String,
    pub(crate) severity_text: String,
    pub(crate) severity_number: i32,
    pub(crate) target: Option<String>,
    pub(crate) event_name: Option<String>,
    pub(crate) body: String,
    pub(crate) attributes: Attributes,
    pub(crate) trace_id: Option<String>,
    pub(crate) span_id: Option<String>,
    pub(crate) service: Arc<str>,
}

/// Lowercase hex of an id (empty for an empty id).
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

fn non_zero_hex(bytes: &[u8]) -> Option<String> {
    (!bytes.is_empty() && bytes.iter().any(|b| *b != 0)).then(|| hex(bytes))
}

/// An OTLP value as JSON (bytes as lowercase hex).
pub(crate) fn any_value_json(value: Option<AnyValue>) -> Value {
    match value.and_then(|v| v.value) {
        None => Value::Null,
        Some(any_value::Value::StringValue(s)) => Value::String(s),
        Some(any_value::Value::BoolValue(b)) => Value::Bool(b),
        Some(any_value::Value::IntValue(i)) => Value::from(i),
        Some(any_value::Value::DoubleValue(d)) => Value::from(d),
        Some(any_value::Value::ArrayValue(array)) => Value::Array(
            array
                .values
                .into_iter()
                .map(|v| any_value_json(Some(v)))
                .collect(),
        ),
        Some(any_value::Value::KvlistValue(list)) => Value::Object(attributes(list.values)),
        Some(any_value::Value::BytesValue(bytes)) => Value::String(hex(&bytes)),
        #[allow(unreachable_patterns)]
        Some(_) => Value::Null,
    }
}

/// A borrowed OTLP value as JSON.
pub(crate) fn any_value_ref(value: Option<&AnyValue>) -> Value {
    any_value_json(value.cloned())
}

/// Key-values as a JSON object, moving their keys and values.
pub(crate) fn attributes(values: Vec<KeyValue>) -> Attributes {
    values
        .into_iter()
        .map(|kv| (kv.key, any_value_json(kv.value)))
        .collect()
}

/// The resource's attributes and its `service.name` (`unknown_service` without one).
pub(crate) fn resource(resource: Option<Resource>) -> (Arc<Attributes>, Arc<str>) {
    let attributes = resource
        .map(|r| attributes(r.attributes))
        .unwrap_or_default();
    let service: Arc<str> = attributes
        .get("service.name")
        .and_then(Value::as_str)
        .unwrap_or("unknown_service")
        .into();
    (Arc::new(attributes), service)
}

fn kind(kind: i32) -> &'static str {
    match kind {
        1 => "INTERNAL",
        2 => "SERVER",
        3 => "CLIENT",
        4 => "PRODUCER",
        5 => "CONSUMER",
        _ => "UNSPECIFIED",
    }
}

fn nanos_ms(start: u64, end: u64) -> f64 {
    end.saturating_sub(start) as f64 / 1_000_000.0
}

/// A span of `service` under `scope`.
pub(crate) fn span_view(
    span: Span,
    service: &Arc<str>,
    scope: &Arc<str>,
    resource: &Arc<Attributes>,
) -> SpanView {
    let status = span.status;
    SpanView {
        trace_id: hex(&span.trace_id),
        span_id: hex(&span.span_id),
        parent_span_id: non_zero_hex(&span.parent_span_id),
        name: span.name,
        kind: kind(span.kind),
        service: Arc::clone(service),
        scope: Arc::clone(scope),
        start_unix_nano: span.start_time_unix_nano.to_string(),
        end_unix_nano: span.end_time_unix_nano.to_string(),
        duration_ms: nanos_ms(span.start_time_unix_nano, span.end_time_unix_nano),
        status: StatusView {
            code: match status.as_ref().map(|s| s.code) {
                Some(1) => "OK",
                Some(2) => "ERROR",
                _ => "UNSET",
            },
            message: status.map(|s| s.message).unwrap_or_default(),
        },
        attributes: attributes(span.attributes),
        events: span
            .events
            .into_iter()
            .map(|e| EventView {
                name: e.name,
                time_unix_nano: e.time_unix_nano.to_string(),
                attributes: attributes(e.attributes),
            })
            .collect(),
        links: span
            .links
            .into_iter()
            .map(|l| LinkView {
                trace_id: hex(&l.trace_id),
                span_id: hex(&l.span_id),
                attributes: attributes(l.attributes),
            })
            .collect(),
        resource: Arc::clone(resource),
    }
}

fn string_attribute(attributes: &Attributes, key: &str) -> Option<String> {
    match attributes.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Array(values) => values.first().and_then(Value::as_str).map(str::to_owned),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// The request a SERVER span stands for (`None` for other kinds).
pub(crate) fn request_view(span: &SpanView) -> Option<RequestView> {
    if span.kind != "SERVER" {
        return None;
    }
    let a = &span.attributes;
    Some(RequestView {
        trace_id: span.trace_id.clone(),
        span_id: span.span_id.clone(),
        service: Arc::clone(&span.service),
        method: string_attribute(a, "http.request.method")
            .or_else(|| string_attribute(a, "http.method")),
        route: string_attribute(a, "http.route"),
        status: a
            .get("http.response.status_code")
            .or_else(|| a.get("http.status_code"))
            .and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok())),
        duration_ms: span.duration_ms,
        error_type: string_attribute(a, "error.type"),
        request_id: string_attribute(a, "http.request.header.x-request-id")
            .or_else(|| string_attribute(a, "app.request.id")),
        start_unix_nano: span.start_unix_nano.clone(),
    })
}

/// A log record of `service` under `scope`.
pub(crate) fn log_view(record: LogRecord, service: &Arc<str>, scope: &str) -> LogView {
    let attributes = attributes(record.attributes);
    let target = if scope.is_empty() {
        string_attribute(&attributes, "code.namespace")
            .or_else(|| string_attribute(&attributes, "target"))
    } else {
        Some(scope.to_owned())
    };
    let body = match any_value_json(record.body) {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let time = if record.time_unix_nano != 0 {
        record.time_unix_nano
    } else {
        record.observed_time_unix_nano
    };
    LogView {
        time_unix_nano: time.to_string(),
        severity_text: record.severity_text,
        severity_number: record.severity_number,
        target,
        event_name: (!record.event_name.is_empty()).then_some(record.event_name),
        body,
        attributes,
        trace_id: non_zero_hex(&record.trace_id),
        span_id: non_zero_hex(&record.span_id),
        service: Arc::clone(service),
    }
}

/// An estimate of the memory a JSON value holds (heap plus its own size).
pub(crate) fn value_bytes(value: &Value) -> usize {
    32 + match value {
        Value::String(s) => s.len(),
        Value::Array(values) => values.iter().map(value_bytes).sum(),
        Value::Object(map) => attributes_bytes(map),
        _ => 0,
    }
}

/// An estimate of the memory of an attribute map.
pub(crate) fn attributes_bytes(map: &Attributes) -> usize {
    map.iter().map(|(k, v)| 48 + k.len() + value_bytes(v)).sum()
}

impl SpanView {
    /// An estimate of the memory this span holds (the shared resource not counted).
    pub(crate) fn bytes(&self) -> usize {
        256 + self.trace_id.len()
            + self.span_id.len()
            + self.name.len()
            + self.start_unix_nano.len()
            + self.end_unix_nano.len()
            + self.status.message.len()
            + attributes_bytes(&self.attributes)
            + self
                .events
                .iter()
                .map(|e| 96 + e.name.len() + attributes_bytes(&e.attributes))
                .sum::<usize>()
            + self
                .links
                .iter()
                .map(|l| 96 + attributes_bytes(&l.attributes))
                .sum::<usize>()
    }

    pub(crate) fn start_nanos(&self) -> u64 {
        self.start_unix_nano.parse().unwrap_or(0)
    }
}

impl LogView {
    /// An estimate of the memory this record holds.
    pub(crate) fn bytes(&self) -> usize {
        224 + self.time_unix_nano.len()
            + self.severity_text.len()
            + self.target.as_ref().map_or(0, String::len)
            + self.event_name.as_ref().map_or(0, String::len)
            + self.body.len()
            + attributes_bytes(&self.attributes)
            + 64
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn values_become_json() {
        let value = AnyValue {
            value: Some(any_value::Value::ArrayValue(
                opentelemetry_proto::tonic::common::v1::ArrayValue {
                    values: vec![
                        AnyValue {
                            value: Some(any_value::Value::IntValue(3)),
                        },
                        AnyValue {
                            value: Some(any_value::Value::BytesValue(vec![0xab, 0x01])),
                        },
                    ],
                },
            )),
        };
        assert_eq!(any_value_json(Some(value)), serde_json::json!([3, "ab01"]));
        assert_eq!(hex(&[0, 255]), "00ff");
        assert_eq!(non_zero_hex(&[0; 8]), None);
    }
}
