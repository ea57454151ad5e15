//! Request parameters of the catalog routes, parsed by hand so a bad value is answered with
//! the JSON error naming the field, never with axum's plain-text rejection.

use utoipa::IntoParams;
use utoipa::openapi::Required;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};

use super::category::{CATEGORY_PATTERN, Category, MAX_CATEGORY_CHARS};
use crate::error::{ApiError, FieldError};
use crate::store::{PageRequest, ProductQuery, ProductSort};

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

/// Reads `page`, `per_page`, `category` and `sort` from the decoded query pairs (other
/// parameters are ignored; a repeated parameter takes its last value). Every invalid parameter
/// is named in one 422.
pub(crate) fn product_query(pairs: &[(String, String)]) -> Result<ProductQuery, ApiError> {
    let mut page = Some(DEFAULT_PAGE);
    let mut per_page = Some(DEFAULT_PER_PAGE);
    let mut category: Option<Result<Category, _>> = None;
    let mut sort = Some(ProductSort::default());
    for (key, value) in pairs {
        match key.as_str() {
            "page" => page = bounded_integer(value, 1, MAX_PAGE),
            "per_page" => per_page = bounded_integer(value, 1, MAX_PER_PAGE),
            "category" => category = Some(Category::parse(value)),
            "sort" => sort = ProductSort::from_query_value(value),
            _ => {}
        }
    }
    let mut invalid = Vec::new();
    if page.is_none() {
        invalid.push(field_error(
            "page",
            format!("must be an integer between 1 and {MAX_PAGE}"),
        ));
    }
    if per_page.is_none() {
        invalid.push(field_error(
            "per_page",
            format!("must be an integer between 1 and {MAX_PER_PAGE}"),
        ));
    }
    if let Some(Err(error)) = &category {
        invalid.push(field_error("category", error.to_string()));
    }
    if sort.is_none() {
        let values: Vec<&str> = ProductSort::ALL.iter().map(|s| s.as_str()).collect();
        invalid.push(field_error(
            "sort",
            format!("must be one of {}", values.join(", ")),
        ));
    }
    match (page, per_page, category.transpose(), sort) {
        (Some(page), Some(per_page), Ok(category), Some(sort)) if invalid.is_empty() => {
            Ok(ProductQuery {
                page: PageRequest { page, per_page },
                category,
                sort,
            })
        }
        _ => Err(ApiError::invalid_fields(INVALID_QUERY, invalid)),
    }
}

/// Reads only `page` and `per_page`, with the same rules (for listings without filters, e.g.
/// `GET /v1/orders`; other parameters are ignored).
pub(crate) fn page_request(pairs: &[(String, String)]) -> Result<PageRequest, ApiError> {
    let paging: Vec<(String, String)> = pairs
        .iter()
        .filter(|(key, _)| key == "page" || key == "per_page")
        .cloned()
        .collect();
    product_query(&paging).map(|query| query.page)
}

/// The query parameters of `GET /v1/products` as the OpenAPI document describes them, built
/// from the same constants and sort values [`product_query`] checks against.
#[derive(Debug)]
pub struct ProductListParams;

impl IntoParams for ProductListParams {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let sorts = ProductSort::ALL.map(ProductSort::as_str);
        vec![
            query_parameter(
                "category",
                "Only products of this category (a slug). An unknown category gives an empty \
                 page with total 0.",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
                    .max_length(Some(MAX_CATEGORY_CHARS))
                    .pattern(Some(CATEGORY_PATTERN))
                    .examples(["coffee"]),
            ),
            query_parameter(
                "sort",
                "Order of the listing: `id`, `price` (cheapest first), `-price`, `name` (by \
                 Unicode code point, so case-sensitive), `-name`. Ties are always broken by \
                 ascending id.",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(sorts))
                    .default(Some(ProductSort::default().as_str().into())),
            ),
            query_parameter(
                "page",
                "1-based page number.",
                integer(1, MAX_PAGE, DEFAULT_PAGE),
            ),
            query_parameter(
                "per_page",
                "Products per page.",
                integer(1, MAX_PER_PAGE, DEFAULT_PER_PAGE),
            ),
        ]
    }
}

fn query_parameter(name: &str, description: &str, schema: ObjectBuilder) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

fn integer(minimum: u32, maximum: u32, default: u32) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
        .minimum(Some(minimum))
        .maximum(Some(maximum))
        .default(Some(default.into()))
}

fn field_error(field: &'static str, message: String) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
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

    fn rejected_fields(result: Result<impl std::fmt::Debug, ApiError>) -> Vec<String> {
        match result.unwrap_err() {
            ApiError::Validation { code, fields, .. } => {
                assert_eq!(code, INVALID_QUERY);
                fields.iter().map(|f| f.field.to_string()).collect()
            }
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn the_listing_defaults_to_the_first_twenty_of_all_products_by_id() {
        assert_eq!(
            product_query(&[]).unwrap(),
            ProductQuery {
                page: PageRequest {
                    page: 1,
                    per_page: 20
                },
                category: None,
                sort: ProductSort::Id,
            }
        );
    }

    #[test]
    fn every_parameter_is_read_and_the_last_repeat_wins() {
        assert_eq!(
            product_query(&pairs(&[
                ("category", "coffee"),
                ("category", "tea"),
                ("sort", "-price"),
                ("page", "3"),
                ("per_page", "100"),
                ("colour", "red"),
            ]))
            .unwrap(),
            ProductQuery {
                page: PageRequest {
                    page: 3,
                    per_page: 100
                },
                category: Some(Category::parse("tea").unwrap()),
                sort: ProductSort::PriceDescending,
            }
        );
    }

    #[test]
    fn each_invalid_parameter_is_named() {
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
            ("category", ""),
            ("category", "Tea"),
            ("category", "tea leaves"),
            ("category", "tea;drop table products"),
            ("sort", ""),
            ("sort", "price_cents"),
            ("sort", "+price"),
            ("sort", "id desc"),
        ] {
            assert_eq!(
                rejected_fields(product_query(&pairs(&[(key, value)]))),
                [key],
                "{key}={value}"
            );
        }
    }

    #[test]
    fn all_invalid_parameters_are_named_at_once() {
        assert_eq!(
            rejected_fields(product_query(&pairs(&[
                ("sort", "cheapest"),
                ("category", "T"),
                ("page", "0"),
            ]))),
            ["page", "category", "sort"]
        );
    }

    #[test]
    fn a_later_valid_value_replaces_an_earlier_invalid_one() {
        assert_eq!(
            product_query(&pairs(&[("page", "0"), ("page", "2")]))
                .unwrap()
                .page
                .page,
            2
        );
    }

    #[test]
    fn product_ids_are_positive_integers() {
        assert_eq!(product_id("42").unwrap(), 42);
        for raw in ["0", "-1", "abc", "", "1e3", "9223372036854775808", "4 2"] {
            assert_eq!(rejected_field(product_id(raw)), "id", "{raw}");
        }
    }
}
