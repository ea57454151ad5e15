//! W3C Trace Context: strict parsing of `traceparent`, parsing and re-emission of
//! `tracestate`, formatting of `traceparent`.
//!
//! Parsing follows the current W3C Trace Context texts (Level 1, and Level 2 for the `random`
//! flag and the revised `tracestate` key grammar) and never fails a request: an invalid
//! `traceparent` is ignored exactly as if it were absent, and `tracestate` is cleaned member by
//! member ([`tracestate`], where the list's rules and its carrying through the SDK are).

mod tracestate;

use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId};

pub use tracestate::{
    MAX_TRACESTATE_LEN, MAX_TRACESTATE_MEMBERS, TRUNCATE_FIRST_LONGER_THAN, TracestateHeader,
    parse_tracestate, tracestate_header,
};

/// Trace Context Level 2's `random` trace flag: the trace id's right-most 7 bytes are random.
pub const RANDOM_FLAG: u8 = 0x02;

/// The caller's span context from a valid `traceparent`, plus the valid members of its
/// `tracestate`.
///
/// Returns `None` for a missing or invalid `traceparent`: version `ff`, all-zero ids, wrong
/// lengths, uppercase hex, or (for version `00`) trailing data are all invalid. `tracestate` is
/// only read when the `traceparent` is valid, and its problems never affect the `traceparent`.
pub fn extract(traceparent: Option<&[u8]>, tracestate: Option<&[u8]>) -> Option<SpanContext> {
    let (trace_id, span_id, flags) = parse_traceparent(traceparent?)?;
    let trace_state = TracestateHeader::parse(tracestate).to_trace_state();
    Some(SpanContext::new(
        trace_id,
        span_id,
        flags,
        true,
        trace_state,
    ))
}

/// [`extract`] over request headers, with the specification's rules for repeated fields: more
/// than one `traceparent` field makes the context invalid (a new trace starts), and several
/// `tracestate` fields are one list, in order.
pub fn extract_headers(headers: &http::HeaderMap) -> Option<SpanContext> {
    let mut traceparents = headers.get_all(&TRACEPARENT).iter();
    let traceparent = match (traceparents.next(), traceparents.next()) {
        (Some(value), None) => value.as_bytes(),
        _ => return None,
    };
    let (trace_id, span_id, flags) = parse_traceparent(traceparent)?;
    let fields = headers.get_all(&TRACESTATE).iter().map(|v| v.as_bytes());
    let trace_state = TracestateHeader::parse(fields).to_trace_state();
    Some(SpanContext::new(
        trace_id,
        span_id,
        flags,
        true,
        trace_state,
    ))
}

/// The `traceparent` header.
pub static TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");
/// The `tracestate` header.
pub static TRACESTATE: http::HeaderName = http::HeaderName::from_static("tracestate");

/// Parses a `traceparent` value into its ids and flags. Optional whitespace (spaces, tabs)
/// around the value is not part of it.
pub fn parse_traceparent(value: &[u8]) -> Option<(TraceId, SpanId, TraceFlags)> {
    let value = trim_ows(value);
    // version "-" trace-id "-" parent-id "-" trace-flags = 2+1+32+1+16+1+2 = 55 bytes
    if value.len() < 55 {
        return None;
    }
    let version = hex_u8(&value[0..2])?;
    if version == 0xff {
        return None;
    }
    if version == 0 && value.len() != 55 {
        return None;
    }
    // A future version may append fields, which must start with '-'.
    if value.len() > 55 && value[55] != b'-' {
        return None;
    }
    if value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
        return None;
    }
    let trace_id = hex_u128(&value[3..35])?;
    let span_id = hex_u64(&value[36..52])?;
    let flags = hex_u8(&value[53..55])?;
    if trace_id == 0 || span_id == 0 {
        return None;
    }
    // The sampled bit and Level 2's `random` bit are propagated as received (a participant
    // continuing a trace MUST keep `random`); bits not yet defined are cleared.
    let flags = TraceFlags::new(flags & (TraceFlags::SAMPLED.to_u8() | RANDOM_FLAG));
    Some((TraceId::from(trace_id), SpanId::from(span_id), flags))
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Formats `traceparent` for a span context: `00-{trace_id}-{span_id}-{flags}`.
pub fn format_traceparent(trace_id: TraceId, span_id: SpanId, flags: TraceFlags) -> [u8; 55] {
    let mut out = [0u8; 55];
    out[0] = b'0';
    out[1] = b'0';
    out[2] = b'-';
    write_hex(&mut out[3..35], &trace_id.to_bytes());
    out[35] = b'-';
    write_hex(&mut out[36..52], &span_id.to_bytes());
    out[52] = b'-';
    write_hex(&mut out[53..55], &[flags.to_u8()]);
    out
}

/// A version-00 `traceparent` from ids already in lowercase hex (a request context keeps them
/// so, for its log lines).
pub(crate) fn traceparent_from_hex(
    trace_id: &[u8; 32],
    span_id: &[u8; 16],
    flags: TraceFlags,
) -> [u8; 55] {
    let mut out = [0u8; 55];
    out[..3].copy_from_slice(b"00-");
    out[3..35].copy_from_slice(trace_id);
    out[35] = b'-';
    out[36..52].copy_from_slice(span_id);
    out[52] = b'-';
    write_hex(&mut out[53..55], &[flags.to_u8()]);
    out
}

/// Lowercase hex of a trace id into a fixed buffer (no allocation).
pub(crate) fn trace_id_hex(trace_id: TraceId) -> [u8; 32] {
    let mut out = [0u8; 32];
    write_hex(&mut out, &trace_id.to_bytes());
    out
}

/// Lowercase hex of a span id into a fixed buffer (no allocation).
pub(crate) fn span_id_hex(span_id: SpanId) -> [u8; 16] {
    let mut out = [0u8; 16];
    write_hex(&mut out, &span_id.to_bytes());
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn write_hex(out: &mut [u8], bytes: &[u8]) {
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = HEX[(b >> 4) as usize];
        out[2 * i + 1] = HEX[(b & 0xf) as usize];
    }
}

/// Each byte's value as a lowercase hex digit, or `0xff` for a byte that is not one (W3C Trace
/// Context allows lowercase only).
const HEX_VALUES: [u8; 256] = {
    let mut table = [0xff; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// The number `s` (at most 32 lowercase hex digits) spells, or `None` if any byte is not a
/// digit. One table lookup per byte, no branch per digit.
fn hex_value(s: &[u8]) -> Option<u128> {
    let mut value = 0u128;
    let mut invalid = 0u8;
    for &b in s {
        let digit = HEX_VALUES[usize::from(b)];
        invalid |= digit;
        value = value << 4 | u128::from(digit & 0xf);
    }
    (invalid & 0xf0 == 0).then_some(value)
}

fn hex_u8(s: &[u8]) -> Option<u8> {
    hex_value(&s[..2]).map(|v| v as u8)
}

fn hex_u64(s: &[u8]) -> Option<u64> {
    hex_value(&s[..16]).map(|v| v as u64)
}

fn hex_u128(s: &[u8]) -> Option<u128> {
    hex_value(&s[..32])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const VALID: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn valid_traceparent_round_trips() {
        let (t, s, f) = parse_traceparent(VALID.as_bytes()).unwrap();
        assert!(f.is_sampled());
        assert_eq!(&format_traceparent(t, s, f)[..], VALID.as_bytes());
        assert_eq!(
            &traceparent_from_hex(&trace_id_hex(t), &span_id_hex(s), f)[..],
            VALID.as_bytes()
        );
    }

    #[test]
    fn invalid_traceparents_are_ignored() {
        for bad in [
            "",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            "00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "0g-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01x",
        ] {
            assert!(parse_traceparent(bad.as_bytes()).is_none(), "{bad}");
        }
    }

    #[test]
    fn optional_whitespace_around_a_traceparent_is_not_part_of_it() {
        let padded = format!(" \t{VALID}\t ");
        assert!(parse_traceparent(padded.as_bytes()).is_some());
    }

    #[test]
    fn the_random_flag_is_kept_and_undefined_flags_are_cleared() {
        let (_, _, f) =
            parse_traceparent(b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03").unwrap();
        assert_eq!(f.to_u8(), 0x03);
        let (_, _, f) =
            parse_traceparent(b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-fe").unwrap();
        assert_eq!(f.to_u8(), 0x02);
    }

    #[test]
    fn future_versions_may_append_fields() {
        let v = "cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what-the-future-holds";
        assert!(parse_traceparent(v.as_bytes()).is_some());
    }

    #[test]
    fn bad_tracestate_keeps_traceparent() {
        let sc = extract(Some(VALID.as_bytes()), Some(b"=broken")).unwrap();
        assert!(sc.is_valid());
        assert!(tracestate_header(sc.trace_state()).is_empty());
    }

    #[test]
    fn repeated_fields_are_one_list() {
        let mut headers = http::HeaderMap::new();
        headers.insert(&TRACEPARENT, http::HeaderValue::from_static(VALID));
        headers.append(&TRACESTATE, http::HeaderValue::from_static("foo=1,bar=2"));
        headers.append(&TRACESTATE, http::HeaderValue::from_static(""));
        headers.append(&TRACESTATE, http::HeaderValue::from_static("baz@@=3"));
        let context = extract_headers(&headers).unwrap();
        assert_eq!(
            tracestate_header(context.trace_state()),
            "foo=1,bar=2,baz@@=3"
        );
    }
}

/// Property tests (`PROPTEST_CASES` sets the number of cases; `scripts/test.sh` bounds it).
#[cfg(test)]
mod proptests {
    #![allow(clippy::unwrap_used)]
    use super::tracestate::{valid_key, valid_value};
    use super::*;
    use proptest::prelude::*;

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9][a-z0-9_*/@-]{0,20}",
            "[a-z0-9][a-z0-9_*/-]{0,10}@[a-z0-9_*/@-]{0,20}",
        ]
    }

    fn value() -> impl Strategy<Value = String> {
        // printable ASCII except ',' and '=', not ending in a space
        "[ -+\\--<>-~]{0,15}[!-+\\--<>-~]"
    }

    proptest! {
        #[test]
        fn traceparent_parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
            let _ = parse_traceparent(&bytes);
        }

        #[test]
        fn near_valid_traceparents_never_panic(
            mut bytes in Just(b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_vec()),
            edits in proptest::collection::vec((0usize..60, any::<u8>()), 1..4),
        ) {
            for (at, byte) in edits {
                if at < bytes.len() { bytes[at] = byte } else { bytes.push(byte) }
            }
            if let Some((t, s, f)) = parse_traceparent(&bytes) {
                prop_assert!(t != TraceId::INVALID && s != SpanId::INVALID);
                prop_assert_eq!(f.to_u8() & !(TraceFlags::SAMPLED.to_u8() | RANDOM_FLAG), 0);
            }
        }

        #[test]
        fn valid_traceparents_round_trip(
            trace in 1u128..,
            span in 1u64..,
            flags in any::<u8>(),
        ) {
            let text = format!("00-{trace:032x}-{span:016x}-{flags:02x}");
            let (t, s, f) = parse_traceparent(text.as_bytes()).unwrap();
            prop_assert_eq!(t, TraceId::from(trace));
            prop_assert_eq!(s, SpanId::from(span));
            prop_assert_eq!(f.is_sampled(), flags & 1 == 1);
            prop_assert_eq!(f.to_u8() & RANDOM_FLAG, flags & RANDOM_FLAG);
            let formatted = format_traceparent(t, s, f);
            prop_assert_eq!(&formatted[..52], &text.as_bytes()[..52]);
            let upper = text.to_ascii_uppercase();
            if upper != text {
                prop_assert!(parse_traceparent(upper.as_bytes()).is_none());
            }
        }

        /// Whatever comes in, what goes out is a valid list within the limits, stable when
        /// parsed again, and carried through the SDK's `TraceState` byte for byte.
        #[test]
        fn any_tracestate_becomes_a_valid_bounded_list(
            text in "[ -~\\t]{0,1200}",
        ) {
            let parsed = parse_tracestate(text.as_bytes());
            let header = parsed.as_str();
            prop_assert!(header.len() <= MAX_TRACESTATE_LEN);
            prop_assert!(parsed.members().count() <= MAX_TRACESTATE_MEMBERS);
            let mut keys: Vec<&str> = Vec::new();
            for (key, value) in parsed.members() {
                prop_assert!(valid_key(key.as_bytes()) && valid_value(value.as_bytes()));
                prop_assert!(!keys.contains(&key));
                keys.push(key);
            }
            let again = parse_tracestate(header.as_bytes());
            prop_assert_eq!(again.as_str(), header);
            prop_assert_eq!(tracestate_header(&parsed.to_trace_state()), header);
        }

        #[test]
        fn arbitrary_bytes_never_make_a_tracestate_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..600),
        ) {
            let parsed = parse_tracestate(&bytes);
            prop_assert!(parsed.as_str().is_ascii());
            let _ = extract(Some(&bytes), Some(&bytes));
        }

        /// A valid list of distinct keys within the limits is kept exactly, in order; over the
        /// length limit, what is kept is the list minus whole members, order preserved.
        #[test]
        fn valid_lists_are_kept_in_order(
            members in proptest::collection::vec((key(), value()), 1..=MAX_TRACESTATE_MEMBERS),
        ) {
            let mut seen = std::collections::HashSet::new();
            let members: Vec<(String, String)> =
                members.into_iter().filter(|(k, _)| seen.insert(k.clone())).collect();
            let list: Vec<String> = members.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let header = list.join(",");
            let parsed = parse_tracestate(header.as_bytes());
            if header.len() <= MAX_TRACESTATE_LEN {
                prop_assert_eq!(parsed.as_str(), header.as_str());
            } else {
                let kept: Vec<&str> = parsed.as_str().split(',').collect();
                let mut rest = list.iter();
                for member in &kept {
                    prop_assert!(rest.any(|m| m == member), "{} out of order", member);
                }
                prop_assert!(parsed.as_str().len() <= MAX_TRACESTATE_LEN);
            }
        }

        #[test]
        fn lists_over_32_members_are_dropped_and_duplicates_keep_the_first(
            members in proptest::collection::btree_set("[a-z]{1,3}", MAX_TRACESTATE_MEMBERS + 1..60),
            duplicate in "[a-z]{1,3}",
        ) {
            let list: Vec<String> = members.iter().map(|k| format!("{k}=1")).collect();
            prop_assert!(parse_tracestate(list.join(",").as_bytes()).is_empty());
            let other = if duplicate == "x" { "y" } else { "x" };
            let twice = format!("{duplicate}=1,{other}=2,{duplicate}=3");
            let expected = format!("{duplicate}=1,{other}=2");
            let parsed = parse_tracestate(twice.as_bytes());
            prop_assert_eq!(parsed.as_str(), expected.as_str());
        }

        #[test]
        fn repeated_tracestate_fields_equal_one_joined_field(
            members in proptest::collection::vec((key(), value()), 1..40),
            cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..4),
        ) {
            let list: Vec<String> = members.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let mut at: Vec<usize> = cuts.iter().map(|c| c.index(list.len())).collect();
            at.sort_unstable();
            at.dedup();
            let mut headers = http::HeaderMap::new();
            headers.insert(
                &TRACEPARENT,
                http::HeaderValue::from_static("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            );
            let mut start = 0;
            for end in at.into_iter().chain(std::iter::once(list.len())) {
                if end > start {
                    let field = list[start..end].join(",");
                    headers.append(&TRACESTATE, http::HeaderValue::from_str(&field).unwrap());
                    start = end;
                }
            }
            let joined = list.join(",");
            let expected = parse_tracestate(joined.as_bytes());
            let got = extract_headers(&headers).unwrap();
            prop_assert_eq!(tracestate_header(got.trace_state()), expected.as_str());
        }

        #[test]
        fn extracted_contexts_are_valid_and_remote(
            trace in 1u128..,
            span in 1u64..,
            state in "[ -~]{0,80}",
        ) {
            let parent = format!("00-{trace:032x}-{span:016x}-01");
            let context = extract(Some(parent.as_bytes()), Some(state.as_bytes())).unwrap();
            prop_assert!(context.is_valid() && context.is_remote());
            let kept = tracestate_header(context.trace_state());
            let expected = parse_tracestate(state.as_bytes());
            prop_assert_eq!(kept, expected.as_str());
        }
    }
}
