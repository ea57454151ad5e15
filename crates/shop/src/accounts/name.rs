//! [`UserName`]: a display name that was checked when it was made.

use std::fmt;

/// Longest display name, in characters (Unicode scalar values) after trimming.
pub const MAX_NAME_CHARS: usize = 100;

/// A display name: 1 to [`MAX_NAME_CHARS`] characters after trimming surrounding whitespace,
/// without control characters (no line breaks, no terminal escapes).
///
/// `Debug` never shows the name: it is personal data and must not reach telemetry.
///
/// ```
/// use shop::accounts::UserName;
///
/// assert_eq!(UserName::parse("  Ann Lee ").unwrap().as_str(), "Ann Lee");
/// assert!(UserName::parse("   ").is_err());
/// assert!(UserName::parse(&"x".repeat(101)).is_err());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct UserName(String);

/// Why a string is not an acceptable display name (the message never repeats the input).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be 1 to 100 characters (surrounding spaces are ignored), without control characters")]
pub struct InvalidName;

impl UserName {
    /// Checks `raw` and keeps it without its surrounding whitespace.
    pub fn parse(raw: &str) -> Result<Self, InvalidName> {
        let name = raw.trim();
        let chars = name.chars().count();
        if (1..=MAX_NAME_CHARS).contains(&chars) && !name.chars().any(char::is_control) {
            Ok(Self(name.to_owned()))
        } else {
            Err(InvalidName)
        }
    }

    /// The trimmed name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UserName([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_are_trimmed_and_counted_in_characters() {
        assert_eq!(UserName::parse("Ann").unwrap().as_str(), "Ann");
        assert_eq!(
            UserName::parse("\t Zoë Ørsted  ").unwrap().as_str(),
            "Zoë Ørsted"
        );
        let hundred = "é".repeat(MAX_NAME_CHARS);
        assert_eq!(UserName::parse(&hundred).unwrap().as_str(), hundred);
        let padded = format!("  {}  ", "x".repeat(MAX_NAME_CHARS));
        assert!(UserName::parse(&padded).is_ok());
    }

    #[test]
    fn empty_overlong_or_control_character_names_are_refused() {
        for raw in [
            String::new(),
            "   ".to_owned(),
            "\n\t".to_owned(),
            "x".repeat(MAX_NAME_CHARS + 1),
            "é".repeat(MAX_NAME_CHARS + 1),
            "Ann\nLee".to_owned(),
            "Ann\u{1b}[31m".to_owned(),
            "Ann\u{0}".to_owned(),
        ] {
            assert_eq!(UserName::parse(&raw), Err(InvalidName), "{raw:?}");
        }
    }
}
