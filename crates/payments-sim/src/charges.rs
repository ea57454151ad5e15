//! `POST /v1/charges`: validate, inject faults, record (or replay) the charge, answer.

use std::borrow::Cow;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use telemetry::{ErrorKind, ErrorObservation};

use super::error::SimError;
use super::faults::Faults;
use super::store::{Charge, ChargeRequest, Outcome, Recorded};
use super::{IDEMPOTENCY_KEY, IDEMPOTENT_REPLAYED, MAX_BODY_BYTES, Simulator};

/// Largest accepted `amount_cents` (one million euros).
pub(super) const MAX_AMOUNT_CENTS: u64 = 100_000_000;
/// Longest accepted idempotency key and reference, in characters.
const MAX_KEY_LEN: usize = 64;
const MAX_REFERENCE_LEN: usize = 64;
const FIELDS: [&str; 3] = ["amount_cents", "currency", "reference"];

pub(super) async fn create(State(simulator): State<Simulator>, request: Request) -> Response {
    match charge(&simulator, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn charge(simulator: &Simulator, request: Request) -> Result<Response, SimError> {
    let key = idempotency_key(request.headers())?;
    let body = axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            SimError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorKind::Validation,
                "request.body_too_large",
                "the body is limited to 16 KiB",
            )
        })?;
    let charge_request = parse(&body)?;

    // Faults are decided before anything is recorded: a retry with the same key is safe.
    let faults = simulator.faults();
    let delay = faults.latency_ms.sample();
    if Faults::roll(faults.error_rate) {
        simulator.shared.counters.errors_injected.increment();
        simulator.delay(delay).await;
        return Err(injected_error());
    }
    if Faults::roll(faults.hang_rate) {
        simulator.shared.counters.hangs.increment();
        tracing::info!(
            payments_sim.fault = "hang",
            "payment simulator fault injected"
        );
        return Err(simulator.hang().await);
    }

    let recorded = simulator.record_or_replay(&key, &charge_request, faults.decline_rate);
    // The charge is recorded before the delay: a client that gives up meanwhile finds it
    // again by retrying with the same key, as with a real provider.
    simulator.delay(delay).await;
    match recorded {
        Recorded::New(charge) => Ok(answer(&charge, false)),
        Recorded::Replayed(charge) => Ok(answer(&charge, true)),
        Recorded::KeyReused => Err(SimError::invalid(
            "idempotency.key_reused",
            IDEMPOTENCY_KEY,
            "this Idempotency-Key was used for a different charge request",
        )),
    }
}

/// The `Idempotency-Key` header: exactly one, 1–64 characters of `[A-Za-z0-9_-]`.
fn idempotency_key(headers: &HeaderMap) -> Result<String, SimError> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
    let Some(value) = values.next() else {
        return Err(SimError::invalid(
            "idempotency.key_missing",
            IDEMPOTENCY_KEY,
            "the Idempotency-Key header is required",
        )
        .with_status(StatusCode::BAD_REQUEST));
    };
    let valid = |key: &&str| {
        (1..=MAX_KEY_LEN).contains(&key.len())
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    match value.to_str().ok().filter(valid) {
        Some(key) if values.next().is_none() => Ok(key.to_owned()),
        _ => Err(SimError::invalid(
            "idempotency.key_invalid",
            IDEMPOTENCY_KEY,
            "one Idempotency-Key header of 1 to 64 characters of A-Z, a-z, 0-9, _ and -",
        )
        .with_status(StatusCode::BAD_REQUEST)),
    }
}

/// `{"amount_cents": 1..=100000000, "currency": "EUR", "reference": "1 to 64 characters"}`,
/// nothing else.
fn parse(body: &[u8]) -> Result<ChargeRequest, SimError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| {
        SimError::new(
            StatusCode::BAD_REQUEST,
            ErrorKind::Validation,
            "request.malformed_json",
            "the body is not valid JSON",
        )
    })?;
    let Value::Object(fields) = value else {
        return Err(SimError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::Validation,
            "request.invalid_body",
            "the body must be a JSON object {amount_cents, currency, reference}",
        ));
    };
    if let Some(unknown) = fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        let name: String = unknown.chars().take(MAX_KEY_LEN).collect();
        return Err(SimError::invalid(
            "request.invalid_body",
            name,
            "unknown field; the fields are amount_cents, currency and reference",
        ));
    }
    let amount_cents = fields
        .get("amount_cents")
        .and_then(Value::as_u64)
        .filter(|amount| (1..=MAX_AMOUNT_CENTS).contains(amount))
        .ok_or_else(|| {
            SimError::invalid(
                "request.invalid_body",
                "amount_cents",
                "an integer between 1 and 100000000 (cents)",
            )
        })?;
    let currency = match fields.get("currency").and_then(Value::as_str) {
        Some("EUR") => "EUR".to_owned(),
        _ => {
            return Err(SimError::invalid(
                "request.invalid_body",
                "currency",
                "\"EUR\" (the only supported currency)",
            ));
        }
    };
    let reference = fields
        .get("reference")
        .and_then(Value::as_str)
        .filter(|r| (1..=MAX_REFERENCE_LEN).contains(&r.chars().count()))
        .ok_or_else(|| {
            SimError::invalid(
                "request.invalid_body",
                "reference",
                "a string of 1 to 64 characters",
            )
        })?;
    Ok(ChargeRequest {
        amount_cents,
        currency,
        reference: reference.to_owned(),
    })
}

/// An injected failure: 503 `simulated.unavailable` or 500 `simulated.internal`, half and half.
fn injected_error() -> SimError {
    let message: Cow<'static, str> =
        "the payment provider failed (simulated); retry with the same Idempotency-Key".into();
    if rand::random::<bool>() {
        SimError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Unavailable,
            "simulated.unavailable",
            message,
        )
    } else {
        SimError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::Internal,
            "simulated.internal",
            message,
        )
    }
}

/// The simulator's own error kind for a declined charge (`error.type` = `payment_declined`,
/// 402), declared on top of the telemetry library's generic kinds.
const PAYMENT_DECLINED: ErrorKind = telemetry::app_error_kind!("payment_declined", 402);

/// 201 for an approved charge, 402 for a declined one (observed as `payment_declined`); a
/// replay carries `Idempotent-Replayed: true`.
fn answer(charge: &Charge, replayed: bool) -> Response {
    let status = match charge.outcome {
        Outcome::Approved => StatusCode::CREATED,
        Outcome::Declined => StatusCode::PAYMENT_REQUIRED,
    };
    let mut response = (status, Json(charge.body())).into_response();
    if replayed {
        response
            .headers_mut()
            .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    if charge.outcome == Outcome::Declined {
        response.extensions_mut().insert(ErrorObservation::new(
            PAYMENT_DECLINED,
            "payment.declined",
            "the simulated card was declined",
        ));
    }
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse_json(value: serde_json::Value) -> Result<ChargeRequest, SimError> {
        parse(value.to_string().as_bytes())
    }

    #[test]
    fn a_valid_body_is_accepted() {
        let request = parse_json(serde_json::json!({
            "amount_cents": 1250, "currency": "EUR", "reference": "order-42"
        }))
        .unwrap();
        assert_eq!(request.amount_cents, 1250);
        assert_eq!(request.reference, "order-42");
    }

    #[test]
    fn each_invalid_field_is_named() {
        let valid = serde_json::json!({"amount_cents": 1, "currency": "EUR", "reference": "r"});
        let cases = [
            ("amount_cents", serde_json::json!(0)),
            ("amount_cents", serde_json::json!(100_000_001)),
            ("amount_cents", serde_json::json!(-5)),
            ("amount_cents", serde_json::json!(1.5)),
            ("amount_cents", serde_json::json!("100")),
            ("currency", serde_json::json!("USD")),
            ("reference", serde_json::json!("")),
            ("reference", serde_json::json!("x".repeat(65))),
            ("reference", serde_json::json!(7)),
        ];
        for (field, value) in cases {
            let mut body = valid.clone();
            body[field] = value.clone();
            let error = parse_json(body).unwrap_err();
            assert_eq!(error.status, StatusCode::UNPROCESSABLE_ENTITY);
            assert_eq!(error.field.as_deref(), Some(field), "{value}");
        }
        let mut body = valid.clone();
        body["card_number"] = serde_json::json!("4111");
        assert_eq!(
            parse_json(body).unwrap_err().field.as_deref(),
            Some("card_number")
        );
        let error = parse(b"{not json").unwrap_err();
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        assert_eq!(error.code, "request.malformed_json");
    }

    #[test]
    fn idempotency_keys_are_checked() {
        let headers = |values: &[&str]| {
            let mut headers = HeaderMap::new();
            for value in values {
                headers.append(
                    IDEMPOTENCY_KEY,
                    HeaderValue::from_bytes(value.as_bytes()).unwrap(),
                );
            }
            headers
        };
        assert_eq!(idempotency_key(&headers(&["Ab_9-x"])).unwrap(), "Ab_9-x");
        let missing = idempotency_key(&headers(&[])).unwrap_err();
        assert_eq!(missing.code, "idempotency.key_missing");
        assert_eq!(missing.status, StatusCode::BAD_REQUEST);
        let too_long = "k".repeat(65);
        for bad in [&["a b"][..], &["ключ"], &[too_long.as_str()], &["a", "b"]] {
            let error = idempotency_key(&headers(bad)).unwrap_err();
            assert_eq!(error.code, "idempotency.key_invalid", "{bad:?}");
        }
    }
}
