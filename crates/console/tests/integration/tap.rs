//! The seam: a real telemetry instance with the console's tap and no OTLP endpoint hands its
//! encoded spans, log records and metrics to the console.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use console::{Console, Limits};
use telemetry::log_sink::LogSink;
use telemetry::{Telemetry, TelemetryConfig};

use crate::common::{self, eventually};

#[tokio::test]
async fn an_instance_without_an_otlp_endpoint_feeds_the_console() {
    telemetry::testkit::install_test_subscriber();
    let console = Console::new(Limits {
        metric_interval: Duration::from_millis(200),
        ..Limits::default()
    });
    let config = TelemetryConfig::for_tests("tapped");
    assert!(
        !config.otlp_enabled(),
        "no endpoint: only the tap gets the batches"
    );
    let (telemetry, _guard) = Telemetry::builder(config)
        .log_sink(LogSink::memory())
        .export_tap(console.tap())
        .build()
        .unwrap();
    let app = telemetry.observe_router(
        Router::new()
            .route(
                "/hello/{name}",
                get(|| async {
                    tracing::info!(greeting = "hi", "said hello");
                    "hello"
                }),
            )
            .route(
                "/fail",
                get(|| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "no") }),
            ),
    );
    let (address, _stop) = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(telemetry::serve::serve(listener, app, async move {
            let _ = stopped.await;
        }));
        (address, stop)
    };
    let client = reqwest::Client::new();
    for path in ["/hello/a", "/hello/b", "/fail"] {
        client
            .get(format!("http://{address}{path}"))
            .send()
            .await
            .unwrap();
    }
    let served = common::serve_on(console, "127.0.0.1:0").await;
    let seen = eventually(Duration::from_secs(10), || async {
        served.json("/_console/api/requests").await.1["total"] == 3
    })
    .await;
    let (_, body) = served.json("/_console/api/requests").await;
    assert!(seen, "{body}");
    let failed = &body["requests"][0];
    assert_eq!(failed["route"], "/fail");
    assert_eq!(failed["status"], 500);
    assert_eq!(failed["error_type"], "internal");
    assert_eq!(failed["service"], "tapped");
    assert!(failed["request_id"].is_string(), "{failed}");
    let hello = &body["requests"][1];
    assert_eq!(hello["route"], "/hello/{name}");
    assert_eq!(hello["method"], "GET");
    let trace_id = hello["trace_id"].as_str().unwrap().to_owned();
    let logged = eventually(Duration::from_secs(10), || async {
        served
            .json(&format!("/_console/api/traces/{trace_id}"))
            .await
            .1["logs"]
            .as_array()
            .is_some_and(|logs| logs.iter().any(|l| l["body"] == "said hello"))
    })
    .await;
    let (_, trace) = served
        .json(&format!("/_console/api/traces/{trace_id}"))
        .await;
    assert!(logged, "{trace}");
    let said = trace["logs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["body"] == "said hello")
        .unwrap();
    assert_eq!(said["span_id"], hello["span_id"]);
    assert_eq!(said["attributes"]["greeting"], "hi");
    // Metrics: RED points of the routes, the pipeline's health and the series count.
    let charted = eventually(Duration::from_secs(10), || async {
        let (_, metrics) = served.json("/_console/api/metrics").await;
        metrics["routes"].as_array().is_some_and(|routes| {
            routes.iter().any(|r| {
                r["route"] == "/fail" && r["points"].as_array().is_some_and(|p| !p.is_empty())
            })
        })
    })
    .await;
    let (_, metrics) = served.json("/_console/api/metrics").await;
    assert!(charted, "{metrics}");
    assert!(
        metrics["series"]["active"].as_u64().unwrap() > 0,
        "{metrics}"
    );
    assert_eq!(metrics["series"]["budget"], 1000);
    assert_eq!(metrics["pipeline"]["spans_dropped"], 0);
    assert_eq!(metrics["pipeline"]["export_failures"], 0);
    let instances = metrics["pipeline"]["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 1);
    assert_eq!(instances[0]["service"], "tapped");
}
