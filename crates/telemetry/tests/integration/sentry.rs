//! Sentry, against a local HTTP endpoint that records the envelopes the service really sends
//! (`SENTRY_DSN` points at it): one event per 5xx and per panic, none for 4xx, tagged with the
//! trace id of the exported SERVER span, without raw PII; a hung endpoint never holds a
//! request up.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;

use crate::common::{Harness, prometheus_value};

#[derive(Clone, Default)]
struct Recorded(Arc<Mutex<Vec<(String, Bytes)>>>);

impl Recorded {
    fn envelopes(&self) -> Vec<(String, Bytes)> {
        self.0.lock().unwrap().clone()
    }
}

/// A Sentry-like intake on 127.0.0.1:0 recording each envelope with its `X-Sentry-Auth`;
/// `hang` makes it never answer. Returns the DSN.
async fn fake_sentry(recorded: Recorded, hang: bool) -> String {
    let app = Router::new().route(
        "/api/{project}/envelope/",
        post(move |headers: HeaderMap, body: Bytes| {
            let recorded = recorded.clone();
            async move {
                let auth = headers
                    .get("x-sentry-auth")
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default();
                recorded.0.lock().unwrap().push((auth, body));
                if hang {
                    std::future::pending::<()>().await;
                }
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://publickey123@{address}/42")
}

/// The event of an envelope (its item of type `event`).
fn event(envelope: &[u8]) -> serde_json::Value {
    let text = std::str::from_utf8(envelope).unwrap();
    let mut lines = text.lines();
    let _header: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    while let Some(item_header) = lines.next() {
        let item: serde_json::Value = serde_json::from_str(item_header).unwrap();
        let payload = lines.next().unwrap();
        if item["type"] == "event" {
            return serde_json::from_str(payload).unwrap();
        }
    }
    panic!("no event item in {text}")
}

#[tokio::test]
async fn one_event_per_5xx_and_per_panic_none_for_4xx() {
    let recorded = Recorded::default();
    let dsn = fake_sentry(recorded.clone(), false).await;
    let mut h = Harness::start(&[("SENTRY_DSN", &dsn)]).await;
    assert_eq!(h.get("/items/1").await.status(), 200);
    assert_eq!(h.get("/items/0").await.status(), 404);
    assert_eq!(h.get("/no/such/route").await.status(), 404);
    assert_eq!(h.get("/unavailable").await.status(), 503);
    assert_eq!(h.get("/boom").await.status(), 500);
    // Shutdown sends what is still queued.
    h.flush().await;

    let envelopes = recorded.envelopes();
    assert_eq!(envelopes.len(), 2, "one per 5xx and per panic");
    for (auth, body) in &envelopes {
        assert!(auth.contains("sentry_key=publickey123"), "{auth}");
        let raw = String::from_utf8_lossy(body);
        for pii in ["ann@example.com", "bob@example.com"] {
            assert!(!raw.contains(pii), "raw PII {pii} in {raw}");
        }
    }
    let events: Vec<serde_json::Value> = envelopes.iter().map(|(_, b)| event(b)).collect();
    let spans = h.server_spans();
    for (name, kind, code) in [
        ("GET /unavailable", "unavailable", "dependency.unavailable"),
        ("GET /boom", "panic", "handler.panic"),
    ] {
        let span = spans.iter().find(|s| s.name == name).unwrap();
        let event = events
            .iter()
            .find(|e| e["transaction"] == name)
            .unwrap_or_else(|| panic!("no event for {name}: {events:#?}"));
        let tags = &event["tags"];
        assert_eq!(tags["trace_id"], span.trace_id.as_str());
        assert_eq!(tags["span_id"], span.span_id.as_str());
        assert_eq!(
            event["contexts"]["trace"]["trace_id"],
            span.trace_id.as_str()
        );
        assert_eq!(tags["error.type"], kind);
        assert_eq!(tags["error.code"], code);
        assert_eq!(tags["service.name"], "test-svc");
        // `error`, the protocol's default level, is left out of the JSON.
        assert!(
            event["level"].is_null() || event["level"] == "error",
            "{event}"
        );
        assert_eq!(event["release"], "1.0.0");
        assert_eq!(event["environment"], "local");
        let exception = &event["exception"]["values"][0];
        assert_eq!(exception["type"], code);
        let value = exception["value"].as_str().unwrap();
        assert!(value.contains("[REDACTED_EMAIL]"), "scrubbed: {value}");
        assert_eq!(exception["mechanism"]["handled"], kind != "panic");
    }
}

#[tokio::test]
async fn a_hung_sentry_never_holds_a_request_and_the_queue_is_bounded() {
    let recorded = Recorded::default();
    let dsn = fake_sentry(recorded.clone(), true).await;
    let mut h = Harness::start(&[("SENTRY_DSN", &dsn)]).await;
    // Far more failures than the queue holds, while the intake answers none of them.
    for _ in 0..(telemetry::sentry::SENTRY_QUEUE + 40) {
        assert_eq!(h.get("/unavailable").await.status(), 503);
    }
    // Still answering at once.
    assert_eq!(h.get("/items/1").await.status(), 200);
    let metrics = h.telemetry.prometheus_text();
    let dropped =
        prometheus_value(&metrics, "app_telemetry_dropped_total{signal=\"sentry\"").unwrap();
    assert!(dropped >= 1.0, "{metrics}");
    // The first envelope is stuck in flight; shutdown gives up within its budget.
    assert!(
        tokio::time::timeout(Duration::from_secs(30), h.flush())
            .await
            .is_ok()
    );
    assert!(!recorded.envelopes().is_empty());
}

#[tokio::test]
async fn sentry_stays_off_without_a_dsn() {
    let recorded = Recorded::default();
    let _dsn = fake_sentry(recorded.clone(), false).await;
    let mut h = Harness::start(&[]).await;
    assert_eq!(h.get("/unavailable").await.status(), 503);
    h.flush().await;
    assert!(recorded.envelopes().is_empty());
    let metrics = h.telemetry.prometheus_text();
    assert!(!metrics.contains("signal=\"sentry\""), "{metrics}");
}
