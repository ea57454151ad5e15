//! A real collector between the shop and the backend: the shop binary exports traces, metrics
//! and logs to a `rotel` collector process (PyPI `rotel`), which forwards them over OTLP to the
//! in-process receiver. Spans, metrics and logs arrive intact: the trace id the request came
//! with, the span and metric attributes, the log's trace correlation and the resource.
//!
//! The collector binary is `SHOP_ROTEL_AGENT`, else the `rotel-agent` that scripts/test.sh
//! installs into `.stack-tools/rotel-venv`. Without it the tests skip with a message, unless
//! `SHOP_REQUIRE_ROTEL` (set by scripts/test.sh) or `CI` is set: then they fail.

#![allow(clippy::unwrap_used)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use telemetry::testkit::{AttrValue, Attributes, MetricData, OtlpReceiver, SpanKind};

use crate::common::TempDatabase;
use crate::common::process::{free_port, shop_command, wait_healthy};

/// A child process killed when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn required() -> bool {
    let set = |key: &str| {
        std::env::var(key)
            .is_ok_and(|v| !v.trim().is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
    };
    set("SHOP_REQUIRE_ROTEL") || set("CI")
}

/// `SHOP_ROTEL_AGENT`, or the `rotel-agent` of the project's venv.
fn rotel_agent() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("SHOP_ROTEL_AGENT").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.stack-tools/rotel-venv/lib");
    std::fs::read_dir(lib)
        .ok()?
        .flatten()
        .map(|python| python.path().join("site-packages/rotel/rotel-agent"))
        .find(|agent| agent.is_file())
}

/// The collector binary, or `None` (skip) when it is missing and not required.
fn rotel_or_skip(test: &str) -> Option<PathBuf> {
    let agent = rotel_agent();
    if agent.is_none() {
        assert!(
            !required(),
            "{test}: rotel-agent is required (SHOP_REQUIRE_ROTEL or CI is set) but neither \
             SHOP_ROTEL_AGENT nor .stack-tools/rotel-venv has it (scripts/test.sh installs it)"
        );
        eprintln!(
            "SKIPPED {test}: no rotel-agent (set SHOP_ROTEL_AGENT, or run scripts/test.sh, which \
             installs PyPI rotel into .stack-tools/rotel-venv); set SHOP_REQUIRE_ROTEL=1 to make \
             this a failure"
        );
    }
    agent
}

async fn wait_listening(port: u16, what: &str, child: &mut Child) {
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("{what} exited with {status} before listening on {port}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{what} did not listen on {port} within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn str_attr<'a>(attributes: &'a Attributes, key: &str) -> Option<&'a str> {
    match attributes.get(key) {
        Some(AttrValue::Str(s)) => Some(s),
        _ => None,
    }
}

/// `protocol` is used on both hops: shop → rotel and rotel → receiver.
async fn spans_metrics_and_logs_cross_a_real_collector(protocol: &str) {
    let test = format!("collector_hop over {protocol}");
    let Some(agent) = rotel_or_skip(&test) else {
        return;
    };
    let receiver = OtlpReceiver::start().await.unwrap();
    let dir = TempDatabase::new();
    let (grpc_port, http_port) = (free_port(), free_port());
    let (listen_port, shop_protocol, upstream) = match protocol {
        "grpc" => (grpc_port, "grpc", receiver.grpc_endpoint()),
        _ => (http_port, "http/protobuf", receiver.http_endpoint()),
    };
    let log_file = dir.directory.join("rotel.log");
    let mut rotel = Killed(
        Command::new(&agent)
            .arg("start")
            .args(["--otlp-grpc-endpoint", &format!("127.0.0.1:{grpc_port}")])
            .args(["--otlp-http-endpoint", &format!("127.0.0.1:{http_port}")])
            .args(["--exporter", "otlp", "--otlp-exporter-endpoint", &upstream])
            .args(["--otlp-exporter-protocol", protocol])
            // The in-process receiver takes uncompressed requests only.
            .args(["--otlp-exporter-compression", "none"])
            .args(["--batch-timeout", "100ms"])
            .arg("--pid-file")
            .arg(dir.directory.join("rotel.pid"))
            .arg("--log-file")
            .arg(&log_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{test}: cannot start {}: {e}", agent.display())),
    );
    wait_listening(listen_port, "rotel-agent", &mut rotel.0).await;

    let port = free_port();
    let mut shop = Killed(
        shop_command()
            .env("PORT", port.to_string())
            .env("DATABASE_URL", dir.url())
            .env("APP_LOG_FORMAT", "json")
            .env(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("http://127.0.0.1:{listen_port}"),
            )
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", shop_protocol)
            .env("OTEL_BSP_SCHEDULE_DELAY", "100")
            .env("OTEL_BLRP_SCHEDULE_DELAY", "100")
            .env("OTEL_METRIC_EXPORT_INTERVAL", "300")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    if let Err(status) = wait_healthy(&base, &mut shop.0).await {
        panic!("{test}: the shop exited with {status}");
    }

    // One request carrying a trace id of ours: every signal of it must come back with it.
    let trace_id = format!(
        "{:032x}",
        0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c_u128 + port as u128
    );
    let response = reqwest::Client::new()
        .get(format!("{base}/v1/products/2"))
        .header("traceparent", format!("00-{trace_id}-b7ad6b7169203331-01"))
        .header("x-request-id", format!("collector-hop-{protocol}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let wait = Duration::from_secs(15);
    let server = |spans: &[telemetry::testkit::CapturedSpan]| {
        spans
            .iter()
            .find(|s| s.trace_id == trace_id && s.kind == SpanKind::Server)
            .cloned()
    };
    let arrived = receiver.wait_for_spans(wait, |s| server(s).is_some()).await;
    let rotel_log = || std::fs::read_to_string(&log_file).unwrap_or_default();
    assert!(
        arrived,
        "{test}: no SERVER span of trace {trace_id} through rotel\nrotel log:\n{}\n{}",
        rotel_log(),
        receiver.dump_all()
    );
    let span = server(&receiver.spans()).unwrap();
    assert_eq!(span.name, "GET /v1/products/{id}");
    assert_eq!(span.parent_span_id, "b7ad6b7169203331", "{span:?}");
    assert_eq!(
        str_attr(&span.attributes, "http.route"),
        Some("/v1/products/{id}")
    );
    assert_eq!(
        span.attributes.get("http.response.status_code"),
        Some(&AttrValue::Int(200))
    );
    assert_eq!(
        str_attr(&span.resource, "service.name"),
        Some("shop"),
        "{span:?}"
    );

    // The access line of that request, correlated with the span.
    let log_of_span = |logs: &[telemetry::testkit::CapturedLog]| {
        logs.iter()
            .find(|l| l.trace_id == trace_id && l.span_id == span.span_id)
            .cloned()
    };
    assert!(
        receiver
            .wait_for_logs(wait, |l| log_of_span(l).is_some())
            .await,
        "{test}: no log record of span {} through rotel\n{}",
        span.span_id,
        receiver.dump_all()
    );
    let log = log_of_span(&receiver.logs()).unwrap();

    // The duration histogram point of the route, with its semconv attributes.
    let route_point = |metrics: &[telemetry::testkit::CapturedMetric]| {
        metrics
            .iter()
            .filter(|m| m.name == "http.server.request.duration")
            .find(|m| match &m.data {
                MetricData::Histogram { points, .. } => points.iter().any(|p| {
                    str_attr(&p.attributes, "http.route") == Some("/v1/products/{id}")
                        && p.attributes.get("http.response.status_code")
                            == Some(&AttrValue::Int(200))
                        && p.count >= 1
                }),
                _ => false,
            })
            .cloned()
    };
    assert!(
        receiver
            .wait_for_metrics(wait, |m| route_point(m).is_some())
            .await,
        "{test}: no http.server.request.duration point of the route through rotel\n{}",
        receiver.dump_all()
    );
    let metric = route_point(&receiver.metrics()).unwrap();
    assert_eq!(metric.unit, "s");

    // One resource, unchanged by the hop, on all three signals.
    assert_eq!(log.resource, span.resource, "log resource");
    assert_eq!(metric.resource, span.resource, "metric resource");
    for key in ["service.version", "telemetry.sdk.language"] {
        assert!(
            span.resource.contains_key(key),
            "{key} missing: {:?}",
            span.resource
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_metrics_and_logs_cross_a_real_collector_over_grpc() {
    spans_metrics_and_logs_cross_a_real_collector("grpc").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_metrics_and_logs_cross_a_real_collector_over_http() {
    spans_metrics_and_logs_cross_a_real_collector("http").await;
}
