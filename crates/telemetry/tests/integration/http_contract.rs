//! The telemetry contract of one request, asserted on what a real server emits: the exported
//! OTLP spans, metrics and logs captured in-process, and the log lines it writes.
#![allow(clippy::unwrap_used)]

use crate::common::Harness;
use telemetry::config::OtlpProtocol;
use telemetry::testkit::{AttrValue, CapturedMetric, MetricData, StatusCode};

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn counter_total(metrics: &[CapturedMetric], name: &str, key: &str, value: &str) -> f64 {
    metrics
        .iter()
        .filter(|m| m.name == name)
        .flat_map(|m| match &m.data {
            MetricData::Sum { points, .. } => points.clone(),
            _ => Vec::new(),
        })
        .filter(|p| p.attributes.get(key).and_then(|v| v.as_str()) == Some(value))
        .map(|p| p.value)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_produces_one_server_span_with_semconv_attributes() {
    let mut h = Harness::start(&[]).await;
    let response = h
        .client
        .get(format!("{}/items/7?secret=query-value", h.base))
        .header("user-agent", "contract-test/1.0")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let traceparent = response.headers()["traceparent"]
        .to_str()
        .unwrap()
        .to_owned();
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    h.flush().await;

    let spans = h.server_spans();
    assert_eq!(spans.len(), 1, "{spans:#?}");
    let span = &spans[0];
    assert_eq!(span.name, "GET /items/{id}");
    assert_eq!(span.str_attr("http.request.method"), Some("GET"));
    assert_eq!(span.str_attr("http.route"), Some("/items/{id}"));
    assert_eq!(span.str_attr("url.path"), Some("/items/7"));
    assert_eq!(span.str_attr("url.scheme"), Some("http"));
    assert_eq!(
        span.attr("http.response.status_code")
            .and_then(|v| v.as_i64()),
        Some(200)
    );
    assert_eq!(span.str_attr("server.address"), Some("127.0.0.1"));
    assert_eq!(
        span.str_attr("client.address"),
        Some("127.0.0.0"),
        "pseudonym mode truncates to /24"
    );
    assert_eq!(
        span.str_attr("user_agent.original"),
        Some("contract-test/1.0")
    );
    // `http.request.header.<key>` is a string array.
    assert_eq!(
        span.attr("http.request.header.x-request-id"),
        Some(&AttrValue::Array(vec![AttrValue::Str(request_id.clone())]))
    );
    assert_eq!(span.str_attr("network.protocol.version"), Some("1.1"));
    assert!(span.attr("error.type").is_none());
    assert_eq!(span.status_code, StatusCode::Unset);
    assert_eq!(span.parent_span_id, "");
    assert!(
        !h.receiver.dump_all().contains("query-value"),
        "the query string never leaves"
    );
    // A new root: sampled, and Level 2's `random` flag (our trace ids are random).
    assert_eq!(
        traceparent,
        format!("00-{}-{}-03", span.trace_id, span.span_id)
    );
    assert_eq!(
        span.resource.get("service.name").and_then(|v| v.as_str()),
        Some("test-svc")
    );
    for key in [
        "service.version",
        "service.instance.id",
        "deployment.environment.name",
    ] {
        assert!(span.resource.contains_key(key), "resource lacks {key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_incoming_traceparent_is_continued() {
    let mut h = Harness::start(&[]).await;
    let response = h
        .client
        .get(format!("{}/items/1", h.base))
        .header("traceparent", PARENT)
        .header("tracestate", "congo=t61rcWkgMzE")
        .send()
        .await
        .unwrap();
    let traceparent = response.headers()["traceparent"]
        .to_str()
        .unwrap()
        .to_owned();
    h.flush().await;
    let span = &h.server_spans()[0];
    assert_eq!(span.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(span.parent_span_id, "00f067aa0ba902b7");
    assert_eq!(span.trace_state, "congo=t61rcWkgMzE");
    assert!(traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
    assert!(
        !traceparent.contains("00f067aa0ba902b7"),
        "the response names our span, not the caller's"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_level_2_random_flag_is_continued() {
    let h = Harness::start(&[]).await;
    let response = h
        .client
        .get(format!("{}/items/1", h.base))
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03",
        )
        .send()
        .await
        .unwrap();
    let traceparent = response.headers()["traceparent"].to_str().unwrap();
    assert!(traceparent.ends_with("-03"), "{traceparent}");
    let unsampled = h
        .client
        .get(format!("{}/items/1", h.base))
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02",
        )
        .send()
        .await
        .unwrap();
    let traceparent = unsampled.headers()["traceparent"].to_str().unwrap();
    assert!(traceparent.ends_with("-02"), "{traceparent}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_traceparent_is_ignored_and_the_request_succeeds() {
    let mut h = Harness::start(&[]).await;
    for bad in [
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "garbage",
    ] {
        let response = h
            .client
            .get(format!("{}/items/1", h.base))
            .header("traceparent", bad)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{bad}");
    }
    h.flush().await;
    let spans = h.server_spans();
    assert_eq!(spans.len(), 4);
    for span in spans {
        assert_eq!(span.parent_span_id, "", "a new root for an invalid parent");
        assert_ne!(span.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_mode_starts_a_new_trace_linked_to_the_caller() {
    let mut h = Harness::start(&[("APP_TRACE_INCOMING", "link")]).await;
    h.client
        .get(format!("{}/items/1", h.base))
        .header("traceparent", PARENT)
        .send()
        .await
        .unwrap();
    h.flush().await;
    let span = &h.server_spans()[0];
    assert_ne!(span.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(span.parent_span_id, "");
    assert_eq!(span.links.len(), 1);
    assert_eq!(span.links[0].trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(span.links[0].span_id, "00f067aa0ba902b7");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_id_is_accepted_when_valid_and_generated_otherwise() {
    let h = Harness::start(&[]).await;
    let response = h
        .client
        .get(format!("{}/items/1", h.base))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "abc-123");
    let long = "x".repeat(200);
    for hostile in [long.as_str(), "a b", "ab\"cd", ""] {
        let response = h
            .client
            .get(format!("{}/items/1", h.base))
            .header("x-request-id", hostile)
            .send()
            .await
            .unwrap();
        let id = response.headers()["x-request-id"].to_str().unwrap();
        assert_ne!(id, hostile);
        assert_eq!(id.len(), 36, "a generated UUIDv7");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdout_and_otlp_logs_carry_the_span_ids_and_request_id() {
    let mut h = Harness::start(&[]).await;
    let response = h.get("/items/5").await;
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    h.flush().await;
    let span = h.server_spans().remove(0);

    let lines = h.log_lines();
    let handler_line = lines
        .iter()
        .find(|l| l["message"] == "fetching item")
        .expect("handler log line");
    let access = h.access_lines();
    assert_eq!(access.len(), 1, "exactly one access line: {lines:#?}");
    for line in [handler_line, &access[0]] {
        assert_eq!(line["trace_id"], span.trace_id.as_str());
        assert_eq!(line["span_id"], span.span_id.as_str());
        assert_eq!(line["request_id"], request_id.as_str());
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'));
    }
    assert_eq!(handler_line["item_id"], 5);
    assert_eq!(handler_line["level"], "INFO");
    let a = &access[0];
    assert_eq!(a["level"], "INFO");
    assert_eq!(a["method"], "GET");
    assert_eq!(a["route"], "/items/{id}");
    assert_eq!(a["status"], 200);
    assert!(a["duration_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(a["response_size"], 8);

    let logs = h.receiver.logs();
    assert_eq!(logs.len(), 2, "{logs:#?}");
    for log in &logs {
        assert_eq!(log.trace_id, span.trace_id);
        assert_eq!(log.span_id, span.span_id);
        assert_eq!(log.str_attr("app.request.id"), Some(request_id.as_str()));
        assert!(log.attr("request_id").is_none(), "OTLP uses app.request.id");
    }
    let otlp_access = logs
        .iter()
        .find(|l| l.event_name == "app.http.access")
        .unwrap();
    // Semantic-convention (or app.*) keys in OTLP; the stdout line keeps its short names.
    assert_eq!(
        otlp_access
            .attr("http.response.status_code")
            .and_then(|v| v.as_i64()),
        Some(200)
    );
    assert_eq!(otlp_access.str_attr("http.request.method"), Some("GET"));
    assert_eq!(otlp_access.str_attr("http.route"), Some("/items/{id}"));
    assert_eq!(otlp_access.str_attr("url.path"), Some("/items/5"));
    assert_eq!(
        otlp_access
            .attr("http.response.body.size")
            .and_then(|v| v.as_i64()),
        Some(8)
    );
    assert!(otlp_access.attr("app.request.duration_ms").is_some());
    for short in [
        "method",
        "route",
        "path",
        "status",
        "duration_ms",
        "response_size",
        "event.name",
    ] {
        assert!(
            otlp_access.attr(short).is_none(),
            "{short} in {otlp_access:#?}"
        );
    }
    assert_eq!(otlp_access.severity_text, "INFO");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcp_format_writes_cloud_logging_fields() {
    let mut h = Harness::start(&[
        ("APP_LOG_FORMAT", "gcp"),
        ("APP_GCP_PROJECT", "demo-project"),
    ])
    .await;
    h.get("/items/0").await;
    h.flush().await;
    let span = h.server_spans().remove(0);
    let access = h.access_lines();
    assert_eq!(access.len(), 1);
    let a = &access[0];
    assert_eq!(a["severity"], "WARNING");
    assert_eq!(
        a["logging.googleapis.com/trace"],
        format!("projects/demo-project/traces/{}", span.trace_id).as_str()
    );
    assert_eq!(a["logging.googleapis.com/spanId"], span.span_id.as_str());
    assert_eq!(a["logging.googleapis.com/trace_sampled"], true);
    assert_eq!(a["httpRequest"]["status"], 404);
    assert_eq!(a["httpRequest"]["requestMethod"], "GET");
    assert!(a["time"].is_string());
    assert!(a.get("level").is_none());
}

/// Asserts the single observation of one failed request.
async fn assert_observed_once(
    path: &str,
    status: u16,
    kind: &str,
    code: &str,
    level: &str,
) -> Harness {
    let mut h = Harness::start(&[]).await;
    let response = h.get(path).await;
    assert_eq!(response.status(), status);
    // The library's error body helper answers JSON as JSON.
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], code, "{body}");
    h.flush().await;

    let metrics = h.receiver.latest_metric_points();
    assert_eq!(
        counter_total(&metrics, "app.errors", "error.type", kind),
        1.0,
        "{metrics:#?}"
    );
    let error_points: usize = metrics.iter().filter(|m| m.name == "app.errors").count();
    assert_eq!(error_points, 1, "one app.errors series");

    let span = h.server_spans().remove(0);
    assert_eq!(span.str_attr("error.type"), Some(kind));
    assert_eq!(span.str_attr("app.error.code"), Some(code));
    let exceptions = span.events.iter().filter(|e| e.name == "exception").count();
    if status >= 500 {
        assert_eq!(span.status_code, StatusCode::Error);
        assert_eq!(exceptions, 1);
    } else {
        assert_eq!(
            span.status_code,
            StatusCode::Unset,
            "4xx is not a server span error"
        );
        assert_eq!(exceptions, 0);
    }

    let lines = h.log_lines();
    let problems: Vec<_> = lines
        .iter()
        .filter(|l| l["level"] == "WARN" || l["level"] == "ERROR")
        .collect();
    assert_eq!(problems.len(), 1, "exactly one WARN/ERROR line: {lines:#?}");
    assert_eq!(problems[0]["target"], "access");
    assert_eq!(problems[0]["level"], level);
    assert_eq!(problems[0]["error.type"], kind);
    assert_eq!(problems[0]["error.code"], code);

    // The OTLP access record: the same observation under OTLP keys; `error.message` is
    // deprecated, so the detail is `app.error.message`.
    let logs = h.receiver.logs();
    let access: Vec<_> = logs
        .iter()
        .filter(|l| l.event_name == "app.http.access")
        .collect();
    assert_eq!(access.len(), 1, "{logs:#?}");
    assert_eq!(access[0].str_attr("error.type"), Some(kind));
    assert_eq!(access[0].str_attr("app.error.code"), Some(code));
    assert!(access[0].str_attr("app.error.message").is_some());
    assert!(access[0].attr("error.message").is_none());
    assert!(access[0].attr("error.code").is_none());
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_is_observed_exactly_once_for_a_handled_404() {
    assert_observed_once("/items/0", 404, "not_found", "item.not_found", "WARN").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_is_observed_exactly_once_for_an_unknown_route() {
    let h = assert_observed_once(
        "/no/such/route",
        404,
        "not_found",
        "route.not_found",
        "WARN",
    )
    .await;
    let span = h.server_spans().remove(0);
    assert_eq!(span.name, "GET");
    assert!(span.attr("http.route").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_is_observed_exactly_once_for_a_failing_handler() {
    let h = assert_observed_once(
        "/unavailable",
        503,
        "unavailable",
        "dependency.unavailable",
        "ERROR",
    )
    .await;
    let line = &h.access_lines()[0];
    assert_eq!(
        line["error.message"],
        "upstream refused for [REDACTED_EMAIL]"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_is_observed_exactly_once_when_a_handler_panics() {
    let h = assert_observed_once("/boom", 500, "panic", "handler.panic", "ERROR").await;
    let span = h.server_spans().remove(0);
    let exception = span.events.iter().find(|e| e.name == "exception").unwrap();
    let message = exception.attributes["exception.message"].as_str().unwrap();
    assert!(message.contains("kaboom"), "{message}");
    assert!(!h.receiver.dump_all().contains("bob@example.com"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn successful_health_checks_leave_no_access_line_but_are_measured() {
    let mut h = Harness::start(&[]).await;
    h.get("/healthz").await;
    h.get("/items/1").await;
    let metrics = h.telemetry.prometheus_text();
    h.flush().await;
    let access = h.access_lines();
    assert_eq!(access.len(), 1);
    assert_eq!(access[0]["route"], "/items/{id}");
    // Measured (RED metrics), but not traced: probes create no span (APP_TRACE_PROBES).
    assert!(
        metrics.lines().any(
            |l| l.starts_with("http_server_request_duration_seconds_count")
                && l.contains("http_route=\"/healthz\"")
        ),
        "{metrics}"
    );
    let spans = h.server_spans();
    assert_eq!(spans.len(), 1, "{spans:#?}");
    assert_eq!(spans[0].name, "GET /items/{id}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_methods_are_folded_into_other() {
    let mut h = Harness::start(&[]).await;
    let method = reqwest::Method::from_bytes(b"BREW").unwrap();
    h.client
        .request(method, format!("{}/items/1", h.base))
        .send()
        .await
        .unwrap();
    h.flush().await;
    let span = h.server_spans().remove(0);
    assert_eq!(span.str_attr("http.request.method"), Some("_OTHER"));
    assert_eq!(span.str_attr("http.request.method_original"), Some("BREW"));
    let metrics = h.receiver.latest_metric_points();
    let duration = metrics
        .iter()
        .find(|m| m.name == "http.server.request.duration")
        .unwrap();
    let sets = duration.point_attribute_sets();
    assert_eq!(sets[0]["http.request.method"].as_str(), Some("_OTHER"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_over_http_protobuf_exports_all_three_signals() {
    let mut h = Harness::start_with(&[], OtlpProtocol::HttpProtobuf, crate::common::routes()).await;
    h.get("/items/3").await;
    h.flush().await;
    let counts = h.receiver.export_requests();
    assert!(
        counts.http.traces >= 1 && counts.http.metrics >= 1 && counts.http.logs >= 1,
        "{counts:?}"
    );
    assert_eq!(counts.grpc.total(), 0);
    assert_eq!(h.server_spans().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_in_one_process_do_not_see_each_other() {
    let mut a = Harness::start(&[("OTEL_SERVICE_NAME", "svc-a")]).await;
    let mut b = Harness::start(&[("OTEL_SERVICE_NAME", "svc-b")]).await;
    for _ in 0..3 {
        a.get("/items/1").await;
    }
    b.get("/items/2").await;
    a.flush().await;
    b.flush().await;
    assert_eq!(a.server_spans().len(), 3);
    assert_eq!(b.server_spans().len(), 1);
    assert!(
        a.receiver
            .spans()
            .iter()
            .all(|s| s.resource["service.name"].as_str() == Some("svc-a"))
    );
    assert!(
        b.receiver
            .logs()
            .iter()
            .all(|l| l.resource["service.name"].as_str() == Some("svc-b"))
    );
    assert_eq!(a.access_lines().len(), 3);
    assert_eq!(b.access_lines().len(), 1);
    assert!(
        a.log_lines()
            .iter()
            .all(|l| l["message"] != "fetching item" || l["item_id"] == 1)
    );
    assert!(
        b.log_lines()
            .iter()
            .all(|l| l["message"] != "fetching item" || l["item_id"] == 2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_and_raw_identity_never_reach_any_signal() {
    for mode in ["pseudonym", "off"] {
        let mut h = Harness::start(&[("APP_PII_MODE", mode)]).await;
        h.client
            .get(format!("{}/user?token=query-secret", h.base))
            .header("x-test-user", "user-4711")
            .header("authorization", "Bearer tok_live_abcdef")
            .header("cookie", "session=cookie-secret")
            .send()
            .await
            .unwrap();
        h.flush().await;
        let everything = format!(
            "{}\n{}",
            h.telemetry.log_sink().captured(),
            h.receiver.dump_all()
        );
        for raw in [
            "user-4711",
            "carol@example.com",
            "dave@example.org",
            // A field the app did not name as an email is free text: scrubbed whole.
            "example.org",
            "tok_secret_value",
            "query-secret",
            "tok_live_abcdef",
            "cookie-secret",
        ] {
            assert!(!everything.contains(raw), "{mode}: {raw} leaked");
        }
        let span = h.server_spans().remove(0);
        match mode {
            "pseudonym" => {
                let pseudo = span.str_attr("enduser.pseudo.id").unwrap();
                assert_eq!(pseudo, h.telemetry.pii().pseudonym("user-4711"));
                assert!(
                    everything.contains("example.com"),
                    "the email domain is kept"
                );
                let line = h
                    .telemetry
                    .log_sink()
                    .captured()
                    .lines()
                    .find(|l| l.contains("user seen"))
                    .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
                    .unwrap();
                assert_eq!(
                    line["email"], "[REDACTED]@example.com",
                    "the app's email field keeps its domain"
                );
                assert_eq!(line["contact_email"], "[REDACTED_EMAIL]");
            }
            _ => {
                assert!(span.attr("enduser.pseudo.id").is_none());
                assert!(span.attr("client.address").is_none());
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_name_field_is_the_otlp_event_name_not_an_attribute() {
    let mut h = Harness::start(&[]).await;
    h.get("/event").await;
    h.flush().await;
    let lines = h.log_lines();
    let line = lines
        .iter()
        .find(|l| l["message"] == "it happened")
        .expect("the event's line");
    assert_eq!(
        line["event.name"], "app.test.happened",
        "stdout keeps the field"
    );
    let logs = h.receiver.logs();
    let record = logs
        .iter()
        .find(|l| l.event_name == "app.test.happened")
        .unwrap_or_else(|| panic!("{logs:#?}"));
    assert!(record.attr("event.name").is_none(), "{record:#?}");
    assert_eq!(record.attr("test.count").and_then(|v| v.as_i64()), Some(3));
}
