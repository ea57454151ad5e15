//! Request ids: accept a caller's well-formed `x-request-id`, otherwise generate a UUIDv7.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// The request id header, read on the way in and written on the way out.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Longest accepted incoming request id.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// An incoming id is accepted when it is 1–128 characters of `[A-Za-z0-9._:-]`.
pub fn is_valid_request_id(value: &[u8]) -> bool {
    !value.is_empty()
        && value.len() <= MAX_REQUEST_ID_LEN
        && value
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// A new UUIDv7 (time-ordered, RFC 9562) in its 36-character text form.
pub fn generate_request_id() -> Arc<str> {
    generate_request_id_at(SystemTime::now())
}

/// A new UUIDv7 for a request that arrived at `now` (the middleware's clock reading, so the
/// request path reads the wall clock once).
pub(crate) fn generate_request_id_at(now: SystemTime) -> Arc<str> {
    // Built in a stack buffer: one allocation for the result.
    let millis = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let random = fast_random_u128();
    let mut value: u128 = (u128::from(millis) & 0xffff_ffff_ffff) << 80;
    value |= 0x7 << 76; // version 7
    value |= (random & 0x0fff) << 64; // rand_a
    value |= 0b10 << 62; // variant
    value |= random >> 66; // rand_b (62 bits)
    let mut out = [0u8; 36];
    let bytes = value.to_be_bytes();
    let mut pos = 0;
    for (i, byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out[pos] = b'-';
            pos += 1;
        }
        out[pos] = HEX[usize::from(byte >> 4)];
        out[pos + 1] = HEX[usize::from(byte & 0xf)];
        pos += 2;
    }
    // Only ASCII hex digits and dashes were written.
    Arc::from(std::str::from_utf8(&out).unwrap_or_default())
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Request ids need uniqueness, not secrecy: a per-thread SplitMix64 stream seeded once from
/// the OS-backed generator is enough and costs a few instructions.
pub(crate) fn fast_random_u128() -> u128 {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new(rand::random());
    }
    fn next(state: &Cell<u64>) -> u64 {
        let mut z = state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        state.set(z);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    STATE.with(|state| (u128::from(next(state)) << 64) | u128::from(next(state)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_uuid_v7_and_valid() {
        let id = generate_request_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "7");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"));
        assert!(is_valid_request_id(id.as_bytes()));
        assert_ne!(id, generate_request_id());
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'));
    }

    #[test]
    fn hostile_ids_are_rejected() {
        assert!(!is_valid_request_id(b""));
        assert!(!is_valid_request_id(&[b'a'; 129]));
        assert!(!is_valid_request_id(b"abc\ndef"));
        assert!(!is_valid_request_id(b"a b"));
        assert!(!is_valid_request_id("caf\u{e9}".as_bytes()));
        assert!(is_valid_request_id(b"req-1:2.3_4"));
    }
}

/// Property tests (`PROPTEST_CASES` sets the number of cases; `scripts/test.sh` bounds it).
#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn accepted_ids_are_safe_in_headers_and_log_lines(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            if is_valid_request_id(&bytes) {
                prop_assert!((1..=MAX_REQUEST_ID_LEN).contains(&bytes.len()));
                prop_assert!(http::HeaderValue::from_bytes(&bytes).is_ok());
                let inert = bytes.iter().all(|b| {
                    b.is_ascii_graphic() && !matches!(b, b'"' | b'\\' | b'=' | b',' | b'{' | b'}')
                });
                prop_assert!(inert);
            }
        }

        #[test]
        fn well_formed_ids_are_accepted(id in "[A-Za-z0-9._:-]{1,128}") {
            prop_assert!(is_valid_request_id(id.as_bytes()));
        }

        #[test]
        fn ids_with_any_other_character_are_refused(
            prefix in "[A-Za-z0-9._:-]{0,60}",
            bad in "[^A-Za-z0-9._:-]",
            suffix in "[A-Za-z0-9._:-]{0,60}",
        ) {
            let id = format!("{prefix}{bad}{suffix}");
            prop_assert!(!is_valid_request_id(id.as_bytes()));
        }
    }
}
