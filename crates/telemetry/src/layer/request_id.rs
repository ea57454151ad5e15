//! Request ids: accept a caller's well-formed `x-request-id`, otherwise generate a UUIDv7.

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
pub fn generate_request_id() -> String {
    // Built in a stack buffer: one allocation for the result.
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let random: u128 = rand::random();
    let mut value: u128 = (u128::from(millis) & 0xffff_ffff_ffff) << 80;
    value |= 0x7 << 76; // version 7
    value |= (random & 0x0fff) << 64; // rand_a
    value |= 0b10 << 62; // variant
    value |= random >> 66; // rand_b (62 bits)
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 36];
    let mut nibble = 0;
    for (i, slot) in out.iter_mut().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            *slot = b'-';
            continue;
        }
        *slot = HEX[((value >> (124 - 4 * nibble)) & 0xf) as usize];
        nibble += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
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
