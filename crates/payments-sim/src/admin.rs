//! `/admin/*`: read and change the fault knobs, read the counters, reset. Served to loopback
//! peers only, or, when an admin token is configured, to any peer presenting it as a bearer
//! token (compared in constant time).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use sha2::{Digest, Sha256};
use telemetry::ErrorKind;

use super::error::SimError;
use super::{MAX_BODY_BYTES, Simulator};

/// The admin routes (to be nested under `/admin`), behind the access check.
pub(super) fn router(simulator: &Simulator) -> Router<Simulator> {
    Router::new()
        .route("/faults", get(get_faults).put(put_faults))
        .route("/stats", get(get_stats))
        .route("/reset", post(reset))
        .route_layer(middleware::from_fn_with_state(simulator.clone(), authorize))
}

async fn authorize(State(simulator): State<Simulator>, request: Request, next: Next) -> Response {
    match &simulator.shared.admin_token {
        Some(token) => {
            let presented = bearer(request.headers());
            if !presented.is_some_and(|p| same_secret(p, token.expose())) {
                let mut response = SimError::new(
                    StatusCode::UNAUTHORIZED,
                    ErrorKind::Unauthenticated,
                    "admin.token_invalid",
                    "the admin endpoints require Authorization: Bearer <PAYMENTS_SIM_ADMIN_TOKEN>",
                )
                .into_response();
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return response;
            }
        }
        None => {
            let loopback = request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .is_some_and(|ConnectInfo(peer)| peer.ip().to_canonical().is_loopback());
            if !loopback {
                return SimError::new(
                    StatusCode::FORBIDDEN,
                    ErrorKind::Forbidden,
                    "admin.loopback_only",
                    "the admin endpoints answer loopback peers only (set PAYMENTS_SIM_ADMIN_TOKEN \
                     to allow others)",
                )
                .into_response();
            }
        }
    }
    next.run(request).await
}

/// The token of `Authorization: Bearer <token>`, if there is exactly one such header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next()?.to_str().ok()?;
    if values.next().is_some() {
        return None;
    }
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Compares two secrets in time independent of where they differ (and of their lengths: the
/// SHA-256 digests are compared, every byte of them).
fn same_secret(presented: &str, expected: &str) -> bool {
    let a = Sha256::digest(presented.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    let difference = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

/// `GET /admin/faults`: the knobs in force.
async fn get_faults(State(simulator): State<Simulator>) -> Response {
    Json(simulator.faults()).into_response()
}

/// `PUT /admin/faults` with a partial JSON object of knobs: validated as a whole (422 naming
/// the knob out of range), applied at once, answered with the knobs now in force.
async fn put_faults(State(simulator): State<Simulator>, request: Request) -> Response {
    let body = match axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(_) => {
            return SimError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorKind::Validation,
                "request.body_too_large",
                "the body is limited to 16 KiB",
            )
            .into_response();
        }
    };
    let Ok(patch) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return SimError::new(
            StatusCode::BAD_REQUEST,
            ErrorKind::Validation,
            "request.malformed_json",
            "the body is not valid JSON",
        )
        .into_response();
    };
    match simulator.patch_faults(&patch) {
        Ok(faults) => {
            tracing::info!(
                payments_sim.faults.error_rate = faults.error_rate,
                payments_sim.faults.decline_rate = faults.decline_rate,
                payments_sim.faults.hang_rate = faults.hang_rate,
                payments_sim.faults.latency_p50_ms = faults.latency_ms.p50,
                payments_sim.faults.latency_p99_ms = faults.latency_ms.p99,
                "payment simulator faults changed"
            );
            Json(faults).into_response()
        }
        Err(invalid) => {
            let message = format!("invalid value for {}: {}", invalid.field, invalid.allowed);
            let mut error = SimError::invalid("faults.invalid", invalid.field, message);
            if error.field.as_deref() == Some("") {
                error.field = None;
            }
            error.into_response()
        }
    }
}

/// `GET /admin/stats`: the counters since start or the last reset.
async fn get_stats(State(simulator): State<Simulator>) -> Response {
    Json(simulator.stats()).into_response()
}

/// `POST /admin/reset`: forgets every charge and zeroes the counters (the knobs stay). 204.
async fn reset(State(simulator): State<Simulator>) -> StatusCode {
    simulator.reset();
    tracing::info!("payment simulator reset");
    StatusCode::NO_CONTENT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_equal_only_when_identical() {
        assert!(same_secret("0123456789abcdef", "0123456789abcdef"));
        assert!(!same_secret("0123456789abcdeF", "0123456789abcdef"));
        assert!(!same_secret("0123456789abcdef0", "0123456789abcdef"));
        assert!(!same_secret("", "0123456789abcdef"));
    }

    #[test]
    fn only_a_single_bearer_authorization_counts() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&headers), None);
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer abc"),
        );
        assert_eq!(bearer(&headers), Some("abc"));
        headers.append(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer def"),
        );
        assert_eq!(bearer(&headers), None);
    }
}
