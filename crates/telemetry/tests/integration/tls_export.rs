//! OTLP export to `https://` endpoints: every signal reaches a TLS receiver over gRPC and
//! HTTP (with the CA of `OTEL_EXPORTER_OTLP_CERTIFICATE`, and with a client certificate for
//! mutual TLS); a certificate the exporter must not trust fails the export, is counted, and
//! never fails a request; TLS settings that cannot work stop start-up naming their variable;
//! and the start-up line says where export goes without any credential.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use crate::common::{config, prometheus_value, routes, serve_instrumented};
use telemetry::Telemetry;
use telemetry::log_sink::LogSink;
use telemetry::testkit::{OtlpReceiver, ReceiverTls, SpanKind, TestPki};

const PROTOCOLS: [&str; 2] = ["grpc", "http/protobuf"];

/// Variables of a test case.
type Env<'a> = Vec<(&'a str, &'a str)>;

fn endpoint(receiver: &OtlpReceiver, protocol: &str) -> String {
    if protocol == "grpc" {
        receiver.grpc_endpoint()
    } else {
        receiver.http_endpoint()
    }
}

fn path(file: &str) -> String {
    TestPki::path(file).display().to_string()
}

/// Serves `routes()` exporting to `receiver` with `protocol` and the extra `pairs`, makes one
/// request (a log line inside it), shuts the instance down (which flushes every signal).
async fn export_one_request(receiver: &OtlpReceiver, protocol: &str, pairs: &[(&str, &str)]) {
    let endpoint = endpoint(receiver, protocol);
    let mut env = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
    ];
    env.extend_from_slice(pairs);
    let (base, _telemetry, guard) = serve_instrumented(config(&env), routes()).await;
    let response = reqwest::get(format!("{base}/items/7")).await.unwrap();
    assert_eq!(response.status(), 200);
    guard.shutdown().await;
}

async fn assert_all_signals_arrived(receiver: &OtlpReceiver, protocol: &str) {
    let spans = receiver
        .wait_for_spans(Duration::from_secs(10), |spans| {
            spans
                .iter()
                .any(|s| s.kind == SpanKind::Server && s.name == "GET /items/{id}")
        })
        .await;
    assert!(spans, "{protocol}: no SERVER span\n{}", receiver.dump_all());
    let logs = receiver
        .wait_for_logs(Duration::from_secs(10), |logs| {
            logs.iter().any(|l| l.body_str() == Some("fetching item"))
        })
        .await;
    assert!(logs, "{protocol}: no log record\n{}", receiver.dump_all());
    let metrics = receiver
        .wait_for_metrics(Duration::from_secs(10), |metrics| {
            metrics
                .iter()
                .any(|m| m.name == "http.server.request.duration")
        })
        .await;
    assert!(metrics, "{protocol}: no metric\n{}", receiver.dump_all());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_signal_reaches_a_tls_receiver_trusting_the_configured_ca() {
    for protocol in PROTOCOLS {
        let receiver = OtlpReceiver::start_tls(ReceiverTls::test_pki())
            .await
            .unwrap();
        assert!(endpoint(&receiver, protocol).starts_with("https://"));
        let ca = path("ca.pem");
        export_one_request(
            &receiver,
            protocol,
            &[("OTEL_EXPORTER_OTLP_CERTIFICATE", &ca)],
        )
        .await;
        assert_all_signals_arrived(&receiver, protocol).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_sends_the_client_certificate_per_signal_variables_included() {
    for protocol in PROTOCOLS {
        let receiver =
            OtlpReceiver::start_tls(ReceiverTls::test_pki().require_client_certificate())
                .await
                .unwrap();
        let (ca, cert, key) = (path("ca.pem"), path("client.pem"), path("client.key"));
        export_one_request(
            &receiver,
            protocol,
            &[
                ("OTEL_EXPORTER_OTLP_CERTIFICATE", &ca),
                ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", &cert),
                ("OTEL_EXPORTER_OTLP_CLIENT_KEY", &key),
                // The per-signal variable wins: the same file, named differently.
                ("OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY", &key),
            ],
        )
        .await;
        assert_all_signals_arrived(&receiver, protocol).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_fails_the_export_is_counted_and_never_fails_a_request() {
    let other_ca = path("other-ca.pem");
    let ca = path("ca.pem");
    // (why it must fail, what the exporter trusts, what the receiver requires)
    let cases: [(&str, Env<'_>, ReceiverTls); 3] = [
        (
            "a CA that did not sign the server certificate",
            vec![("OTEL_EXPORTER_OTLP_CERTIFICATE", other_ca.as_str())],
            ReceiverTls::test_pki(),
        ),
        (
            "the platform's roots (which do not hold the test CA)",
            vec![],
            ReceiverTls::test_pki(),
        ),
        (
            "no client certificate for a receiver that requires one",
            vec![("OTEL_EXPORTER_OTLP_CERTIFICATE", ca.as_str())],
            ReceiverTls::test_pki().require_client_certificate(),
        ),
    ];
    for (case, pairs, receiver_tls) in cases {
        for protocol in PROTOCOLS {
            let receiver = OtlpReceiver::start_tls(receiver_tls.clone()).await.unwrap();
            let endpoint = endpoint(&receiver, protocol);
            let mut env = vec![
                ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "2000"),
                ("OTEL_BSP_SCHEDULE_DELAY", "50"),
                ("OTEL_BLRP_SCHEDULE_DELAY", "50"),
            ];
            env.extend_from_slice(&pairs);
            let (base, telemetry, guard) = serve_instrumented(config(&env), routes()).await;
            let client = reqwest::Client::new();
            for _ in 0..3 {
                let response = client.get(format!("{base}/items/1")).send().await.unwrap();
                assert_eq!(response.status(), 200, "{case}, {protocol}");
            }
            telemetry.force_flush().await;
            let metrics = client
                .get(format!("{base}/metrics"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            for signal in ["spans", "logs", "metrics"] {
                let series = format!("app_telemetry_export_failures_total{{signal=\"{signal}\"}}");
                let failures = prometheus_value(&metrics, &series).unwrap_or(0.0);
                assert!(failures >= 1.0, "{case}, {protocol}: {series}\n{metrics}");
            }
            // Nothing got through the failed handshakes.
            assert_eq!(receiver.export_requests().total(), 0, "{case}, {protocol}");
            guard.shutdown_within(Duration::from_millis(500)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_key_that_does_not_match_its_certificate_stops_start_up() {
    for protocol in PROTOCOLS {
        let (cert, wrong_key) = (path("client.pem"), path("server.key"));
        let config = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://127.0.0.1:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
            ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", &cert),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", &wrong_key),
        ]);
        let error = Telemetry::builder(config)
            .log_sink(LogSink::memory())
            .build()
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("OTEL_EXPORTER_OTLP_CLIENT_KEY")
                && error.contains("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"),
            "{protocol}: {error}"
        );
    }
}

/// The start-up line of an instance built from `pairs` (there is exactly one).
async fn startup_line(pairs: &[(&str, &str)]) -> (serde_json::Value, String) {
    let sink = LogSink::memory();
    let (_telemetry, guard) = Telemetry::builder(config(pairs))
        .log_sink(sink.clone())
        .build()
        .unwrap();
    let captured = sink.captured();
    let lines: Vec<serde_json::Value> = captured
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|l: &serde_json::Value| l["target"] == "telemetry::startup")
        .collect();
    assert_eq!(lines.len(), 1, "{captured}");
    guard.shutdown_within(Duration::from_millis(200)).await;
    (lines[0].clone(), captured)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_start_up_line_says_where_export_goes_and_never_a_credential() {
    let ca = path("ca.pem");
    let (on, raw) = startup_line(&[
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "https://svc-user:hunter2@collector.example:4318/otlp?token=qs-secret",
        ),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "x-api-key=hdr-secret,x-team=t1",
        ),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", &ca),
    ])
    .await;
    assert_eq!(on["level"], "INFO", "{on}");
    assert_eq!(on["message"], "OTLP export is on", "{on}");
    assert_eq!(on["otlp.export"], "on");
    assert_eq!(on["otlp.protocol"], "http/protobuf");
    assert_eq!(
        on["otlp.traces"],
        "https://collector.example:4318/otlp/v1/traces"
    );
    assert_eq!(
        on["otlp.metrics"],
        "https://collector.example:4318/otlp/v1/metrics"
    );
    assert_eq!(
        on["otlp.logs"],
        "https://collector.example:4318/otlp/v1/logs"
    );
    assert_eq!(
        on["otlp.logs.tls"],
        "CA from OTEL_EXPORTER_OTLP_CERTIFICATE"
    );
    assert_eq!(on["otlp.headers"], 2);
    for secret in [
        "hunter2",
        "svc-user",
        "qs-secret",
        "hdr-secret",
        "t1",
        "BEGIN",
    ] {
        assert!(!raw.contains(secret), "{secret} in {raw}");
    }

    let (grpc, _) = startup_line(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")]).await;
    assert_eq!(grpc["otlp.protocol"], "grpc");
    assert_eq!(grpc["otlp.traces"], "http://collector:4317");
    assert_eq!(grpc["otlp.traces.tls"], "plaintext");
    let (platform, _) =
        startup_line(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4317")]).await;
    assert_eq!(platform["otlp.metrics.tls"], "platform roots");

    let (off, _) = startup_line(&[]).await;
    assert_eq!(off["otlp.export"], "off");
    assert!(
        off["message"]
            .as_str()
            .unwrap()
            .contains("OTEL_EXPORTER_OTLP_ENDPOINT is not set"),
        "{off}"
    );
    assert!(off.get("otlp.traces").is_none(), "{off}");

    let (disabled, _) = startup_line(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
        ("OTEL_SDK_DISABLED", "true"),
    ])
    .await;
    assert_eq!(disabled["otlp.export"], "disabled");
    assert!(
        disabled["message"]
            .as_str()
            .unwrap()
            .contains("OTEL_SDK_DISABLED=true"),
        "{disabled}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_start_up_line_follows_rust_log() {
    let sink = LogSink::memory();
    let (_telemetry, guard) = Telemetry::builder(config(&[("RUST_LOG", "warn")]))
        .log_sink(sink.clone())
        .build()
        .unwrap();
    assert!(
        !sink.captured().contains("telemetry::startup"),
        "{}",
        sink.captured()
    );
    guard.shutdown_within(Duration::from_millis(200)).await;
}
