//! A protobuf writer appending to one buffer, and OTLP's common `KeyValue` / `AnyValue`.

use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::{Array, Value};

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

    pub(crate) fn varint(&mut self, v: u64) {
        push_varint(&mut self.buf, v);
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

/// Appends a varint to `buf`.
fn push_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Appends field `field` holding the already-encoded message `body` to `out`.
pub(crate) fn append_message(out: &mut Vec<u8>, field: u32, body: &[u8]) {
    push_varint(out, u64::from(field << 3 | LEN));
    push_varint(out, body.len() as u64);
    out.extend_from_slice(body);
}

/// Nanoseconds since the Unix epoch (0 before it).
pub(crate) fn nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A `KeyValue` message as field `field`.
pub(crate) fn key_value(w: &mut Writer, field: u32, key: &str, value: &Value) {
    w.message(field, |w| {
        w.string(1, key);
        w.message(2, |w| any_value(w, value));
    });
}

fn any_value(w: &mut Writer, value: &Value) {
    match value {
        Value::String(s) => w.bytes(1, s.as_str().as_bytes()),
        Value::Bool(b) => w.int_field(2, u64::from(*b)),
        Value::I64(i) => w.int_field(3, *i as u64),
        Value::F64(f) => w.double_field(4, *f),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_long_messages_are_framed_correctly() {
        let mut w = Writer::with_capacity(0);
        w.uint(1, 300);
        assert_eq!(w.buf, [0x08, 0xac, 0x02]);
        let mut w = Writer::with_capacity(0);
        w.message(2, |w| w.raw(&[7u8; 200]));
        assert_eq!(&w.buf[..3], &[0x12, 0xc8, 0x01]);
        assert_eq!(w.buf.len(), 3 + 200);
        let mut out = Vec::new();
        append_message(&mut out, 2, &[7u8; 200]);
        assert_eq!(out, w.buf);
    }
}
