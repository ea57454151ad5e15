//! One log line, written in a single pass: JSON, Google Cloud Logging JSON, or pretty text.
//!
//! Every value is escaped: control characters (including `\n` and `\r`) never reach the output
//! raw, so no request can forge a second log line. The writer appends into a caller-owned
//! buffer and allocates nothing itself.

use std::time::{SystemTime, UNIX_EPOCH};

use tracing::Level;

use crate::config::LogFormat;

/// A field value of a log line.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FieldValue<'a> {
    /// A borrowed string (copied when exported over OTLP).
    Str(&'a str),
    /// A static string (never copied).
    Static(&'static str),
    /// A shared string (exported by reference count).
    Shared(&'a std::sync::Arc<str>),
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
}

/// Trace correlation of a log line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Correlation<'a> {
    pub(crate) trace_id: &'a [u8; 32],
    pub(crate) span_id: &'a [u8; 16],
    pub(crate) sampled: bool,
    pub(crate) request_id: &'a str,
}

/// Cloud Logging's `httpRequest` object, for access lines in the `gcp` format.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HttpRequestLog<'a> {
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    pub(crate) status: u16,
    pub(crate) response_size: Option<u64>,
    pub(crate) user_agent: &'a str,
    pub(crate) remote_ip: Option<&'a str>,
    pub(crate) latency_secs: f64,
}

/// Everything one line carries.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LogLine<'a> {
    pub(crate) time: SystemTime,
    pub(crate) level: Level,
    pub(crate) target: &'static str,
    pub(crate) message: &'a str,
    pub(crate) correlation: Option<Correlation<'a>>,
    pub(crate) fields: &'a [(&'static str, FieldValue<'a>)],
    pub(crate) http: Option<HttpRequestLog<'a>>,
}

/// Appends `line` in `format` to `out`, ending with `\n`. `service` is the instance's
/// `service.name`: every line names it (`service`), so the lines of several instances sharing
/// stdout (the shop and its in-process payment simulator) can be told apart.
pub(crate) fn write_line(
    out: &mut Vec<u8>,
    format: LogFormat,
    gcp_project: Option<&str>,
    service: &str,
    line: &LogLine<'_>,
) {
    match format {
        LogFormat::Json => write_json(out, line, service, None),
        LogFormat::Gcp => write_json(out, line, service, Some(gcp_project)),
        LogFormat::Pretty => write_pretty(out, line, service),
    }
}

/// The bytes of one of the library's own lines, outside any request (no trace correlation):
/// the start-up line, the GCP metadata warning, the export thread's WARN line. Written now, in
/// `format`, for the sink of the instance named `service`.
pub(crate) fn own_line(
    format: LogFormat,
    gcp_project: Option<&str>,
    service: &str,
    level: Level,
    target: &'static str,
    message: &str,
    fields: &[(&'static str, FieldValue<'_>)],
) -> Vec<u8> {
    let line = LogLine {
        time: SystemTime::now(),
        level,
        target,
        message,
        correlation: None,
        fields,
        http: None,
    };
    let mut out = Vec::with_capacity(512);
    write_line(&mut out, format, gcp_project, service, &line);
    out
}

fn write_json(out: &mut Vec<u8>, line: &LogLine<'_>, service: &str, gcp: Option<Option<&str>>) {
    out.push(b'{');
    if gcp.is_some() {
        out.extend_from_slice(b"\"time\":\"");
    } else {
        out.extend_from_slice(b"\"timestamp\":\"");
    }
    write_rfc3339(out, line.time);
    if gcp.is_some() {
        out.extend_from_slice(b"\",\"severity\":\"");
        out.extend_from_slice(gcp_severity(line.level).as_bytes());
    } else {
        out.extend_from_slice(b"\",\"level\":\"");
        out.extend_from_slice(line.level.as_str().as_bytes());
    }
    out.extend_from_slice(b"\",\"message\":");
    json_str(out, line.message);
    out.extend_from_slice(b",\"target\":");
    json_str(out, line.target);
    out.extend_from_slice(b",\"service\":");
    json_str(out, service);
    if let Some(c) = &line.correlation {
        out.extend_from_slice(b",\"trace_id\":\"");
        out.extend_from_slice(c.trace_id);
        out.extend_from_slice(b"\",\"span_id\":\"");
        out.extend_from_slice(c.span_id);
        out.extend_from_slice(b"\",\"request_id\":");
        json_str(out, c.request_id);
        if let Some(project) = gcp {
            if let Some(project) = project {
                out.extend_from_slice(b",\"logging.googleapis.com/trace\":\"projects/");
                json_str_body(out, project);
                out.extend_from_slice(b"/traces/");
                out.extend_from_slice(c.trace_id);
                out.push(b'"');
            }
            out.extend_from_slice(b",\"logging.googleapis.com/spanId\":\"");
            out.extend_from_slice(c.span_id);
            out.extend_from_slice(b"\",\"logging.googleapis.com/trace_sampled\":");
            out.extend_from_slice(if c.sampled { b"true" } else { b"false" });
        }
    }
    for (key, value) in line.fields {
        out.push(b',');
        json_key(out, key);
        json_value(out, *value);
    }
    if let (Some(_), Some(http)) = (gcp, &line.http) {
        out.extend_from_slice(b",\"httpRequest\":{\"requestMethod\":");
        json_str(out, http.method);
        out.extend_from_slice(b",\"requestUrl\":");
        json_str(out, http.path);
        out.extend_from_slice(b",\"status\":");
        write_u64(out, u64::from(http.status));
        if let Some(size) = http.response_size {
            out.extend_from_slice(b",\"responseSize\":\"");
            write_u64(out, size);
            out.push(b'"');
        }
        if !http.user_agent.is_empty() {
            out.extend_from_slice(b",\"userAgent\":");
            json_str(out, http.user_agent);
        }
        if let Some(ip) = http.remote_ip {
            out.extend_from_slice(b",\"remoteIp\":");
            json_str(out, ip);
        }
        out.extend_from_slice(b",\"latency\":\"");
        write_seconds_micros(out, http.latency_secs);
        out.extend_from_slice(b"s\"}");
    }
    out.extend_from_slice(b"}\n");
}

fn gcp_severity(level: Level) -> &'static str {
    match level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        Level::DEBUG | Level::TRACE => "DEBUG",
    }
}

fn write_pretty(out: &mut Vec<u8>, line: &LogLine<'_>, service: &str) {
    write_rfc3339(out, line.time);
    out.push(b' ');
    let level = line.level.as_str();
    out.extend_from_slice(level.as_bytes());
    out.extend(std::iter::repeat_n(b' ', 6 - level.len()));
    // The message is free text ending at the double space: spaces stay, controls are escaped.
    escape_controls(out, line.message);
    out.extend_from_slice(b"  ");
    for (key, value) in line.fields {
        out.extend_from_slice(key.as_bytes());
        out.push(b'=');
        match value.as_str() {
            Some(s) => escaped_text(out, s),
            None => json_value(out, *value),
        }
        out.push(b' ');
    }
    if let Some(c) = &line.correlation {
        out.extend_from_slice(b"request_id=");
        escaped_text(out, c.request_id);
        out.extend_from_slice(b" trace_id=");
        out.extend_from_slice(c.trace_id);
        out.extend_from_slice(b" span_id=");
        out.extend_from_slice(c.span_id);
        out.push(b' ');
    }
    out.extend_from_slice(b"target=");
    escaped_text(out, line.target);
    out.extend_from_slice(b" service=");
    escaped_text(out, service);
    out.push(b'\n');
}

impl FieldValue<'_> {
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            FieldValue::Str(s) => Some(s),
            FieldValue::Static(s) => Some(s),
            FieldValue::Shared(s) => Some(s),
            _ => None,
        }
    }
}

fn json_value(out: &mut Vec<u8>, value: FieldValue<'_>) {
    match value {
        FieldValue::Str(s) | FieldValue::Static(s) => json_str(out, s),
        FieldValue::Shared(s) => json_str(out, s),
        FieldValue::I64(v) => {
            if v < 0 {
                out.push(b'-');
            }
            write_u64(out, v.unsigned_abs());
        }
        FieldValue::U64(v) => write_u64(out, v),
        FieldValue::F64(v) if v.is_finite() => write_f64(out, v),
        FieldValue::F64(_) => out.extend_from_slice(b"null"),
        FieldValue::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
    }
}

/// Writes `"key":`. Keys are static field names; only they skip the escaping scan, and a
/// debug assertion checks they need none.
fn json_key(out: &mut Vec<u8>, key: &'static str) {
    debug_assert!(
        !key.bytes()
            .any(|b| b < 0x20 || b == b'"' || b == b'\\' || b == 0x7f)
    );
    out.push(b'"');
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
}

/// Writes `s` as a quoted JSON string.
pub(crate) fn json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    json_str_body(out, s);
    out.push(b'"');
}

fn json_str_body(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Skip 8 clean bytes at a time: no control character, quote, backslash or DEL.
        if i + 8 <= bytes.len() {
            let mut word = [0u8; 8];
            word.copy_from_slice(&bytes[i..i + 8]);
            if !needs_escape(u64::from_le_bytes(word)) {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f | 0x7f => b"",
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(b >> 4) as usize]);
            out.push(HEX[(b & 0xf) as usize]);
        } else {
            out.extend_from_slice(escape);
        }
        i += 1;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Whether any byte of `word` is below 0x20, `"`, `\\` or DEL (SWAR: eight bytes per test).
fn needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
    (below_space
        | has_zero(word ^ (ONES * u64::from(b'"')))
        | has_zero(word ^ (ONES * u64::from(b'\\')))
        | has_zero(word ^ (ONES * 0x7f)))
        != 0
}

/// Text for the pretty format: control characters as `\n`, `\x1b`, … and quotes when the value
/// has spaces, so one value never looks like two.
fn escaped_text(out: &mut Vec<u8>, s: &str) {
    let needs_quotes = s.is_empty() || s.bytes().any(|b| b == b' ' || b == b'"' || b == b'=');
    if needs_quotes {
        json_str(out, s);
        return;
    }
    escape_controls(out, s);
}

/// Control characters as `\n`, `\x1b`, …, backslash doubled; everything else as is.
fn escape_controls(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b < 0x20 || b == 0x7f || b == b'\\' {
            out.extend_from_slice(&bytes[start..i]);
            match b {
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                b'\\' => out.extend_from_slice(b"\\\\"),
                _ => {
                    out.extend_from_slice(b"\\x");
                    out.push(HEX[(b >> 4) as usize]);
                    out.push(HEX[(b & 0xf) as usize]);
                }
            }
            start = i + 1;
        }
    }
    out.extend_from_slice(&bytes[start..]);
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn write_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Fixed 3-decimal rendering for durations and other small floats; general floats fall back to `{}`.
fn write_f64(out: &mut Vec<u8>, v: f64) {
    if (0.0..1e12).contains(&v) {
        let thousandths = (v * 1000.0).round() as u64;
        write_u64(out, thousandths / 1000);
        out.push(b'.');
        let frac = thousandths % 1000;
        out.push(b'0' + (frac / 100) as u8);
        out.push(b'0' + (frac / 10 % 10) as u8);
        out.push(b'0' + (frac % 10) as u8);
    } else {
        use std::io::Write;
        let _ = write!(out, "{v}");
    }
}

/// Seconds with microsecond precision (`0.000123`), as Cloud Logging's duration strings allow.
fn write_seconds_micros(out: &mut Vec<u8>, seconds: f64) {
    let micros = (seconds.max(0.0) * 1_000_000.0).round() as u64;
    write_u64(out, micros / 1_000_000);
    out.push(b'.');
    let mut frac = [b'0'; 6];
    put_digits(&mut frac, micros % 1_000_000);
    out.extend_from_slice(&frac);
}

/// RFC 3339 UTC timestamp with microseconds, e.g. `2026-11-27T08:15:02.123456Z`.
pub(crate) fn write_rfc3339(out: &mut Vec<u8>, time: SystemTime) {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let micros = since.subsec_micros();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let mut buf = *b"0000-00-00T00:00:00.000000Z";
    put_digits(&mut buf[0..4], year as u64);
    put_digits(&mut buf[5..7], u64::from(month));
    put_digits(&mut buf[8..10], u64::from(day));
    put_digits(&mut buf[11..13], rem / 3600);
    put_digits(&mut buf[14..16], rem / 60 % 60);
    put_digits(&mut buf[17..19], rem % 60);
    put_digits(&mut buf[20..26], u64::from(micros));
    out.extend_from_slice(&buf);
}

fn put_digits(slot: &mut [u8], mut v: u64) {
    for b in slot.iter_mut().rev() {
        *b = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// Days since 1970-01-01 → (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    fn line<'a>(message: &'a str, fields: &'a [(&'static str, FieldValue<'a>)]) -> LogLine<'a> {
        LogLine {
            time: UNIX_EPOCH + Duration::from_micros(1_795_770_102_123_456),
            level: Level::WARN,
            target: "shop::orders",
            message,
            correlation: Some(Correlation {
                trace_id: b"0af7651916cd43dd8448eb211c80319c",
                span_id: b"b7ad6b7169203331",
                sampled: true,
                request_id: "req-1",
            }),
            fields,
            http: None,
        }
    }

    #[test]
    fn json_line_is_one_valid_object() {
        let fields = [
            ("status", FieldValue::U64(404)),
            ("route", FieldValue::Str("/v1/x")),
        ];
        let mut out = Vec::new();
        write_line(
            &mut out,
            LogFormat::Json,
            None,
            "svc-a",
            &line("evil\n{\"level\":\"ERROR\"}\u{1b}", &fields),
        );
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["message"], "evil\n{\"level\":\"ERROR\"}\u{1b}");
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["trace_id"], "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(v["status"], 404);
        assert_eq!(v["timestamp"], "2026-11-27T09:01:42.123456Z");
        assert_eq!(v["service"], "svc-a", "every line names its service");
    }

    #[test]
    fn gcp_line_has_cloud_logging_fields() {
        let mut out = Vec::new();
        let mut l = line("m", &[]);
        l.http = Some(HttpRequestLog {
            method: "GET",
            path: "/v1/products",
            status: 200,
            response_size: Some(12),
            user_agent: "curl/8",
            remote_ip: Some("10.0.0.0"),
            latency_secs: 0.0123,
        });
        write_line(&mut out, LogFormat::Gcp, Some("my-proj"), "svc-b", &l);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["severity"], "WARNING");
        assert_eq!(v["service"], "svc-b");
        assert_eq!(
            v["logging.googleapis.com/trace"],
            "projects/my-proj/traces/0af7651916cd43dd8448eb211c80319c"
        );
        assert_eq!(v["logging.googleapis.com/spanId"], "b7ad6b7169203331");
        assert_eq!(v["logging.googleapis.com/trace_sampled"], true);
        assert_eq!(v["httpRequest"]["latency"], "0.012300s");
        assert_eq!(v["httpRequest"]["status"], 200);
    }

    #[test]
    fn pretty_line_escapes_control_characters() {
        let fields = [("path", FieldValue::Str("/a\nINFO forged"))];
        let mut out = Vec::new();
        write_line(
            &mut out,
            LogFormat::Pretty,
            None,
            "svc-c",
            &line("x\ry", &fields),
        );
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
        assert!(!out.contains(&b'\r'));
        assert!(out.ends_with(b" target=shop::orders service=svc-c\n"));
    }

    #[test]
    fn escaping_is_exact_for_every_byte_position() {
        for len in 0..40 {
            for pos in 0..len {
                for special in [b'"', b'\\', b'\n', 0x01, 0x7f, 0x1f] {
                    let mut text = vec![b'a'; len];
                    text[pos] = special;
                    let text = String::from_utf8(text).unwrap();
                    let mut out = Vec::new();
                    json_str(&mut out, &text);
                    let back: String = serde_json::from_slice(&out).unwrap();
                    assert_eq!(back, text);
                    assert!(
                        !out[1..out.len() - 1].contains(&special)
                            || special == b'\\'
                            || special == b'"'
                    );
                }
            }
        }
        let mut out = Vec::new();
        json_str(
            &mut out,
            "héllo wörld, non-ASCII passes through unchanged ✓",
        );
        assert_eq!(
            serde_json::from_slice::<String>(&out).unwrap(),
            "héllo wörld, non-ASCII passes through unchanged ✓"
        );
    }

    #[test]
    fn dates_are_right_across_leap_years() {
        let mut out = Vec::new();
        write_rfc3339(&mut out, UNIX_EPOCH + Duration::from_secs(951_782_400)); // 2000-02-29
        assert_eq!(&out[..10], b"2000-02-29");
    }
}

/// Property tests (`PROPTEST_CASES` sets the number of cases; `scripts/test.sh` bounds it).
#[cfg(test)]
mod proptests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    /// Any text, control characters, quotes, backslashes and non-ASCII included.
    fn text() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                any::<char>(),
                proptest::char::range('\0', '\u{7f}'),
                Just('\n'),
                Just('"'),
                Just('\\'),
            ],
            0..80,
        )
        .prop_map(|chars| chars.into_iter().collect())
    }

    fn write(format: LogFormat, message: &str, value: &str, request_id: &str) -> Vec<u8> {
        let fields = [
            ("error.message", FieldValue::Str(value)),
            ("status", FieldValue::U64(500)),
            ("duration_ms", FieldValue::F64(1.5)),
        ];
        let line = LogLine {
            time: UNIX_EPOCH + Duration::from_micros(1_795_770_102_123_456),
            level: Level::ERROR,
            target: "access",
            message,
            correlation: Some(Correlation {
                trace_id: b"0af7651916cd43dd8448eb211c80319c",
                span_id: b"b7ad6b7169203331",
                sampled: true,
                request_id,
            }),
            fields: &fields,
            http: Some(HttpRequestLog {
                method: "GET",
                path: value,
                status: 500,
                response_size: Some(3),
                user_agent: message,
                remote_ip: None,
                latency_secs: 0.25,
            }),
        };
        let mut out = Vec::new();
        write_line(&mut out, format, Some(value), value, &line);
        out
    }

    proptest! {
        #[test]
        fn json_lines_are_one_object_that_round_trips(
            message in text(), value in text(), request_id in text(),
        ) {
            for format in [LogFormat::Json, LogFormat::Gcp] {
                let out = write(format, &message, &value, &request_id);
                prop_assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
                prop_assert_eq!(out.last(), Some(&b'\n'));
                prop_assert!(!out.contains(&b'\r'));
                let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
                prop_assert_eq!(v["message"].as_str(), Some(message.as_str()));
                prop_assert_eq!(v["error.message"].as_str(), Some(value.as_str()));
                prop_assert_eq!(v["service"].as_str(), Some(value.as_str()));
                prop_assert_eq!(v["request_id"].as_str(), Some(request_id.as_str()));
                if format == LogFormat::Gcp {
                    prop_assert_eq!(v["httpRequest"]["requestUrl"].as_str(), Some(value.as_str()));
                    prop_assert_eq!(v["httpRequest"]["userAgent"].as_str(), Some(message.as_str()).filter(|m| !m.is_empty()));
                    let trace = v["logging.googleapis.com/trace"].as_str().unwrap();
                    prop_assert_eq!(trace, format!("projects/{value}/traces/0af7651916cd43dd8448eb211c80319c"));
                }
            }
        }

        #[test]
        fn pretty_lines_are_one_line_without_raw_controls(
            message in text(), value in text(), request_id in text(),
        ) {
            let out = write(LogFormat::Pretty, &message, &value, &request_id);
            let (last, body) = out.split_last().unwrap();
            prop_assert_eq!(*last, b'\n');
            prop_assert!(body.iter().all(|&b| b >= 0x20 && b != 0x7f), "{:?}", String::from_utf8_lossy(&out));
            prop_assert!(std::str::from_utf8(&out).is_ok());
        }

        #[test]
        fn the_escape_scan_agrees_with_a_byte_by_byte_check(word in any::<u64>()) {
            let bytes = word.to_le_bytes();
            let expected = bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\' || b == 0x7f);
            prop_assert_eq!(needs_escape(word), expected);
        }
    }
}
