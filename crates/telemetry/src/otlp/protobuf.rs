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
        self.buf.reserve(12 + value.len());
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

    /// The tag and length of a nested message of exactly `len` bytes, which the caller writes
    /// next (for messages whose length is known before their body is written).
    pub(crate) fn message_head(&mut self, field: u32, len: usize) {
        self.tag(field, LEN);
        self.varint(len as u64);
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
        // Longer than one varint byte: move the body up to make room for the length.
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
        let end = self.buf.len();
        self.buf.resize(end + n - 1, 0);
        self.buf.copy_within(start..end, start + n - 1);
        self.buf[len_at..len_at + n].copy_from_slice(&prefix[..n]);
    }

    /// The head of a `KeyValue` message as field `field` whose `AnyValue` body is `value_len`
    /// bytes: its tag and length, the key, and the value's tag and length. The caller writes
    /// the value's body next, so lengths are computed, never back-patched. Always inlined: as a
    /// call it cost ~500 more instructions per request (callgrind, `scripts/bench-callgrind.sh`).
    #[inline(always)]
    fn key_value_head(&mut self, field: u32, key: &str, value_len: usize) {
        let key_len = if key.is_empty() {
            0
        } else {
            len_field(key.len())
        };
        let kv_len = key_len + len_field(value_len);
        // One reservation for the whole message; single-byte tags pushed directly (this is
        // the hot path of every span and log record: about 20 attributes per request).
        self.buf.reserve(12 + kv_len);
        self.tag(field, LEN);
        self.varint(kv_len as u64);
        if !key.is_empty() {
            self.buf.push(1 << 3 | LEN as u8);
            self.varint(key.len() as u64);
            self.buf.extend_from_slice(key.as_bytes());
        }
        self.buf.push(2 << 3 | LEN as u8);
        self.varint(value_len as u64);
    }

    /// A scalar-valued `KeyValue` message as field `field`, written in one pass.
    pub(crate) fn scalar_key_value(&mut self, field: u32, key: &str, value: Scalar<'_>) {
        self.key_value_head(field, key, value.encoded_len());
        match value {
            Scalar::Str(s) => {
                self.buf.push(1 << 3 | LEN as u8);
                self.varint(s.len() as u64);
                self.buf.extend_from_slice(s);
            }
            Scalar::Bool(b) => {
                self.buf.push(2 << 3 | VARINT as u8);
                self.buf.push(u8::from(b));
            }
            Scalar::Int(i) => {
                self.buf.push(3 << 3 | VARINT as u8);
                self.varint(i as u64);
            }
            Scalar::Double(f) => {
                self.buf.push(4 << 3 | FIXED64 as u8);
                self.buf.extend_from_slice(&f.to_le_bytes());
            }
        }
    }

    /// A `KeyValue` whose value is an array of strings, as field `field`, in one pass.
    pub(crate) fn string_array_key_value(&mut self, field: u32, key: &str, values: &[&[u8]]) {
        // ArrayValue.values: each an AnyValue holding one string_value.
        let array_len: usize = values.iter().map(|v| len_field(len_field(v.len()))).sum();
        self.key_value_head(field, key, len_field(array_len));
        self.message_head(5, array_len);
        for v in values {
            self.message_head(1, len_field(v.len()));
            self.bytes(1, v);
        }
    }
}

/// A scalar `AnyValue` (string, bool, int or double).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scalar<'a> {
    Str(&'a [u8]),
    Bool(bool),
    Int(i64),
    Double(f64),
}

impl Scalar<'_> {
    /// Bytes of the `AnyValue` message body.
    fn encoded_len(&self) -> usize {
        match self {
            Scalar::Str(s) => len_field(s.len()),
            Scalar::Bool(_) => 2,
            Scalar::Int(i) => 1 + varint_len(*i as u64),
            Scalar::Double(_) => 9,
        }
    }
}

/// Bytes of a length-delimited field (tag of fields 1–15, length, body) whose body is `len`
/// bytes.
pub(crate) fn len_field(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

/// Bytes of `v` as a varint.
fn varint_len(v: u64) -> usize {
    // 1 for 0..=127, +1 per further 7 bits.
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
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
    match value {
        Value::Array(_) => w.message(field, |w| {
            w.string(1, key);
            w.message(2, |w| any_value(w, value));
        }),
        Value::String(s) => w.scalar_key_value(field, key, Scalar::Str(s.as_str().as_bytes())),
        Value::Bool(b) => w.scalar_key_value(field, key, Scalar::Bool(*b)),
        Value::I64(i) => w.scalar_key_value(field, key, Scalar::Int(*i)),
        Value::F64(f) => w.scalar_key_value(field, key, Scalar::Double(*f)),
        _ => w.scalar_key_value(field, key, Scalar::Str(value.as_str().as_bytes())),
    }
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
        // A three-byte length: the body moves up by two.
        let mut w = Writer::with_capacity(0);
        w.message(3, |w| w.raw(&[9u8; 20_000]));
        assert_eq!(&w.buf[..4], &[0x1a, 0xa0, 0x9c, 0x01]);
        assert!(w.buf[4..].iter().all(|&b| b == 9));
        assert_eq!(w.buf.len(), 4 + 20_000);
    }

    /// The reference shape: `KeyValue` and `AnyValue` written as back-patched nested messages.
    fn nested_key_value(field: u32, key: &str, value: Scalar<'_>) -> Vec<u8> {
        let mut w = Writer::with_capacity(0);
        w.message(field, |w| {
            w.string(1, key);
            w.message(2, |w| match value {
                Scalar::Str(s) => w.bytes(1, s),
                Scalar::Bool(b) => w.int_field(2, u64::from(b)),
                Scalar::Int(i) => w.int_field(3, i as u64),
                Scalar::Double(f) => w.double_field(4, f),
            });
        });
        w.buf
    }

    #[test]
    fn one_pass_key_values_match_the_nested_encoding() {
        let long = "x".repeat(300);
        let longer = "y".repeat(20_000);
        let values = [
            Scalar::Str(b""),
            Scalar::Str(b"GET"),
            Scalar::Str(long.as_bytes()),
            Scalar::Str(longer.as_bytes()),
            Scalar::Bool(true),
            Scalar::Bool(false),
            Scalar::Int(0),
            Scalar::Int(200),
            Scalar::Int(-1),
            Scalar::Int(i64::MAX),
            Scalar::Double(0.25),
        ];
        for key in ["", "k", "http.response.status_code", long.as_str()] {
            for value in values {
                let mut w = Writer::with_capacity(0);
                w.scalar_key_value(9, key, value);
                assert_eq!(
                    w.buf,
                    nested_key_value(9, key, value),
                    "{key:.10} {value:?}"
                );
            }
        }
    }

    #[test]
    fn one_pass_string_arrays_match_the_nested_encoding() {
        let long = [b'z'; 200];
        for values in [
            &[][..],
            &[&b"req-1"[..]][..],
            &[&b"a"[..], &long[..], &b""[..]][..],
        ] {
            let mut w = Writer::with_capacity(0);
            w.string_array_key_value(9, "http.request.header.x-request-id", values);
            let mut nested = Writer::with_capacity(0);
            nested.message(9, |w| {
                w.string(1, "http.request.header.x-request-id");
                w.message(2, |w| {
                    w.message(5, |w| {
                        for v in values {
                            w.message(1, |w| w.bytes(1, v));
                        }
                    })
                });
            });
            assert_eq!(w.buf, nested.buf);
        }
    }

    #[test]
    fn varint_lengths() {
        for (v, len) in [
            (0, 1),
            (127, 1),
            (128, 2),
            (16_383, 2),
            (16_384, 3),
            (u64::MAX, 10),
        ] {
            assert_eq!(varint_len(v), len, "{v}");
            let mut buf = Vec::new();
            push_varint(&mut buf, v);
            assert_eq!(buf.len(), len, "{v}");
        }
    }
}
