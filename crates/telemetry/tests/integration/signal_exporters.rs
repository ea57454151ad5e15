//! `OTEL_TRACES_EXPORTER`, `OTEL_METRICS_EXPORTER` and `OTEL_LOGS_EXPORTER`: a signal set to
//! `none` never reaches the collector (no export request at all), the others still do, and
//! stdout and `/metrics` are untouched. The cloud persona uses `OTEL_LOGS_EXPORTER=none`, since
//! Cloud Logging already reads the stdout lines.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use crate::common::{config, routes, serve_instrumented};
use telemetry::config::OtlpProtocol;
use telemetry::testkit::OtlpReceiver;

async fn serve_with(pairs: &[(&str, &str)]) -> (OtlpReceiver, String, telemetry::TelemetryGuard) {
    let receiver = OtlpReceiver::start().await.unwrap();
    let (base, _telemetry, guard) = serve_instrumented(
        config(pairs).with_otlp(receiver.grpc_endpoint(), OtlpProtocol::Grpc),
        routes(),
    )
    .await;
    (receiver, base, guard)
}

async fn get(url: String) -> String {
    let response = reqwest::get(url).await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_set_to_none_send_spans_and_metrics_but_no_log_record() {
    let (receiver, base, guard) = serve_with(&[("OTEL_LOGS_EXPORTER", "none")]).await;
    for id in 1..=3 {
        get(format!("{base}/items/{id}")).await;
    }
    assert!(
        receiver
            .wait_for_spans(Duration::from_secs(5), |spans| spans.len() >= 3)
            .await,
        "spans still go out: {:?}",
        receiver.export_requests()
    );
    assert!(
        receiver
            .wait_for_metrics(Duration::from_secs(5), |metrics| metrics
                .iter()
                .any(|m| m.name == "http.server.request.duration"))
            .await,
        "metrics still go out"
    );
    guard.shutdown_within(Duration::from_secs(2)).await;
    // After the flush at shutdown nothing can still be on its way.
    assert_eq!(
        receiver.export_requests().logs(),
        0,
        "no log export request"
    );
    assert!(receiver.logs().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_and_metrics_set_to_none_send_only_log_records() {
    let (receiver, base, guard) = serve_with(&[
        ("OTEL_TRACES_EXPORTER", "none"),
        ("OTEL_METRICS_EXPORTER", "prometheus"),
    ])
    .await;
    get(format!("{base}/items/7")).await;
    assert!(
        receiver
            .wait_for_logs(Duration::from_secs(5), |logs| !logs.is_empty())
            .await,
        "log records still go out"
    );
    // `/metrics` is served whatever OTEL_METRICS_EXPORTER says.
    let metrics = get(format!("{base}/metrics")).await;
    assert!(
        metrics.contains("http_server_request_duration_seconds_bucket"),
        "{metrics}"
    );
    guard.shutdown_within(Duration::from_secs(2)).await;
    let counts = receiver.export_requests();
    assert_eq!(counts.traces(), 0, "no trace export request: {counts:?}");
    assert_eq!(counts.metrics(), 0, "no metric export request: {counts:?}");
    // The log record still carries the request's trace id: spans are made, just not sent.
    assert!(receiver.logs().iter().any(|log| !log.trace_id.is_empty()));
}

#[test]
fn an_unknown_exporter_stops_start_up_naming_the_variable() {
    for (variable, value) in [
        ("OTEL_TRACES_EXPORTER", "zipkin"),
        ("OTEL_METRICS_EXPORTER", "console"),
        ("OTEL_LOGS_EXPORTER", "otlp,console"),
    ] {
        let error = telemetry::config::TelemetryConfig::from_lookup("svc", "1", |key| {
            (key == variable).then(|| value.to_owned())
        })
        .unwrap_err()
        .to_string();
        assert!(error.contains(variable), "{error}");
        assert!(error.contains("none"), "names the allowed values: {error}");
    }
}
