//! `tracestate`: parsing, validation, truncation and re-emission of the list, and carrying
//! the exact header through the SDK's `TraceState` (W3C Trace Context Level 1 and 2).
//!
//! [`TracestateHeader::parse`] implements the rules itself (OpenTelemetry 0.33's `TraceState`
//! follows an older key grammar and refuses valid keys such as `foo@@bar`, `foo@bar@baz`,
//! `a@_b` or one with more than 14 characters after its `@`):
//!
//! - repeated `tracestate` fields are one list, in field order (RFC 9110 field combination);
//! - spaces and tabs around members are optional whitespace, empty members are skipped;
//! - a key is `(lcalpha / DIGIT) 0*255(lcalpha / DIGIT / "_" / "-" / "*" / "/" / "@")`; a value
//!   is 1–256 printable ASCII characters except `,` and `=`, not ending in a space;
//! - an invalid member is dropped on its own ("invalid `tracestate` entries MAY be discarded");
//! - a repeated key keeps its first (left-most, most recent) member, later ones are dropped:
//!   never the whole header;
//! - more than 32 non-empty members is not a `tracestate` list at all (its ABNF allows 32): the
//!   whole header is dropped, and the scan stops at the 33rd member (bounded work);
//! - the list re-emitted is the kept members joined by `,` without optional whitespace, in the
//!   order received; when it is longer than 512 characters, whole members are removed: first
//!   members longer than 128 characters, then from the end (right-most first in both steps).
//!
//! # Carrying the exact header through the SDK
//!
//! Child spans made by the OpenTelemetry SDK inherit their parent's `SpanContext`, whose
//! `TraceState` is the SDK's type. [`TracestateHeader::to_trace_state`] stores our validated list
//! there natively when the SDK accepts every key (the common case: `header()` then returns the
//! same bytes). When it does not, the list is stored as an opaque carrier under the reserved
//! keys `w3c-tracestate/0`, `/1`: the header text with `,` and `=` replaced by the control
//! characters `\x01` and `\x02` (which no valid `tracestate` contains), cut into chunks the SDK
//! accepts. [`tracestate_header`] turns either form back into the exact header; the library's
//! own propagation ([`crate::outbound`]) and OTLP export use it, never `TraceState::header()`.
//! Code that calls `TraceState::header()` itself on a carrier gets a string with control
//! characters, which `http::HeaderValue` refuses: such a list is then not propagated by the
//! SDK's propagators (it fails closed, never a corrupted list).

use opentelemetry::trace::TraceState;

use super::trim_ows;

/// Longest `tracestate` re-emitted (the specification's 512-character propagation minimum,
/// commas included); longer lists are truncated by whole members.
pub const MAX_TRACESTATE_LEN: usize = 512;
/// Most list members a `tracestate` may carry; more make the whole header invalid.
pub const MAX_TRACESTATE_MEMBERS: usize = 32;
/// Members longer than this are the first removed when a list must be truncated.
pub const TRUNCATE_FIRST_LONGER_THAN: usize = 128;

/// Longest key and value of a `tracestate` member.
const MAX_KEY_LEN: usize = 256;
const MAX_VALUE_LEN: usize = 256;

/// Keys of the SDK `TraceState` carrier (see the module documentation).
const CARRIER_KEYS: [&str; 3] = ["w3c-tracestate/0", "w3c-tracestate/1", "w3c-tracestate/2"];
const CARRIER_PREFIX: &str = "w3c-tracestate/";
/// Longest value the SDK's `TraceState` accepts.
const CARRIER_CHUNK: usize = 256;

/// Parses one `tracestate` field value (see [`TracestateHeader::parse`] for several).
pub fn parse_tracestate(value: &[u8]) -> TracestateHeader {
    TracestateHeader::parse(Some(value))
}

/// One kept member of a list: byte offsets into the header text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Member {
    start: usize,
    key_end: usize,
    end: usize,
}

impl Member {
    fn len(self) -> usize {
        self.end - self.start
    }
}

/// A `tracestate` list validated by this module: exactly the header text re-emitted on
/// outbound calls and exported as spans' `trace_state` (empty when nothing valid was received).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TracestateHeader {
    header: String,
}

impl TracestateHeader {
    /// Parses the `tracestate` field values of one request, in order, by the rules in the
    /// module documentation. Never fails: the result may be empty.
    ///
    /// ```
    /// use telemetry::trace_context::TracestateHeader;
    ///
    /// let state = TracestateHeader::parse([&b"foo@=1 , Bad=2,foo@=3"[..], b"rojo=00f067aa0ba902b7"]);
    /// assert_eq!(state.as_str(), "foo@=1,rojo=00f067aa0ba902b7");
    /// ```
    pub fn parse<'a>(fields: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut header = String::new();
        let mut members: Vec<Member> = Vec::new();
        let mut seen = 0usize;
        for field in fields {
            for member in field.split(|&b| b == b',') {
                let member = trim_ows(member);
                if member.is_empty() {
                    continue;
                }
                seen += 1;
                if seen > MAX_TRACESTATE_MEMBERS {
                    return Self::default();
                }
                let Some(eq) = member.iter().position(|&b| b == b'=') else {
                    continue;
                };
                let (key, value) = (&member[..eq], &member[eq + 1..]);
                if !valid_key(key) || !valid_value(value) {
                    continue;
                }
                if members
                    .iter()
                    .any(|m| header.as_bytes()[m.start..m.key_end] == *key)
                {
                    continue;
                }
                // Both parts are ASCII (checked above), so this is valid UTF-8.
                let (Ok(key), Ok(value)) = (std::str::from_utf8(key), std::str::from_utf8(value))
                else {
                    continue;
                };
                if !header.is_empty() {
                    header.push(',');
                }
                let start = header.len();
                header.push_str(key);
                let key_end = header.len();
                header.push('=');
                header.push_str(value);
                members.push(Member {
                    start,
                    key_end,
                    end: header.len(),
                });
            }
        }
        if header.len() > MAX_TRACESTATE_LEN {
            header = truncate(&header, members);
        }
        Self { header }
    }

    /// The header text (`key=value` members joined by `,`), empty when there is none.
    pub fn as_str(&self) -> &str {
        &self.header
    }

    /// Whether no member was kept.
    pub fn is_empty(&self) -> bool {
        self.header.is_empty()
    }

    /// The members as `(key, value)`, in order.
    pub fn members(&self) -> impl Iterator<Item = (&str, &str)> {
        self.header
            .split(',')
            .filter(|m| !m.is_empty())
            .filter_map(|m| m.split_once('='))
    }

    /// This list as the SDK's `TraceState`, from which [`tracestate_header`] gives back exactly
    /// [`Self::as_str`] (natively when the SDK accepts every key, else as the opaque carrier
    /// described in the module documentation).
    pub fn to_trace_state(&self) -> TraceState {
        if self.is_empty() {
            return TraceState::NONE;
        }
        let reserved = self
            .members()
            .any(|(key, _)| key.starts_with(CARRIER_PREFIX));
        if !reserved && let Ok(state) = TraceState::from_key_value(self.members()) {
            return state;
        }
        let escaped: Vec<u8> = self
            .header
            .bytes()
            .map(|b| match b {
                b',' => 0x01,
                b'=' => 0x02,
                b => b,
            })
            .collect();
        let chunks = escaped
            .chunks(CARRIER_CHUNK)
            .map(|chunk| String::from_utf8_lossy(chunk).into_owned());
        TraceState::from_key_value(CARRIER_KEYS.iter().copied().zip(chunks)).unwrap_or_default()
    }

    /// The list carried by an SDK `TraceState` made by [`Self::to_trace_state`] (or any other
    /// SDK `TraceState`, whose `header()` it then is).
    pub fn from_trace_state(state: &TraceState) -> Self {
        Self {
            header: tracestate_header(state),
        }
    }
}

/// The exact `tracestate` header an SDK `TraceState` carries: the carrier of
/// [`TracestateHeader::to_trace_state`] decoded, else `TraceState::header()`.
pub fn tracestate_header(state: &TraceState) -> String {
    let Some(first) = state.get(CARRIER_KEYS[0]) else {
        return state.header();
    };
    let mut header = String::with_capacity(MAX_TRACESTATE_LEN);
    for chunk in std::iter::once(first).chain(CARRIER_KEYS[1..].iter().filter_map(|k| state.get(k)))
    {
        header.extend(chunk.chars().map(|c| match c {
            '\u{1}' => ',',
            '\u{2}' => '=',
            c => c,
        }));
    }
    header
}

/// Removes whole members until the list fits [`MAX_TRACESTATE_LEN`]: members longer than
/// [`TRUNCATE_FIRST_LONGER_THAN`] first, then from the end (right-most first in both steps).
fn truncate(header: &str, mut members: Vec<Member>) -> String {
    let total = |members: &[Member]| {
        members.iter().map(|m| m.len()).sum::<usize>() + members.len().saturating_sub(1)
    };
    while total(&members) > MAX_TRACESTATE_LEN {
        let at = members
            .iter()
            .rposition(|m| m.len() > TRUNCATE_FIRST_LONGER_THAN)
            .unwrap_or(members.len() - 1);
        members.remove(at);
    }
    let mut out = String::with_capacity(MAX_TRACESTATE_LEN);
    for m in &members {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(&header[m.start..m.end]);
    }
    out
}

/// `key = (lcalpha / DIGIT) 0*255(keychar)`, `keychar = lcalpha / DIGIT / "_" / "-" / "*" / "/" / "@"`.
pub(super) fn valid_key(key: &[u8]) -> bool {
    match key {
        [first, rest @ ..] => {
            key.len() <= MAX_KEY_LEN
                && (first.is_ascii_lowercase() || first.is_ascii_digit())
                && rest.iter().all(|&b| {
                    b.is_ascii_lowercase()
                        || b.is_ascii_digit()
                        || matches!(b, b'_' | b'-' | b'*' | b'/' | b'@')
                })
        }
        [] => false,
    }
}

/// `value = 0*255(chr) nblk-chr`, `chr = %x20 / nblk-chr`, `nblk-chr = %x21-2B / %x2D-3C / %x3E-7E`.
pub(super) fn valid_value(value: &[u8]) -> bool {
    match value {
        [.., last] => {
            value.len() <= MAX_VALUE_LEN
                && *last != b' '
                && value
                    .iter()
                    .all(|&b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=')
        }
        [] => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn state(text: &str) -> String {
        parse_tracestate(text.as_bytes()).as_str().to_owned()
    }

    #[test]
    fn keys_follow_the_revised_grammar() {
        for valid in [
            "foo@=1",
            "foo@@bar=1",
            "foo@bar@baz=1",
            "0tenant@sys=1",
            "9=1",
            "t@abcdefghijklmn=1",
            "a-b_c*d/e@f=1",
        ] {
            assert_eq!(state(valid), valid);
        }
        let long = format!("{}=1", "k".repeat(256));
        assert_eq!(state(&long), long);
        let long_at = format!("{}@{}=1", "t".repeat(200), "v".repeat(55));
        assert_eq!(state(&long_at), long_at, "no tenant/system split");
        for invalid in [
            "@foo=1",
            "_foo=1",
            "Foo=1",
            "foo.bar=1",
            "foo =1",
            "=1",
            "fo\u{e9}=1",
        ] {
            assert_eq!(state(invalid), "", "{invalid:?}");
        }
        assert_eq!(state(&format!("{}=1", "k".repeat(257))), "");
    }

    #[test]
    fn values_follow_the_grammar() {
        assert_eq!(
            state("a= leading"),
            "a= leading",
            "leading spaces are the value's"
        );
        assert_eq!(
            state("a=trailing  "),
            "a=trailing",
            "trailing spaces are OWS"
        );
        let all: String = (0x20u8..=0x7e)
            .filter(|b| *b != b',' && *b != b'=')
            .map(char::from)
            .collect();
        let member = format!("k={all}");
        assert_eq!(state(&member), member);
        for invalid in ["a=", "a=b=c", "a=\u{7f}", "a=\tb", "a=caf\u{e9}"] {
            assert_eq!(state(invalid), "", "{invalid:?}");
        }
        assert_eq!(state(&format!("a={}", "x".repeat(256))).len(), 258);
        assert_eq!(state(&format!("a={}", "x".repeat(257))), "");
    }

    #[test]
    fn an_invalid_member_is_dropped_alone() {
        assert_eq!(state("foo=1,bar"), "foo=1");
        assert_eq!(state("foo=,bar=3"), "bar=3");
        assert_eq!(state("Foo=1,bar=2,baz=a=b,qux=4"), "bar=2,qux=4");
        assert_eq!(state("=broken"), "");
    }

    #[test]
    fn a_repeated_key_keeps_its_first_member() {
        assert_eq!(state("foo=1,foo=2"), "foo=1");
        assert_eq!(state("foo=1,bar=2,foo=3,bar=4,baz=5"), "foo=1,bar=2,baz=5");
        assert_eq!(
            TracestateHeader::parse([&b"foo=1"[..], b"foo=2"]).as_str(),
            "foo=1"
        );
    }

    #[test]
    fn optional_whitespace_and_empty_members_are_not_kept() {
        assert_eq!(state("foo=1 \t , \t bar=2, \t baz=3"), "foo=1,bar=2,baz=3");
        assert_eq!(state(",, foo=1,,\t,bar=2 ,"), "foo=1,bar=2");
        assert_eq!(state(""), "");
        assert_eq!(state(" \t "), "");
    }

    #[test]
    fn more_than_32_members_drop_the_whole_header() {
        let members: Vec<String> = (0..32).map(|i| format!("k{i}=v")).collect();
        assert_eq!(state(&members.join(",")), members.join(","));
        let members: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
        assert_eq!(state(&members.join(",")), "");
        // Invalid members count: the header has 33 list members.
        let mut members: Vec<String> = (0..32).map(|i| format!("k{i}=v")).collect();
        members.push("Bad=1".into());
        assert_eq!(state(&members.join(",")), "");
        // Empty members do not.
        let members: Vec<String> = (0..32).map(|i| format!("k{i}=v,")).collect();
        assert_eq!(state(&members.concat()).split(',').count(), 32);
    }

    #[test]
    fn a_list_over_512_characters_loses_long_members_first_then_the_last() {
        let long = |k: &str| format!("{k}={}", "x".repeat(200));
        // 3 × 202 + short ones: the long ones go, right-most first, until it fits.
        let header = format!("a=1,{},b=2,{},{},c=3", long("l1"), long("l2"), long("l3"));
        assert_eq!(
            state(&header),
            format!("a=1,{},b=2,{},c=3", long("l1"), long("l2"))
        );
        // Only short members: removed from the end.
        let members: Vec<String> = (0..32)
            .map(|i| format!("k{i:02}={}", "v".repeat(20)))
            .collect();
        let kept = state(&members.join(","));
        assert!(kept.len() <= MAX_TRACESTATE_LEN);
        assert_eq!(kept, members[..kept.split(',').count()].join(","));
        assert_eq!(
            kept.split(',').count(),
            20,
            "20 × 24 + 19 commas = 499; 21 would be 524"
        );
    }

    #[test]
    fn the_sdk_carrier_gives_back_the_exact_header() {
        for header in [
            "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
            "foo@@bar=1,x=2",
            "t@abcdefghijklmn=1",
            "w3c-tracestate/0=forged,a=1",
        ] {
            let parsed = parse_tracestate(header.as_bytes());
            assert_eq!(parsed.as_str(), header);
            let carried = parsed.to_trace_state();
            assert_eq!(tracestate_header(&carried), header);
            assert_eq!(TracestateHeader::from_trace_state(&carried), parsed);
        }
        // What OpenTelemetry 0.33's `TraceState` refuses (kept as a test so an upgrade that
        // fixes it shows) and this module accepts.
        for refused in [
            "foo@@bar=1",
            "foo@bar@baz=1",
            "a@_b=1",
            "t@abcdefghijklmno=1",
        ] {
            assert!(refused.parse::<TraceState>().is_err(), "{refused}");
            assert_eq!(parse_tracestate(refused.as_bytes()).as_str(), refused);
        }
        // Natively when the SDK accepts every key: its own `header()` agrees.
        let native = parse_tracestate(b"congo=t61rcWkgMzE,rojo=00f067aa0ba902b7").to_trace_state();
        assert_eq!(native.header(), "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
        // A carrier never reads as a valid header (it fails closed in the SDK's propagators).
        let carrier = parse_tracestate(b"foo@@bar=1").to_trace_state();
        assert!(http::HeaderValue::from_str(&carrier.header()).is_err());
        assert_eq!(tracestate_header(&TraceState::NONE), "");
    }
}
