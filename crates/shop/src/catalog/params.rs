//! Request parameters of the catalog routes, parsed by hand so a bad value is answered with
//! the JSON error naming the field, never with axum's plain-text rejection.

use crate::error::ApiError;
use crate::store::PageRequest;

/// `page` when the query does not give one.
pub const DEFAULT_PAGE: u32 = 1;
/// `per_page` when the query does not give one.
pub const DEFAULT_PER_PAGE: u32 = 20;
/// Largest `per_page`.
pub const MAX_PER_PAGE: u32 = 100;
/// Largest `page` (keeps offsets far from overflow).
pub const MAX_PAGE: u32 = 1_000_000;

const INVALID_QUERY: &str = "request.invalid_query";
const INVALID_PATH: &str = "request.invalid_path";

/// Reads `page` and `per_page` from the decoded query pairs (other parameters are ignored; a
/// repeated parameter takes its last value).
pub(crate) fn page_request(pairs: &[(String, String)]) -> Result<PageRequest, ApiError> {
    let mut page = DEFAULT_PAGE;
    let mut per_page = DEFAULT_PER_PAGE;
    for (key, value) in pairs {
        match key.as_str() {
            "page" => {
                page = bounded_integer(value, 1, MAX_PAGE).ok_or_else(|| {
                    ApiError::invalid_field(
                        INVALID_QUERY,
                        "page",
                        format!("must be an integer between 1 and {MAX_PAGE}"),
                    )
                })?;
            }
            "per_page" => {
                per_page = bounded_integer(value, 1, MAX_PER_PAGE).ok_or_else(|| {
                    ApiError::invalid_field(
                        INVALID_QUERY,
                        "per_page",
                        format!("must be an integer between 1 and {MAX_PER_PAGE}"),
                    )
                })?;
            }
            _ => {}
        }
    }
    Ok(PageRequest { page, per_page })
}

/// A product id from the path: a positive integer.
pub(crate) fn product_id(raw: &str) -> Result<i64, ApiError> {
    parse_digits(raw)
        .and_then(|n| i64::try_from(n).ok())
        .filter(|&id| id > 0)
        .ok_or_else(|| ApiError::invalid_field(INVALID_PATH, "id", "must be a positive integer"))
}

fn bounded_integer(raw: &str, min: u32, max: u32) -> Option<u32> {
    parse_digits(raw)
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| (min..=max).contains(n))
}

/// Plain decimal digits only: no sign, no whitespace, no exponent.
fn parse_digits(raw: &str) -> Option<u64> {
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse().ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn pairs(raw: &[(&str, &str)]) -> Vec<(String, String)> {
        raw.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn rejected_field(result: Result<impl std::fmt::Debug, ApiError>) -> String {
        match result.unwrap_err() {
            ApiError::Validation { fields, .. } => fields[0].field.to_string(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn paging_defaults_to_the_first_twenty() {
        assert_eq!(
            page_request(&[]).unwrap(),
            PageRequest {
                page: 1,
                per_page: 20
            }
        );
        assert_eq!(
            page_request(&pairs(&[
                ("category", "tea"),
                ("page", "3"),
                ("per_page", "100")
            ]))
            .unwrap(),
            PageRequest {
                page: 3,
                per_page: 100
            }
        );
    }

    #[test]
    fn out_of_range_or_non_numeric_paging_names_the_field() {
        for (key, value) in [
            ("page", "0"),
            ("page", "abc"),
            ("page", ""),
            ("page", "-1"),
            ("page", "+2"),
            ("page", "1000001"),
            ("page", "99999999999999999999999"),
            ("per_page", "0"),
            ("per_page", "101"),
            ("per_page", "1.5"),
            ("per_page", " 5"),
        ] {
            assert_eq!(
                rejected_field(page_request(&pairs(&[(key, value)]))),
                key,
                "{key}={value}"
            );
        }
    }

    #[test]
    fn product_ids_are_positive_integers() {
        assert_eq!(product_id("42").unwrap(), 42);
        for raw in ["0", "-1", "abc", "", "1e3", "9223372036854775808", "4 2"] {
            assert_eq!(rejected_field(product_id(raw)), "id", "{raw}");
        }
    }
}
