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

const OPENMETRICS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

async fn openmetrics(h: &Harness) -> (String, String) {
    let response = h
        .client
        .get(format!("{}/metrics", h.base))
        .header("accept", OPENMETRICS_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    (content_type, response.text().await.unwrap())
}

/// `(series line without the exemplar, trace id, span id, value)` of every exemplar.
fn exemplars(body: &str) -> Vec<(String, String, String, f64)> {
    body.lines()
        .filter_map(|line| {
            let (sample, exemplar) = line.split_once(" # {")?;
            let (labels, rest) = exemplar.split_once("} ")?;
            let label = |name: &str| {
                labels
                    .split(',')
                    .find_map(|l| l.strip_prefix(&format!("{name}=\"")))
                    .map(|v| v.trim_end_matches('"').to_owned())
            };
            let value = rest.split(' ').next()?.parse().ok()?;
            Some((
                sample.to_owned(),
                label("trace_id")?,
                label("span_id")?,
                value,
            ))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openmetrics_carries_exemplars_of_exported_spans() {
    let mut h = Harness::start(&[]).await;
    for path in ["/items/1", "/items/0", "/unavailable", "/boom", "/healthz"] {
        h.get(path).await;
    }
    // The default stays the Prometheus text format, without exemplars.
    let text = h.get("/metrics").await.text().await.unwrap();
    assert!(!text.contains("# {") && !text.contains("# EOF"), "{text}");

    let (content_type, body) = openmetrics(&h).await;
    assert_eq!(
        content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(body.ends_with("# EOF\n"), "{body}");
    assert!(body.contains("# TYPE app_errors counter\n"), "{body}");
    assert!(!body.contains("# TYPE app_errors_total"), "{body}");
    let found = exemplars(&body);
    let on = |prefix: &str, route: &str| {
        found
            .iter()
            .filter(|(s, ..)| {
                s.starts_with(prefix) && s.contains(&format!("http_route=\"{route}\""))
            })
            .count()
    };
    for route in ["/items/{id}", "/unavailable", "/boom"] {
        assert!(
            on("http_server_request_duration_seconds_bucket{", route) >= 1,
            "no duration exemplar for {route}:\n{body}"
        );
    }
    // A probe is measured but not traced (APP_PROBE_ROUTES): no span, so no exemplar.
    assert_eq!(
        on("http_server_request_duration_seconds_bucket{", "/healthz"),
        0,
        "{body}"
    );
    assert!(
        body.contains("http_server_request_duration_seconds_count{")
            && body.contains("http_route=\"/healthz\""),
        "{body}"
    );
    for route in ["/items/{id}", "/unavailable", "/boom"] {
        assert_eq!(on("app_errors_total{", route), 1, "{route}:\n{body}");
    }
    // Each exemplar names the SERVER span the receiver got, and sits in the bucket of its value.
    h.flush().await;
    let spans = h.server_spans();
    for (sample, trace_id, span_id, value) in &found {
        assert!(
            spans
                .iter()
                .any(|s| &s.trace_id == trace_id && &s.span_id == span_id),
            "exemplar {trace_id}/{span_id} of {sample} is no exported SERVER span"
        );
        if let Some(le) = sample
            .split("le=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
        {
            let le: f64 = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            assert!(
                *value <= le,
                "{sample}: exemplar value {value} above its bucket"
            );
        } else {
            assert_eq!(*value, 1.0, "{sample}: a counter exemplar counts one");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsampled_requests_leave_no_exemplar() {
    let h = Harness::start(&[("OTEL_TRACES_SAMPLER", "always_off")]).await;
    for path in ["/items/1", "/boom"] {
        h.get(path).await;
    }
    let (_, body) = openmetrics(&h).await;
    assert!(
        body.contains("http_server_request_duration_seconds_bucket{"),
        "{body}"
    );
    assert!(exemplars(&body).is_empty(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scraper_preferring_text_gets_text() {
    let h = Harness::start(&[]).await;
    h.get("/items/1").await;
    let response = h
        .client
        .get(format!("{}/metrics", h.base))
        .header(
            "accept",
            "text/plain;version=0.0.4,application/openmetrics-text;q=0.5",
        )
        .send()
        .await
        .unwrap();
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
}
