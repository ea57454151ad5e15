//! Conformance test services, mounted only when `APP_CONFORMANCE` asks for one (never in the
//! cloud persona, see [`crate::config::Conformance`]).
//!
//! `APP_CONFORMANCE=w3c` exposes `POST /_test/w3c`, the test-service protocol of the
//! [W3C Trace Context test suite](https://github.com/w3c/trace-context/tree/main/test): the body
//! is a JSON array of `{"url": …, "arguments": …}`; for each item, in order, the service POSTs
//! `arguments` as JSON to `url` from inside the request's span, through
//! [`telemetry::outbound`] — so the callee sees a `traceparent` naming the CLIENT span of the
//! call (same trace as the incoming request when its `traceparent` was valid, a new trace
//! otherwise), with the incoming Level 2 `random` flag (set on a new trace), and the incoming
//! `tracestate` as the library cleaned it (`telemetry::trace_context::TracestateHeader`: invalid
//! members and repeated keys dropped one by one, over 32 members dropped whole, over 512
//! characters truncated by whole members).
//!
//! Only loopback clients are served (403 otherwise): the route makes the service call any URL.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use telemetry::outbound::HttpClientInstruments;
use telemetry::{ErrorKind, ErrorObservation, Telemetry};

/// The route of the W3C Trace Context test service.
pub const W3C_PATH: &str = "/_test/w3c";
/// Most calls one test request may ask for.
pub const MAX_CALLS: usize = 64;
/// Timeout of each outgoing call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest accepted request body.
const MAX_BODY: usize = 64 * 1024;

/// One call the test harness asks for.
#[derive(Debug, Deserialize)]
struct Call {
    url: String,
    #[serde(default)]
    arguments: serde_json::Value,
}

#[derive(Debug)]
struct W3cService {
    client: reqwest::Client,
    outbound: HttpClientInstruments,
}

/// The router of `POST /_test/w3c` (to be merged before instrumenting the app, so each test
/// request has its SERVER span and the calls are its children).
pub fn w3c_router(telemetry: &Telemetry) -> Router {
    let client = reqwest::Client::builder()
        .timeout(CALL_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default();
    let service = Arc::new(W3cService {
        client,
        outbound: HttpClientInstruments::new(telemetry),
    });
    Router::new().route(W3C_PATH, post(w3c)).with_state(service)
}

async fn w3c(State(service): State<Arc<W3cService>>, request: Request) -> Response {
    let loopback = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|ConnectInfo(peer)| peer.ip().is_loopback());
    if !loopback {
        return error(
            ErrorKind::Forbidden,
            "conformance.loopback_only",
            "the conformance test service answers loopback clients only",
        );
    }
    let body = match axum::body::to_bytes(request.into_body(), MAX_BODY).await {
        Ok(body) => body,
        Err(_) => {
            return error(
                ErrorKind::Validation,
                "request.body_too_large",
                "the body is limited to 64 KiB",
            );
        }
    };
    let calls = match parse(&body) {
        Some(calls) => calls,
        None => {
            return error(
                ErrorKind::Validation,
                "request.malformed_json",
                "expected a JSON array of at most 64 {\"url\", \"arguments\"} objects",
            );
        }
    };
    let mut statuses = Vec::with_capacity(calls.len());
    for call in calls {
        let request = service.client.post(&call.url).json(&call.arguments);
        // A failing callee is part of what the suite tests: record it and go on.
        let status = match service.outbound.send(request).await {
            Ok(response) => {
                let status = response.status().as_u16();
                let _ = response.bytes().await;
                serde_json::Value::from(status)
            }
            Err(_) => serde_json::Value::Null,
        };
        statuses.push(status);
    }
    (
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::Value::Array(statuses).to_string(),
    )
        .into_response()
}

fn parse(body: &Bytes) -> Option<Vec<Call>> {
    let calls: Vec<Call> = serde_json::from_slice(body).ok()?;
    (calls.len() <= MAX_CALLS).then_some(calls)
}

fn error(kind: ErrorKind, code: &'static str, message: &'static str) -> Response {
    let status = match kind {
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        _ => StatusCode::BAD_REQUEST,
    };
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        telemetry::layer::error_body(kind.as_str(), code, message),
    )
        .into_response();
    response
        .extensions_mut()
        .insert(ErrorObservation::new(kind, code, message));
    response
}
