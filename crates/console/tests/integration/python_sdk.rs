//! The standalone console receives OTLP from a process that is not ours: the Python
//! OpenTelemetry SDK (from PyPI, installed by `scripts/python-otel-venv.sh`, which
//! `scripts/test.sh` runs), exporting over OTLP/HTTP protobuf and over OTLP/gRPC.

use std::path::PathBuf;
use std::time::Duration;

use console::config::StandaloneConfig;
use console::standalone::Standalone;

use crate::common::{self, eventually};

const SCRIPT: &str = r#"
import sys
from opentelemetry import trace
from opentelemetry._logs import set_logger_provider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
import logging

protocol, endpoint, service = sys.argv[1], sys.argv[2], sys.argv[3]
if protocol == "grpc":
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    spans, logs = OTLPSpanExporter(endpoint=endpoint, insecure=True), OTLPLogExporter(endpoint=endpoint, insecure=True)
else:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    spans, logs = OTLPSpanExporter(endpoint=endpoint + "/v1/traces"), OTLPLogExporter(endpoint=endpoint + "/v1/logs")

resource = Resource.create({"service.name": service})
tracer_provider = TracerProvider(resource=resource)
tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
logger_provider = LoggerProvider(resource=resource)
logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
set_logger_provider(logger_provider)
logger = logging.getLogger("python.checkout")
logger.addHandler(LoggingHandler(logger_provider=logger_provider))
logger.setLevel(logging.INFO)

tracer = tracer_provider.get_tracer("python-test")
with tracer.start_as_current_span("GET /py/items", kind=trace.SpanKind.SERVER) as span:
    span.set_attribute("http.request.method", "GET")
    span.set_attribute("http.route", "/py/items")
    span.set_attribute("http.response.status_code", 200)
    with tracer.start_as_current_span("load items"):
        logger.info("python says hello")
    print(format(span.get_span_context().trace_id, "032x"))
tracer_provider.shutdown()
logger_provider.shutdown()
"#;

/// The venv's python, or `None` (with the reason) when the venv is absent.
fn python() -> Option<PathBuf> {
    let path = std::env::var_os("CONSOLE_PYTHON").map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/otel-python-venv/bin/python")
        },
        PathBuf::from,
    );
    if path.exists() {
        return Some(path);
    }
    let required =
        std::env::var_os("CI").is_some() || std::env::var_os("CONSOLE_REQUIRE_PYTHON").is_some();
    assert!(
        !required,
        "the Python OpenTelemetry venv is missing at {}: run scripts/python-otel-venv.sh",
        path.display()
    );
    eprintln!(
        "SKIPPED: the Python OpenTelemetry venv is missing at {} (scripts/python-otel-venv.sh installs it; scripts/test.sh runs that)",
        path.display()
    );
    None
}

#[tokio::test]
async fn spans_and_logs_of_the_python_sdk_show_up_over_http_and_grpc() {
    let Some(python) = python() else { return };
    let config = StandaloneConfig::from_lookup(|key| match key {
        "APP_CONSOLE_ADDR" | "APP_CONSOLE_OTLP_GRPC_ADDR" | "APP_CONSOLE_OTLP_HTTP_ADDR" => {
            Some("127.0.0.1:0".to_owned())
        }
        _ => None,
    })
    .unwrap();
    let standalone = Standalone::start(&config).await.unwrap();
    let served = common::Served::for_address(standalone.console.clone(), standalone.ui);
    for (protocol, endpoint, service) in [
        (
            "http",
            format!("http://{}", standalone.otlp_http),
            "py-http",
        ),
        (
            "grpc",
            format!("http://{}", standalone.otlp_grpc),
            "py-grpc",
        ),
    ] {
        let output = tokio::process::Command::new(&python)
            .arg("-c")
            .arg(SCRIPT)
            .args([protocol, &endpoint, service])
            .output()
            .await
            .unwrap();
        assert!(
            output.status.success(),
            "{protocol}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let trace_id = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        assert_eq!(trace_id.len(), 32, "{trace_id}");
        let (_, body) = served
            .json(&format!("/_console/api/requests?service={service}"))
            .await;
        assert_eq!(body["total"], 1, "{protocol}: {body}");
        let request = &body["requests"][0];
        assert_eq!(request["trace_id"], trace_id.as_str());
        assert_eq!(request["route"], "/py/items");
        assert_eq!(request["status"], 200);
        let found = eventually(Duration::from_secs(5), || async {
            served
                .json(&format!("/_console/api/traces/{trace_id}"))
                .await
                .1["logs"]
                .as_array()
                .is_some_and(|l| !l.is_empty())
        })
        .await;
        let (_, trace) = served
            .json(&format!("/_console/api/traces/{trace_id}"))
            .await;
        assert!(found, "{protocol}: {trace}");
        assert_eq!(trace["services"], serde_json::json!([service]));
        let spans = trace["spans"].as_array().unwrap();
        assert_eq!(spans.len(), 2, "{trace}");
        assert!(
            spans
                .iter()
                .any(|s| s["name"] == "load items" && s["kind"] == "INTERNAL")
        );
        let log = &trace["logs"][0];
        assert_eq!(log["body"], "python says hello");
        assert_eq!(log["severity_text"], "INFO");
        assert_eq!(log["service"], service);
        let child = spans.iter().find(|s| s["name"] == "load items").unwrap();
        assert_eq!(log["span_id"], child["span_id"]);
    }
    standalone.stop().await;
}
