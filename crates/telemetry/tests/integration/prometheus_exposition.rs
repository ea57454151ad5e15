//! `/metrics` is valid Prometheus text exposition: `promtool check metrics` (Debian's
//! `prometheus` package, installed by scripts/test.sh) accepts it with no lint problems.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::process::{Command, Stdio};

use crate::common::Harness;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_accepts_the_metrics_endpoint() {
    let h = Harness::start(&[]).await;
    for path in [
        "/items/1",
        "/items/0",
        "/unavailable",
        "/boom",
        "/nowhere",
        "/healthz",
    ] {
        h.get(path).await;
    }
    let response = h.get("/metrics").await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "Prometheus text content type"
    );
    let body = response.text().await.unwrap();
    for expected in [
        "# TYPE http_server_request_duration_seconds histogram",
        "http_server_request_duration_seconds_bucket{",
        "le=\"0.2\"",
        "# TYPE http_server_active_requests gauge",
        "# TYPE app_errors_total counter",
        "app_errors_total{error_type=\"panic\",http_route=\"/boom\"} 1",
        "target_info{",
    ] {
        assert!(body.contains(expected), "missing {expected:?} in:\n{body}");
    }

    let mut promtool = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => panic!(
            "promtool is required (scripts/test.sh installs Debian's `prometheus` package): {e}"
        ),
    };
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let output = promtool.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "promtool rejected /metrics:\n{report}\n{body}"
    );
    assert!(
        report.trim().is_empty(),
        "promtool lint problems:\n{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_method_on_metrics_answers_the_json_405() {
    let h = Harness::start(&[]).await;
    let response = h
        .client
        .post(format!("{}/metrics", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "GET,HEAD");
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "route.method_not_allowed", "{body}");
}
