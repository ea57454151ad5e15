//! What a checkout asks for, validated: the items of `POST /v1/orders` and its
//! `Idempotency-Key` header. Every invalid value is answered 422 naming its field
//! (`items[2].quantity`, `Idempotency-Key`); values are never echoed back.

use std::borrow::Cow;
use std::fmt::Write as _;

use axum::http::HeaderMap;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use utoipa::ToSchema;

use crate::error::{ApiError, FieldError};
use crate::store::RequestedItem;

/// Most distinct products in one order.
pub const MAX_ITEMS: usize = 50;
/// Most units of one product in one order.
pub const MAX_QUANTITY: i64 = 100;
/// Longest `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 64;
/// The header naming a checkout so that retrying it never orders (or charges) twice.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The body of `POST /v1/orders` as the OpenAPI document describes it (the handler reads the
/// JSON itself, to name every invalid field).
#[derive(Debug, ToSchema)]
pub struct CheckoutBody {
    /// The products to buy, each once.
    #[schema(min_items = 1, max_items = 50)]
    pub items: Vec<CheckoutItem>,
}

/// One line of a checkout.
#[derive(Debug, ToSchema)]
pub struct CheckoutItem {
    /// The product.
    #[schema(minimum = 1)]
    pub product_id: i64,
    /// Units.
    #[schema(minimum = 1, maximum = 100)]
    pub quantity: i64,
}

/// A checkout whose every value is valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutRequest {
    /// By product id, each product once.
    pub items: Vec<RequestedItem>,
    /// Hex SHA-256 of the normalised items: the same for the same checkout, whatever the
    /// order of the items in the body.
    pub request_hash: String,
    /// For each of `items`, its index in the request body (to name fields in errors).
    positions: Vec<usize>,
}

impl CheckoutRequest {
    /// The body field of `product_id`'s item, e.g. `items[2]` (`items` if it is not one of
    /// the request's products).
    pub fn field_of(&self, product_id: i64) -> String {
        self.items
            .iter()
            .zip(&self.positions)
            .find(|(item, _)| item.product_id == product_id)
            .map_or_else(
                || "items".to_owned(),
                |(_, index)| format!("items[{index}]"),
            )
    }
}

/// Validates the body of `POST /v1/orders` (`{"items": [{"product_id", "quantity"}, …]}`),
/// reporting every invalid field at once.
pub fn checkout_request(body: &Value) -> Result<CheckoutRequest, ApiError> {
    let items = match body.get("items") {
        Some(Value::Array(items)) if (1..=MAX_ITEMS).contains(&items.len()) => items,
        Some(Value::Array(_)) => {
            return Err(invalid(vec![field(
                "items".into(),
                format!("must hold between 1 and {MAX_ITEMS} items"),
            )]));
        }
        None | Some(Value::Null) => {
            return Err(invalid(vec![field("items".into(), "is required")]));
        }
        Some(_) => return Err(invalid(vec![field("items".into(), "must be an array")])),
    };
    let mut errors = Vec::new();
    let mut parsed: Vec<(usize, RequestedItem)> = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let Value::Object(item) = item else {
            errors.push(field(format!("items[{index}]").into(), "must be an object"));
            continue;
        };
        let product_id = positive_integer(item.get("product_id"), i64::MAX);
        let quantity = positive_integer(item.get("quantity"), MAX_QUANTITY);
        if product_id.is_none() {
            errors.push(field(
                format!("items[{index}].product_id").into(),
                "must be a positive integer",
            ));
        }
        if quantity.is_none() {
            errors.push(field(
                format!("items[{index}].quantity").into(),
                format!("must be an integer between 1 and {MAX_QUANTITY}"),
            ));
        }
        if let (Some(product_id), Some(quantity)) = (product_id, quantity) {
            if let Some((first, _)) = parsed.iter().find(|(_, p)| p.product_id == product_id) {
                errors.push(field(
                    format!("items[{index}].product_id").into(),
                    format!("repeats items[{first}]: list each product once"),
                ));
            } else {
                parsed.push((
                    index,
                    RequestedItem {
                        product_id,
                        quantity,
                    },
                ));
            }
        }
    }
    if !errors.is_empty() {
        return Err(invalid(errors));
    }
    parsed.sort_by_key(|(_, item)| item.product_id);
    let (positions, items): (Vec<usize>, Vec<RequestedItem>) = parsed.into_iter().unzip();
    let request_hash = hash(&items);
    Ok(CheckoutRequest {
        items,
        request_hash,
        positions,
    })
}

/// The request's `Idempotency-Key`: none, or one header of 1 to 64 characters from
/// `A-Z a-z 0-9 - _ . :` (a UUID fits).
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let valid = values.next().is_none()
        && (1..=MAX_IDEMPOTENCY_KEY_LEN).contains(&value.len())
        && value
            .as_bytes()
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    match value.to_str() {
        Ok(key) if valid => Ok(Some(key.to_owned())),
        _ => Err(ApiError::invalid_field(
            "request.invalid_header",
            "Idempotency-Key",
            format!(
                "must be one header of 1 to {MAX_IDEMPOTENCY_KEY_LEN} characters from \
                 A-Z a-z 0-9 - _ . :"
            ),
        )),
    }
}

/// An integer in `1..=max` (JSON numbers only: `"3"` and `3.5` are refused).
fn positive_integer(value: Option<&Value>, max: i64) -> Option<i64> {
    value
        .and_then(Value::as_i64)
        .filter(|n| (1..=max).contains(n))
}

fn hash(items: &[RequestedItem]) -> String {
    let mut hasher = Sha256::new();
    for item in items {
        hasher.update(format!("{}:{};", item.product_id, item.quantity).as_bytes());
    }
    let mut hex = String::with_capacity(64);
    for byte in hasher.finalize() {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

fn field(name: Cow<'static, str>, message: impl Into<Cow<'static, str>>) -> FieldError {
    FieldError {
        field: name,
        message: message.into(),
    }
}

fn invalid(fields: Vec<FieldError>) -> ApiError {
    ApiError::invalid_fields("order.invalid_items", fields)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::http::HeaderValue;
    use serde_json::json;

    fn fields(body: Value) -> Vec<String> {
        match checkout_request(&body).unwrap_err() {
            ApiError::Validation { code, fields, .. } => {
                assert_eq!(code, "order.invalid_items");
                fields.iter().map(|f| f.field.to_string()).collect()
            }
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn items_are_sorted_and_hashed_independently_of_their_order() {
        let a = checkout_request(&json!({"items": [
            {"product_id": 3, "quantity": 1}, {"product_id": 1, "quantity": 2}
        ]}))
        .unwrap();
        let b = checkout_request(&json!({"items": [
            {"product_id": 1, "quantity": 2}, {"product_id": 3, "quantity": 1}
        ]}))
        .unwrap();
        assert_eq!(a.items, b.items);
        assert_eq!(a.request_hash, b.request_hash);
        assert_eq!(a.items[0].product_id, 1);
        assert_eq!(a.field_of(1), "items[1]");
        assert_eq!(a.field_of(3), "items[0]");
        assert_eq!(a.field_of(9), "items");
        assert_eq!(a.request_hash.len(), 64);
        let c = checkout_request(&json!({"items": [
            {"product_id": 1, "quantity": 3}, {"product_id": 3, "quantity": 1}
        ]}))
        .unwrap();
        assert_ne!(a.request_hash, c.request_hash);
    }

    #[test]
    fn every_invalid_item_field_is_named() {
        assert_eq!(fields(json!({})), ["items"]);
        assert_eq!(fields(json!({"items": []})), ["items"]);
        assert_eq!(fields(json!({"items": {"product_id": 1}})), ["items"]);
        assert_eq!(
            fields(json!({"items": [
                {"product_id": 0, "quantity": 1},
                {"product_id": 2, "quantity": 101},
                {"product_id": "3", "quantity": 1.5},
                7
            ]})),
            [
                "items[0].product_id",
                "items[1].quantity",
                "items[2].product_id",
                "items[2].quantity",
                "items[3]"
            ]
        );
        assert_eq!(
            fields(json!({"items": [
                {"product_id": 2, "quantity": 1}, {"product_id": 2, "quantity": 1}
            ]})),
            ["items[1].product_id"]
        );
        let too_many: Vec<Value> = (1..=51)
            .map(|id| json!({"product_id": id, "quantity": 1}))
            .collect();
        assert_eq!(fields(json!({ "items": too_many })), ["items"]);
    }

    #[test]
    fn idempotency_keys_are_optional_single_and_bounded() {
        let mut headers = HeaderMap::new();
        assert_eq!(idempotency_key(&headers).unwrap(), None);
        headers.insert(
            IDEMPOTENCY_KEY,
            HeaderValue::from_static("6f1c2b9e-0d7a-4c1e-9a57-3b2f1e0c9d8a"),
        );
        assert_eq!(
            idempotency_key(&headers).unwrap().as_deref(),
            Some("6f1c2b9e-0d7a-4c1e-9a57-3b2f1e0c9d8a")
        );
        for bad in ["", "has space", "ü", &"k".repeat(65)] {
            let mut headers = HeaderMap::new();
            if let Ok(value) = HeaderValue::from_str(bad) {
                headers.insert(IDEMPOTENCY_KEY, value);
            } else {
                headers.insert(
                    IDEMPOTENCY_KEY,
                    HeaderValue::from_bytes(bad.as_bytes()).unwrap(),
                );
            }
            assert!(idempotency_key(&headers).is_err(), "{bad:?}");
        }
        let mut twice = HeaderMap::new();
        twice.append(IDEMPOTENCY_KEY, HeaderValue::from_static("a"));
        twice.append(IDEMPOTENCY_KEY, HeaderValue::from_static("b"));
        assert!(idempotency_key(&twice).is_err());
    }
}
