//! [`UserEmail`]: an email address that was checked when it was made.

use std::fmt;

/// Longest address (RFC 5321's path limit minus the angle brackets).
const MAX_LEN: usize = 254;
/// Longest local part (RFC 5321).
const MAX_LOCAL_LEN: usize = 64;
/// Longest domain label (RFC 1035).
const MAX_LABEL_LEN: usize = 63;

/// A syntactically valid email address, normalised to lower case (so `Ann@Example.com` and
/// `ann@example.com` are one account).
///
/// The accepted syntax is the practical subset of RFC 5321 that mail providers hand out:
/// a dot-atom local part (letters, digits and ``!#$%&'*+-/=?^_`{|}~``, dots between them) and
/// a domain of at least two DNS labels (internationalised domains in their `xn--` form).
/// Quoted local parts and IP-literal domains are refused.
///
/// `Debug` never shows the address: it is personal data and must not reach telemetry.
///
/// ```
/// use shop::accounts::UserEmail;
///
/// let email = UserEmail::parse("  Ann.Lee+shop@Example.COM ").unwrap();
/// assert_eq!(email.as_str(), "ann.lee+shop@example.com");
/// assert_eq!(format!("{email:?}"), "UserEmail([REDACTED])");
/// assert!(UserEmail::parse("ann@localhost").is_err());
/// assert!(UserEmail::parse("ann.example.com").is_err());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct UserEmail(String);

/// Why a string is not an acceptable email address (the message never repeats the input).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be an email address like name@example.com (at most 254 characters)")]
pub struct InvalidEmail;

impl UserEmail {
    /// Checks and normalises `raw` (surrounding whitespace is ignored).
    pub fn parse(raw: &str) -> Result<Self, InvalidEmail> {
        let address = raw.trim();
        if address.len() > MAX_LEN {
            return Err(InvalidEmail);
        }
        let (local, domain) = address.split_once('@').ok_or(InvalidEmail)?;
        if is_local_part(local) && is_domain(domain) {
            Ok(Self(address.to_ascii_lowercase()))
        } else {
            Err(InvalidEmail)
        }
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for UserEmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UserEmail([REDACTED])")
    }
}

/// A dot-atom: atoms of allowed characters separated by single dots.
fn is_local_part(local: &str) -> bool {
    (1..=MAX_LOCAL_LEN).contains(&local.len())
        && local
            .split('.')
            .all(|atom| !atom.is_empty() && atom.bytes().all(is_atom_byte))
}

fn is_atom_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b)
}

/// At least two labels of letters, digits and inner hyphens; the last one not all digits.
fn is_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|label| is_label(label))
        && labels
            .last()
            .is_some_and(|tld| !tld.bytes().all(|b| b.is_ascii_digit()))
}

fn is_label(label: &str) -> bool {
    (1..=MAX_LABEL_LEN).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ordinary_addresses_are_accepted_and_lower_cased() {
        for (raw, normalised) in [
            ("ann@example.com", "ann@example.com"),
            ("Ann.Lee@Example.COM", "ann.lee@example.com"),
            (
                "  bob+tag@mail.example.co.uk\n",
                "bob+tag@mail.example.co.uk",
            ),
            (
                "o'neil_x-y@sub-domain.example.org",
                "o'neil_x-y@sub-domain.example.org",
            ),
            ("a@xn--bcher-kva.example", "a@xn--bcher-kva.example"),
            ("1@2.io", "1@2.io"),
        ] {
            assert_eq!(UserEmail::parse(raw).unwrap().as_str(), normalised, "{raw}");
        }
    }

    #[test]
    fn malformed_addresses_are_refused() {
        let long_local = format!("{}@example.com", "a".repeat(65));
        let long_total = format!("a@{}.com", "b.".repeat(130));
        let long_label = format!("a@{}.com", "c".repeat(64));
        for raw in [
            "",
            "   ",
            "ann",
            "ann@",
            "@example.com",
            "ann@example",
            "ann@localhost",
            "ann@@example.com",
            "ann@exa@mple.com",
            "ann lee@example.com",
            "ann@exa mple.com",
            ".ann@example.com",
            "ann.@example.com",
            "an..n@example.com",
            "ann@-example.com",
            "ann@example-.com",
            "ann@example..com",
            "ann@.example.com",
            "ann@example.com.",
            "ann@127.0.0.1",
            "ann@[127.0.0.1]",
            "\"ann\"@example.com",
            "ann@exämple.com",
            "änn@example.com",
            "ann\n@example.com",
            "ann@example.com\u{0}",
            long_local.as_str(),
            long_total.as_str(),
            long_label.as_str(),
        ] {
            assert_eq!(UserEmail::parse(raw), Err(InvalidEmail), "{raw:?}");
        }
    }

    #[test]
    fn the_error_message_does_not_repeat_the_input() {
        let message = UserEmail::parse("secret@nowhere").unwrap_err().to_string();
        assert!(!message.contains("secret"), "{message}");
    }
}
