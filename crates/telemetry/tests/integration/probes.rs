//! Health and readiness probes create no spans — no SERVER span, no database span, no
//! `tracing` span — unless `APP_TRACE_PROBES=on`; their metrics stay.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use telemetry::config::OtlpProtocol;
use telemetry::db::DbInstruments;

use crate::common::Harness;

type Db = Arc<OnceLock<DbInstruments>>;

/// A probe's work: a database statement inside a `tracing` span.
async fn check(db: Db) -> &'static str {
    use tracing::Instrument as _;
    let db = db.get().unwrap();
    db.statement("SELECT")
        .run(async { Ok::<_, ()>(()) }, |_| "other")
        .instrument(tracing::info_span!("probe.check"))
        .await
        .unwrap();
    "ok"
}

async fn start(env: &[(&str, &str)]) -> Harness {
    let db: Db = Arc::default();
    let (a, b, c) = (db.clone(), db.clone(), db.clone());
    let router = Router::new()
        .route("/healthz", get(move || check(a.clone())))
        .route("/readyz", get(move || check(b.clone())))
        .route("/work", get(move || check(c.clone())));
    let h = Harness::start_with(env, OtlpProtocol::Grpc, router).await;
    let _ = db.set(DbInstruments::new(&h.telemetry, "sqlite"));
    h
}

/// The trace id of a response's `traceparent`.
fn trace_id(response: &reqwest::Response) -> String {
    let traceparent = response.headers()["traceparent"].to_str().unwrap();
    traceparent.split('-').nth(1).unwrap().to_owned()
}

#[tokio::test]
async fn probes_are_not_traced_but_still_measured() {
    // `always_on` ignores the parent's sampled flag: the probe's child spans must be dropped
    // by the library, not by parent-based sampling.
    let mut h = start(&[("OTEL_TRACES_SAMPLER", "always_on")]).await;
    let health = h.get("/healthz").await;
    assert_eq!(health.status(), 200);
    assert!(
        health.headers()["traceparent"]
            .to_str()
            .unwrap()
            .ends_with("-02"),
        "not sampled (random flag only)"
    );
    let health_trace = trace_id(&health);
    // A probe that arrives with a sampled caller's traceparent is not traced either.
    let ready = h
        .client
        .get(format!("{}/readyz", h.base))
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let work = h.get("/work").await;
    let work_trace = trace_id(&work);
    assert!(
        h.receiver
            .wait_for_metrics(Duration::from_secs(10), |metrics| {
                metrics.iter().any(|m| {
                    m.name == "http.server.request.duration"
                        && m.point_attribute_sets().iter().any(|a| {
                            a.get("http.route").and_then(|v| v.as_str()) == Some("/healthz")
                        })
                })
            })
            .await,
        "the probe's RED metrics are kept"
    );
    h.flush().await;

    let spans = h.receiver.spans();
    // /work: its SERVER span, the `tracing` span and the database span.
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(spans.len(), 3, "{names:?}");
    assert!(spans.iter().all(|s| s.trace_id == work_trace), "{spans:#?}");
    assert!(names.contains(&"GET /work"));
    assert!(names.contains(&"probe.check"));
    assert!(names.contains(&"SELECT"));
    assert!(spans.iter().all(|s| s.trace_id != health_trace));
    assert!(
        spans
            .iter()
            .all(|s| s.trace_id != "4bf92f3577b34da6a3ce929d0e0e4736")
    );
}

#[tokio::test]
async fn app_trace_probes_on_traces_them() {
    let mut h = start(&[("APP_TRACE_PROBES", "on")]).await;
    let health = h.get("/healthz").await;
    let health_trace = trace_id(&health);
    h.flush().await;
    let spans = h.receiver.spans();
    assert_eq!(spans.len(), 3, "{spans:#?}");
    assert!(spans.iter().all(|s| s.trace_id == health_trace));
    assert!(spans.iter().any(|s| s.name == "GET /healthz"));
}

#[tokio::test]
async fn other_probe_routes_can_be_named() {
    let mut h = start(&[("APP_PROBE_ROUTES", "/work")]).await;
    let health = h.get("/healthz").await;
    let health_trace = trace_id(&health);
    h.get("/work").await;
    h.flush().await;
    let spans = h.receiver.spans();
    assert_eq!(spans.len(), 3, "{spans:#?}");
    assert!(spans.iter().all(|s| s.trace_id == health_trace));
}
