//! What the telemetry plane loses is counted and visible on `/metrics`: records dropped by a
//! full export queue, and export requests that failed.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;

use common::{Harness, config, routes};
use telemetry::Telemetry;
use telemetry::config::OtlpProtocol;
use telemetry::log_sink::LogSink;

fn counter(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find(|line| line.starts_with(series))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_and_counts_instead_of_waiting() {
    // Queues of 2 records, exported only every minute: the rest must be dropped and counted.
    let h = Harness::start(&[
        ("OTEL_BSP_MAX_QUEUE_SIZE", "2"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "2"),
        ("OTEL_BSP_SCHEDULE_DELAY", "60000"),
        ("OTEL_BLRP_MAX_QUEUE_SIZE", "2"),
        ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "2"),
        ("OTEL_BLRP_SCHEDULE_DELAY", "60000"),
    ])
    .await;
    for _ in 0..30 {
        assert_eq!(h.get("/items/1").await.status(), 200);
    }
    let metrics = h.get("/metrics").await.text().await.unwrap();
    assert!(
        counter(&metrics, "app_telemetry_dropped_total{signal=\"spans\"}") >= 20.0,
        "{metrics}"
    );
    assert!(
        counter(&metrics, "app_telemetry_dropped_total{signal=\"logs\"}") >= 20.0,
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_exports_are_counted_and_requests_still_succeed() {
    telemetry::testkit::install_test_subscriber();
    // A port where nothing listens.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut cfg = config(&[("OTEL_EXPORTER_OTLP_TIMEOUT", "500")])
        .with_otlp(format!("http://{closed}"), OtlpProtocol::HttpProtobuf);
    cfg.span_batch.schedule_delay = std::time::Duration::from_millis(50);
    cfg.log_batch.schedule_delay = std::time::Duration::from_millis(50);
    let (telemetry, guard) = Telemetry::builder(cfg)
        .log_sink(LogSink::memory())
        .build()
        .unwrap();
    let app = telemetry.instrument(routes());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    let client = reqwest::Client::new();
    for _ in 0..5 {
        let response = client
            .get(format!("http://{addr}/items/1"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    telemetry.force_flush().await;
    let metrics = client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        counter(
            &metrics,
            "app_telemetry_export_failures_total{signal=\"spans\"}"
        ) >= 1.0,
        "{metrics}"
    );
    assert!(
        counter(
            &metrics,
            "app_telemetry_export_failures_total{signal=\"logs\"}"
        ) >= 1.0,
        "{metrics}"
    );
    guard
        .shutdown_within(std::time::Duration::from_secs(2))
        .await;
}
