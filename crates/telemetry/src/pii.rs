//! PII modes, keyed pseudonyms and redaction.
//!
//! The rules (one place, applied to every signal):
//! - user id: `enduser.pseudo.id` = HMAC-SHA256(key, id) (first 16 bytes, hex) in `pseudonym`,
//!   raw `enduser.id` in `full`, nothing in `off`;
//! - email: in the log fields the application names as email fields
//!   ([`PiiPolicy::with_email_fields`]), only its domain, in `pseudonym` and `full`; nothing in
//!   `off`. An email anywhere else is free text (below);
//! - client address: truncated to /24 (IPv4) or /48 (IPv6) in `pseudonym`, full in `full`,
//!   nothing in `off`;
//! - tokens, passwords, `Authorization` / `Cookie` values, request bodies: never, in any mode.
//!   A field whose name says it holds a secret keeps its name with the value `[REDACTED]`;
//! - free text (error messages, log messages): emails, bearer tokens and card-like numbers
//!   are replaced before they leave the process.

use std::borrow::Cow;
use std::net::IpAddr;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::config::PiiMode;

/// The value that replaces a secret, keeping the shape of the data visible.
pub const REDACTED: &str = "[REDACTED]";

/// The PII policy of one telemetry instance.
#[derive(Clone)]
pub struct PiiPolicy {
    mode: PiiMode,
    key: Hmac<Sha256>,
    email_fields: &'static [&'static str],
}

impl std::fmt::Debug for PiiPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PiiPolicy")
            .field("mode", &self.mode)
            .field("email_fields", &self.email_fields)
            .finish_non_exhaustive()
    }
}

impl PiiPolicy {
    /// A policy for `mode`; without `key` pseudonyms use a random per-process key, so they are
    /// stable only until restart (the cloud persona refuses to start without a key).
    pub fn new(mode: PiiMode, key: Option<&[u8]>) -> Self {
        let random_key: [u8; 32];
        let key = match key {
            Some(key) => key,
            None => {
                random_key = rand::random();
                &random_key
            }
        };
        let key = match Hmac::<Sha256>::new_from_slice(key) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC accepts keys of any length"),
        };
        Self {
            mode,
            key,
            email_fields: &[],
        }
    }

    /// Names the log fields whose values are email addresses (the application's vocabulary:
    /// the library knows none). Such a field keeps only the address's domain, as
    /// [`Self::email_domain`] allows; an email in any other field is scrubbed like all free text.
    /// Names match exactly.
    ///
    /// ```
    /// use telemetry::config::PiiMode;
    /// use telemetry::pii::PiiPolicy;
    ///
    /// let pii = PiiPolicy::new(PiiMode::Pseudonym, None).with_email_fields(&["email"]);
    /// assert!(pii.is_email_field("email"));
    /// assert!(!pii.is_email_field("email_verified"));
    /// ```
    pub fn with_email_fields(mut self, fields: &'static [&'static str]) -> Self {
        self.email_fields = fields;
        self
    }

    /// Whether `name` is one of the fields named by [`Self::with_email_fields`].
    pub fn is_email_field(&self, name: &str) -> bool {
        self.email_fields.contains(&name)
    }

    /// The mode this policy applies.
    pub fn mode(&self) -> PiiMode {
        self.mode
    }

    /// The keyed pseudonym of `user_id`: 32 lowercase hex characters.
    pub fn pseudonym(&self, user_id: &str) -> String {
        let mut mac = self.key.clone();
        mac.update(user_id.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut out = String::with_capacity(32);
        for b in &digest[..16] {
            out.push(char::from(HEX[(b >> 4) as usize]));
            out.push(char::from(HEX[(b & 0xf) as usize]));
        }
        out
    }

    /// The user attribute for telemetry: `("enduser.pseudo.id", pseudonym)`, `("enduser.id", id)`
    /// or nothing, per mode.
    pub fn user_attribute(&self, user_id: &str) -> Option<(&'static str, String)> {
        match self.mode {
            PiiMode::Pseudonym => Some(("enduser.pseudo.id", self.pseudonym(user_id))),
            PiiMode::Full => Some(("enduser.id", user_id.to_owned())),
            PiiMode::Off => None,
        }
    }

    /// The client address as telemetry may show it.
    pub fn client_address(&self, ip: IpAddr) -> Option<String> {
        let mut out = String::new();
        self.write_client_address(ip, &mut out).then_some(out)
    }

    /// Appends the client address as telemetry may show it to `out`; `false` (nothing
    /// appended) when the mode shows none.
    pub(crate) fn write_client_address(&self, ip: IpAddr, out: &mut String) -> bool {
        use std::fmt::Write as _;
        match (self.mode, ip) {
            (PiiMode::Off, _) => return false,
            // IPv4 (the common case) without `fmt`: formatting through `Display` cost about
            // 1,300 instructions per request (benchmarks.md).
            (PiiMode::Full, IpAddr::V4(v4)) => ipv4_text(v4.octets(), out),
            (PiiMode::Full, IpAddr::V6(v6)) => {
                let _ = write!(out, "{v6}");
            }
            (PiiMode::Pseudonym, IpAddr::V4(v4)) => {
                let [a, b, c, _] = v4.octets();
                ipv4_text([a, b, c, 0], out);
            }
            (PiiMode::Pseudonym, IpAddr::V6(v6)) => {
                let s = v6.segments();
                let _ = write!(
                    out,
                    "{}",
                    std::net::Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0)
                );
            }
        }
        true
    }

    /// The domain of an email address, when the mode allows it.
    pub fn email_domain<'a>(&self, email: &'a str) -> Option<&'a str> {
        match self.mode {
            PiiMode::Off => None,
            PiiMode::Pseudonym | PiiMode::Full => email.rsplit_once('@').map(|(_, domain)| domain),
        }
    }
}

/// Dotted-decimal text of an IPv4 address (as `Ipv4Addr`'s `Display`).
fn ipv4_text(octets: [u8; 4], out: &mut String) {
    for (i, octet) in octets.into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        if octet >= 100 {
            out.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            out.push(char::from(b'0' + octet / 10 % 10));
        }
        out.push(char::from(b'0' + octet % 10));
    }
}

/// Whether a field or header name says its value is a secret.
pub fn is_secret_key(key: &str) -> bool {
    const SECRET_WORDS: [&str; 10] = [
        "password",
        "passwd",
        "secret",
        "token",
        "authorization",
        "cookie",
        "api_key",
        "apikey",
        "credential",
        "session",
    ];
    let lower = key.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|word| lower.contains(word))
}

/// Replaces emails, bearer tokens and card-like numbers (runs of 13 or more digits, single
/// spaces or dashes allowed between groups) in free text.
///
/// ```
/// use telemetry::pii::scrub;
/// assert_eq!(scrub("user ann@example.com failed"), "user [REDACTED_EMAIL] failed");
/// assert_eq!(scrub("Authorization: Bearer abc.def"), "Authorization: Bearer [REDACTED]");
/// assert_eq!(scrub("card 4111 1111 1111 1111 declined"), "card [REDACTED_NUMBER] declined");
/// assert_eq!(scrub("nothing to see"), "nothing to see");
/// ```
pub fn scrub(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let suspicious = bytes.contains(&b'@')
        || contains_ignore_case(bytes, b"bearer")
        || bytes.windows(13).any(|w| w.iter().all(u8::is_ascii_digit))
        || digit_count(bytes) >= 13;
    if !suspicious {
        return Cow::Borrowed(text);
    }
    let mut out = scrub_emails(text);
    out = scrub_bearer(&out);
    out = scrub_numbers(&out);
    Cow::Owned(out)
}

fn digit_count(bytes: &[u8]) -> usize {
    bytes.iter().filter(|b| b.is_ascii_digit()).count()
}

fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

fn is_local_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn is_domain_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-')
}

fn scrub_emails(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'@' {
            let mut start = i;
            while start > copied && is_local_char(bytes[start - 1]) {
                start -= 1;
            }
            let mut end = i + 1;
            while end < bytes.len() && is_domain_char(bytes[end]) {
                end += 1;
            }
            let domain = &text[i + 1..end];
            if start < i && domain.contains('.') {
                out.push_str(&text[copied..start]);
                out.push_str("[REDACTED_EMAIL]");
                copied = end;
                i = end;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    out
}

fn scrub_bearer(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i + 7 <= bytes.len() {
        if bytes[i..i + 6].eq_ignore_ascii_case(b"bearer")
            && (bytes[i + 6] == b' ' || bytes[i + 6] == b'=')
        {
            let token_start = i + 7;
            let mut end = token_start;
            while end < bytes.len()
                && !bytes[end].is_ascii_whitespace()
                && bytes[end] != b','
                && bytes[end] != b'"'
            {
                end += 1;
            }
            if end > token_start {
                out.push_str(&text[copied..token_start]);
                out.push_str(REDACTED);
                copied = end;
                i = end;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    out
}

fn scrub_numbers(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            // A run of digits with single spaces or dashes between groups.
            let start = i;
            let mut end = i;
            let mut digits = 0;
            let mut j = i;
            while j < bytes.len() {
                if bytes[j].is_ascii_digit() {
                    digits += 1;
                    j += 1;
                    end = j;
                } else if (bytes[j] == b' ' || bytes[j] == b'-')
                    && j + 1 < bytes.len()
                    && bytes[j + 1].is_ascii_digit()
                {
                    j += 1;
                } else {
                    break;
                }
            }
            // 13–19 digits is a card number; a longer run may hide one behind digits that
            // precede it (`item 12 4111 1111 1111 1111`), so it goes too.
            if digits >= 13 {
                out.push_str(&text[copied..start]);
                out.push_str("[REDACTED_NUMBER]");
                copied = end;
            }
            i = end.max(i + 1);
            continue;
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_stable_for_a_key_and_differ_across_keys() {
        let a = PiiPolicy::new(PiiMode::Pseudonym, Some(b"key-one-0123456789"));
        let b = PiiPolicy::new(PiiMode::Pseudonym, Some(b"key-one-0123456789"));
        let c = PiiPolicy::new(PiiMode::Pseudonym, Some(b"key-two-0123456789"));
        assert_eq!(a.pseudonym("42"), b.pseudonym("42"));
        assert_ne!(a.pseudonym("42"), c.pseudonym("42"));
        assert_eq!(a.pseudonym("42").len(), 32);
        assert!(!a.pseudonym("42").contains("42") || a.pseudonym("42") != "42");
    }

    #[test]
    fn user_attribute_follows_the_mode() {
        let key = Some(&b"0123456789abcdef"[..]);
        assert_eq!(PiiPolicy::new(PiiMode::Off, key).user_attribute("7"), None);
        assert_eq!(
            PiiPolicy::new(PiiMode::Full, key).user_attribute("7"),
            Some(("enduser.id", "7".to_owned()))
        );
        let (k, v) = PiiPolicy::new(PiiMode::Pseudonym, key)
            .user_attribute("7")
            .unwrap_or_default();
        assert_eq!(k, "enduser.pseudo.id");
        assert_ne!(v, "7");
    }

    #[test]
    fn client_addresses_are_truncated_in_pseudonym_mode() {
        let p = PiiPolicy::new(PiiMode::Pseudonym, None);
        assert_eq!(
            p.client_address("203.0.113.77".parse().unwrap_or(IpAddr::from([0; 4])))
                .as_deref(),
            Some("203.0.113.0")
        );
        assert_eq!(
            p.client_address(
                "2001:db8:abcd:12::1"
                    .parse()
                    .unwrap_or(IpAddr::from([0; 4]))
            )
            .as_deref(),
            Some("2001:db8:abcd::")
        );
        assert_eq!(
            PiiPolicy::new(PiiMode::Off, None).client_address(IpAddr::from([1, 2, 3, 4])),
            None
        );
    }

    #[test]
    fn ipv4_text_is_what_display_writes() {
        for octets in [
            [0, 0, 0, 0],
            [127, 0, 0, 1],
            [10, 99, 100, 255],
            [203, 0, 113, 9],
        ] {
            let mut text = String::new();
            ipv4_text(octets, &mut text);
            assert_eq!(text, std::net::Ipv4Addr::from(octets).to_string());
        }
        let full = PiiPolicy::new(PiiMode::Full, None);
        assert_eq!(
            full.client_address(IpAddr::from([192, 168, 7, 42]))
                .as_deref(),
            Some("192.168.7.42")
        );
    }

    #[test]
    fn secrets_are_recognised_by_name() {
        for key in [
            "password",
            "Authorization",
            "api_key",
            "session_id",
            "X-Auth-Token",
            "cookie",
        ] {
            assert!(is_secret_key(key), "{key}");
        }
        assert!(!is_secret_key("item_id"));
    }

    #[test]
    fn scrubbing_leaves_clean_text_alone_and_catches_the_rest() {
        assert!(matches!(scrub("job 12 failed"), Cow::Borrowed(_)));
        assert_eq!(scrub("a@b"), "a@b");
        assert_eq!(
            scrub("mail to x.y+z@mail.example.org now"),
            "mail to [REDACTED_EMAIL] now"
        );
        assert_eq!(scrub("token=bearer=abc"), "token=bearer=[REDACTED]");
        assert_eq!(scrub("pan 4111-1111-1111-1111"), "pan [REDACTED_NUMBER]");
        assert_eq!(scrub("id 1234567890"), "id 1234567890");
    }
}

/// Property tests (`PROPTEST_CASES` sets the number of cases; `scripts/test.sh` bounds it).
#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    /// Text around a secret: anything, separated from it by a space.
    fn surrounding() -> impl Strategy<Value = String> {
        proptest::collection::vec(any::<char>(), 0..40).prop_map(|c| c.into_iter().collect())
    }

    proptest! {
        #[test]
        fn scrubbing_never_panics(text in proptest::collection::vec(any::<char>(), 0..200)) {
            let text: String = text.into_iter().collect();
            let out = scrub(&text);
            if !text.contains('@') && !text.to_ascii_lowercase().contains("bearer")
                && !text.bytes().any(|b| b.is_ascii_digit()) {
                prop_assert_eq!(out.as_ref(), text.as_str());
            }
        }

        #[test]
        fn emails_never_survive(
            before in surrounding(),
            email in "[a-z0-9._%+-]{1,20}@[a-z0-9-]{1,20}\\.[a-z]{2,6}",
            after in surrounding(),
        ) {
            let text = format!("{before} {email} {after}");
            prop_assert!(!scrub(&text).contains(&email), "{}", text);
        }

        #[test]
        fn bearer_tokens_never_survive(
            before in surrounding(),
            scheme in "(?i)bearer",
            token in "[A-Za-z0-9._~+/-]{16,40}",
            after in surrounding(),
        ) {
            let text = format!("{before} {scheme} {token} {after}");
            prop_assert!(!scrub(&text).contains(&token), "{}", text);
        }

        #[test]
        fn card_numbers_never_survive(
            before in "(\\PC{0,20} )?[0-9]{0,8}",
            groups in proptest::collection::vec("[0-9]{4}", 4),
            separator in "[ -]?",
            after in surrounding(),
        ) {
            let card = groups.join(&separator);
            let text = format!("{before} {card} {after}");
            prop_assert!(!scrub(&text).contains(&card), "{}", text);
        }
    }
}
