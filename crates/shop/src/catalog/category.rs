//! [`Category`]: a category slug that was checked when it was made.

use std::fmt;

/// Longest category slug, in characters.
pub const MAX_CATEGORY_CHARS: usize = 32;

/// The pattern every category slug matches (the OpenAPI document repeats it).
pub const CATEGORY_PATTERN: &str = "^[a-z0-9-]{1,32}$";

/// A category slug such as `coffee` or `home-garden`: 1 to [`MAX_CATEGORY_CHARS`] characters
/// of `[a-z0-9-]`. Whether any product has it is the store's question, not the slug's.
///
/// ```
/// use shop::catalog::Category;
///
/// assert_eq!(Category::parse("coffee").unwrap().as_str(), "coffee");
/// assert!(Category::parse("Coffee").is_err());
/// assert!(Category::parse("").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Category(String);

/// Why a string is not a category slug (the message never repeats the input).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be 1 to 32 characters of a-z, 0-9 and -")]
pub struct InvalidCategory;

impl Category {
    /// Checks `raw`; nothing is trimmed or case-folded.
    pub fn parse(raw: &str) -> Result<Self, InvalidCategory> {
        let valid = (1..=MAX_CATEGORY_CHARS).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidCategory)
        }
    }

    /// The slug.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Category({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn slugs_of_lowercase_letters_digits_and_hyphens_are_categories() {
        for raw in ["tea", "home-garden", "a", "2026", "-", &"x".repeat(32)] {
            assert_eq!(Category::parse(raw).unwrap().as_str(), raw);
        }
    }

    #[test]
    fn anything_else_is_refused() {
        for raw in [
            "",
            "Tea",
            "tea ",
            " tea",
            "tea_leaves",
            "té",
            "tea%",
            "tea/green",
            &"x".repeat(33),
        ] {
            assert_eq!(Category::parse(raw), Err(InvalidCategory), "{raw:?}");
        }
    }
}
