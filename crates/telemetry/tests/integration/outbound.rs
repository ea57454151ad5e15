//! Outbound HTTP calls through `telemetry::outbound`: the CLIENT span, what is propagated,
//! and `http.client.request.duration`, including failures.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use crate::common::Harness;
use axum::Router;
use axum::routing::any;
use telemetry::outbound::HttpClientInstruments;
use telemetry::testkit::{SpanKind, StatusCode};

/// A callee answering `status` and remembering the `traceparent` it received.
async fn callee(status: u16) -> (String, Arc<Mutex<Vec<String>>>) {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let record = Arc::clone(&seen);
    let app = Router::new().route(
        "/{*path}",
        any(move |headers: http::HeaderMap| {
            let record = Arc::clone(&record);
            async move {
                let traceparent = headers
                    .get("traceparent")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                record.lock().unwrap().push(traceparent);
                http::StatusCode::from_u16(status).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("127.0.0.1:{}", address.port()), seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_outside_a_request_starts_a_trace_and_never_records_query_or_credentials() {
    let mut h = Harness::start(&[]).await;
    let (authority, seen) = callee(503).await;
    let outbound = HttpClientInstruments::new(&h.telemetry);
    let response = outbound
        .send(
            reqwest::Client::new()
                .get(format!(
                    "http://user:hunter2@{authority}/pay?card=4111#frag"
                ))
                .header("tracestate", "forged=1"),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    h.flush().await;
    let spans = h.receiver.spans();
    let client = spans.iter().find(|s| s.kind == SpanKind::Client).unwrap();
    assert_eq!(client.parent_span_id, "");
    assert_eq!(client.name, "GET");
    assert_eq!(
        client.str_attr("url.full"),
        Some(format!("http://{authority}/pay").as_str())
    );
    assert_eq!(client.str_attr("error.type"), Some("503"));
    assert_eq!(client.status_code, StatusCode::Error);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        // A new root: sampled, and Level 2's `random` flag (the SDK's trace ids are random).
        [format!("00-{}-{}-03", client.trace_id, client.span_id)]
    );
    let dump = h.receiver.dump_all();
    assert!(!dump.contains("hunter2") && !dump.contains("card=4111"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_failure_is_an_error_with_a_low_cardinality_type() {
    let mut h = Harness::start(&[]).await;
    let closed = crate::common::closed_address();
    let outbound = HttpClientInstruments::new(&h.telemetry);
    let result = outbound
        .send(reqwest::Client::new().post(format!("http://{closed}/x")))
        .await;
    assert!(result.is_err());
    h.flush().await;
    let client = h
        .receiver
        .spans()
        .into_iter()
        .find(|s| s.kind == SpanKind::Client)
        .unwrap();
    assert_eq!(client.str_attr("error.type"), Some("connect"));
    assert!(client.attr("http.response.status_code").is_none());
    let metric = h
        .receiver
        .metrics()
        .into_iter()
        .find(|m| m.name == "http.client.request.duration")
        .unwrap();
    let sets = metric.point_attribute_sets();
    assert!(sets.iter().any(|a| {
        a.get("error.type").and_then(|v| v.as_str()) == Some("connect")
            && a.get("server.port").and_then(|v| v.as_i64()) == Some(i64::from(closed.port()))
    }));
    for set in sets {
        assert!(!set.contains_key("url.full"), "never the URL on a metric");
    }
}
