//! The log-record encoder: an OTLP `LogRecord` message body from a [`LogRecordView`].

use std::time::SystemTime;

use crate::log_format::FieldValue;

use super::protobuf::{Scalar, Writer, len_field, nanos};

/// One log record, borrowed, as the emitters hand it over.
#[derive(Debug)]
pub(crate) struct LogRecordView<'a> {
    pub(crate) time: SystemTime,
    pub(crate) severity_number: u8,
    pub(crate) severity_text: &'static str,
    pub(crate) body: &'a str,
    /// The instrumentation scope the record is batched under (not encoded in the record).
    pub(crate) target: &'static str,
    /// The LogRecord's own `event_name` field.
    pub(crate) event_name: Option<&'a str>,
    pub(crate) trace: Option<(&'a [u8; 16], &'a [u8; 8], u8)>,
    /// Attributes written before `fields` (e.g. the request id).
    pub(crate) leading: &'a [(&'static str, FieldValue<'a>)],
    pub(crate) fields: &'a [(&'static str, FieldValue<'a>)],
}

/// One `LogRecord` message body.
pub(crate) fn encode_log_record(w: &mut Writer, r: &LogRecordView<'_>) {
    let time = nanos(r.time);
    w.fixed64(1, time);
    w.uint(2, u64::from(r.severity_number));
    w.string(3, r.severity_text);
    let body = r.body.as_bytes();
    w.message_head(5, len_field(body.len()));
    w.bytes(1, body);
    for (key, value) in r.leading.iter().chain(r.fields) {
        attribute(w, key, *value);
    }
    if let Some((trace_id, span_id, flags)) = r.trace {
        w.fixed32(8, u32::from(flags));
        w.bytes(9, trace_id);
        w.bytes(10, span_id);
    }
    w.fixed64(11, time);
    w.string(12, r.event_name.unwrap_or(""));
}

fn attribute(w: &mut Writer, key: &str, value: FieldValue<'_>) {
    let value = match value {
        FieldValue::Str(s) | FieldValue::Static(s) => Scalar::Str(s.as_bytes()),
        FieldValue::Shared(s) => Scalar::Str(s.as_bytes()),
        FieldValue::Bool(b) => Scalar::Bool(b),
        FieldValue::I64(i) => Scalar::Int(i),
        FieldValue::U64(u) => Scalar::Int(u.min(i64::MAX as u64) as i64),
        FieldValue::F64(f) => Scalar::Double(f),
    };
    w.scalar_key_value(6, key, value);
}
