//! The JSON API over a real HTTP server: bounds and eviction, filters, trace and log views,
//! clear, the live stream, and the loopback guard.

use std::net::SocketAddr;
use std::time::Duration;

use console::{Console, Limits};
use tower::ServiceExt as _;

use crate::common::{self, log, logs, server_span, trace_hex, traces};

const T0: u64 = 1_700_000_000_000_000_000;

fn limits(max_spans: usize, max_logs: usize) -> Limits {
    Limits {
        max_spans,
        max_logs,
        ..Limits::default()
    }
}

#[tokio::test]
async fn oldest_spans_and_logs_are_evicted_and_counted() {
    let served = common::serve(limits(5, 3)).await;
    for n in 0..8u8 {
        served.console.ingest_traces(traces(
            "shop",
            vec![server_span(
                n,
                "GET",
                "/v1/products",
                200,
                1,
                T0 + u64::from(n),
            )],
        ));
    }
    served.console.ingest_logs(logs(
        "shop",
        "shop::orders",
        (0..5u8)
            .map(|n| log(Some(n), 9, "INFO", &format!("line {n}")))
            .collect(),
    ));
    let (status, body) = served.json("/_console/api/requests").await;
    assert_eq!(status, 200);
    assert_eq!(body["total"], 5, "{body}");
    assert_eq!(body["evicted"], 3, "{body}");
    let ids: Vec<&str> = body["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["trace_id"].as_str().unwrap())
        .collect();
    // Newest first; the three oldest are gone.
    assert_eq!(ids.first().copied(), Some(trace_hex(7).as_str()));
    assert_eq!(ids.last().copied(), Some(trace_hex(3).as_str()));
    let (_, body) = served.json("/_console/api/logs").await;
    assert_eq!(body["total"], 3);
    assert_eq!(body["evicted"], 2);
    assert_eq!(body["logs"][0]["body"], "line 4");
    let (status, body) = served
        .json(&format!("/_console/api/traces/{}", trace_hex(0)))
        .await;
    assert_eq!(status, 404, "an evicted trace is gone: {body}");
    assert!(body["error"].is_string());
    let (_, metrics) = served.json("/_console/api/metrics").await;
    assert_eq!(metrics["pipeline"]["console"]["evicted_spans"], 3);
    assert_eq!(metrics["pipeline"]["console"]["store"]["spans"], 5);
}

#[tokio::test]
async fn the_byte_cap_evicts_the_oldest_record_of_either_kind() {
    let served = common::serve(Limits {
        max_bytes: 64 * 1024,
        ..Limits::default()
    })
    .await;
    let big = "x".repeat(4_000);
    for n in 0..40u8 {
        served
            .console
            .ingest_logs(logs("shop", "shop", vec![log(Some(n), 9, "INFO", &big)]));
    }
    let (_, metrics) = served.json("/_console/api/metrics").await;
    let store = &metrics["pipeline"]["console"]["store"];
    assert!(store["bytes"].as_u64().unwrap() <= 64 * 1024, "{store}");
    let kept = store["logs"].as_u64().unwrap();
    assert!(kept > 0 && kept < 40, "{store}");
    assert_eq!(
        metrics["pipeline"]["console"]["evicted_logs"]
            .as_u64()
            .unwrap(),
        40 - kept
    );
}

#[tokio::test]
async fn requests_filter_by_route_status_error_duration_service_and_text() {
    let served = common::serve(Limits::default()).await;
    served.console.ingest_traces(traces(
        "shop",
        vec![
            server_span(1, "GET", "/v1/products", 200, 5, T0 + 1),
            server_span(2, "POST", "/v1/orders", 201, 40, T0 + 2),
            server_span(3, "POST", "/v1/orders", 502, 300, T0 + 3),
            server_span(4, "GET", "/v1/orders/{id}", 404, 2, T0 + 4),
        ],
    ));
    served.console.ingest_traces(traces(
        "payments-sim",
        vec![server_span(5, "POST", "/v1/charges", 201, 20, T0 + 5)],
    ));
    let ids = |body: &serde_json::Value| -> Vec<String> {
        body["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["request_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, body) = served.json("/_console/api/requests?route=/v1/orders").await;
    assert_eq!(ids(&body), ["req-3", "req-2"]);
    let (_, body) = served.json("/_console/api/requests?status_class=4xx").await;
    assert_eq!(ids(&body), ["req-4"]);
    let (_, body) = served.json("/_console/api/requests?error_type=502").await;
    assert_eq!(ids(&body), ["req-3"]);
    assert_eq!(body["requests"][0]["status"], 502);
    let (_, body) = served.json("/_console/api/requests?min_ms=20").await;
    assert_eq!(ids(&body), ["req-5", "req-3", "req-2"]);
    let (_, body) = served
        .json("/_console/api/requests?service=payments-sim")
        .await;
    assert_eq!(ids(&body), ["req-5"]);
    let (_, body) = served.json("/_console/api/requests?q=REQ-1").await;
    assert_eq!(ids(&body), ["req-1"]);
    let (_, body) = served
        .json(&format!("/_console/api/requests?q={}", &trace_hex(2)[20..]))
        .await;
    assert_eq!(ids(&body), ["req-2"]);
    let (_, body) = served.json("/_console/api/requests?limit=2").await;
    assert_eq!(ids(&body), ["req-5", "req-4"]);
    assert_eq!(body["total"], 5);
    let request = &body["requests"][0];
    for key in [
        "trace_id",
        "span_id",
        "service",
        "method",
        "route",
        "status",
        "duration_ms",
        "error_type",
        "request_id",
        "start_unix_nano",
    ] {
        assert!(request.get(key).is_some(), "{key} missing in {request}");
    }
    assert_eq!(request["start_unix_nano"], (T0 + 5).to_string());
    let (status, body) = served.json("/_console/api/requests?status_class=6xx").await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("status_class"));
    let (status, _) = served.json("/_console/api/requests?min_ms=slow").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_trace_has_its_spans_of_every_service_and_its_logs() {
    let served = common::serve(Limits::default()).await;
    let mut child = server_span(9, "POST", "/v1/charges", 201, 10, T0 + 10);
    child.span_id = vec![9, 2, 0, 0, 0, 0, 0, 2];
    child.parent_span_id = vec![9, 1, 0, 0, 0, 0, 0, 1];
    served
        .console
        .ingest_traces(traces("payments-sim", vec![child]));
    served.console.ingest_traces(traces(
        "shop",
        vec![server_span(9, "POST", "/v1/orders", 201, 50, T0)],
    ));
    served.console.ingest_logs(logs(
        "shop",
        "shop::orders::checkout",
        vec![
            log(Some(9), 9, "INFO", "order placed"),
            log(None, 13, "WARN", "other"),
        ],
    ));
    let (status, body) = served
        .json(&format!(
            "/_console/api/traces/{}",
            trace_hex(9).to_uppercase()
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["trace_id"], trace_hex(9));
    assert_eq!(
        body["services"],
        serde_json::json!(["payments-sim", "shop"])
    );
    let spans = body["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 2);
    assert_eq!(spans[0]["service"], "shop", "in start order");
    assert_eq!(spans[0]["parent_span_id"], serde_json::Value::Null);
    assert_eq!(spans[1]["parent_span_id"], spans[0]["span_id"]);
    assert_eq!(spans[0]["kind"], "SERVER");
    assert_eq!(spans[0]["status"]["code"], "UNSET");
    assert_eq!(spans[0]["attributes"]["http.response.status_code"], 201);
    assert_eq!(spans[0]["resource"]["service.name"], "shop");
    assert_eq!(spans[0]["scope"], "test");
    let logs = body["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0]["body"], "order placed");
    assert_eq!(logs[0]["span_id"], spans[0]["span_id"]);
    assert_eq!(logs[0]["target"], "shop::orders::checkout");
    let (status, body) = served.json("/_console/api/traces/not-a-trace").await;
    assert_eq!(status, 400);
    assert!(body["error"].is_string());
    let (status, _) = served
        .json("/_console/api/traces/00000000000000000000000000000001")
        .await;
    assert_eq!(status, 404);
    let (status, body) = served.json("/_console/api/nothing-here").await;
    assert_eq!(status, 404);
    assert!(body["error"].is_string());
}

#[tokio::test]
async fn logs_filter_by_level_target_text_trace_and_service() {
    let served = common::serve(Limits::default()).await;
    served.console.ingest_logs(logs(
        "shop",
        "shop::orders",
        vec![
            log(Some(1), 5, "DEBUG", "debug detail"),
            log(Some(1), 9, "INFO", "Order placed"),
            log(Some(2), 13, "WARN", "payment retried"),
            log(None, 17, "ERROR", "database down"),
        ],
    ));
    served.console.ingest_logs(logs(
        "payments-sim",
        "payments_sim::charges",
        vec![log(Some(2), 9, "INFO", "charge approved")],
    ));
    let bodies = |body: &serde_json::Value| -> Vec<String> {
        body["logs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["body"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, body) = served.json("/_console/api/logs?level=warn").await;
    assert_eq!(bodies(&body), ["database down", "payment retried"]);
    let (_, body) = served.json("/_console/api/logs?target=payments_sim").await;
    assert_eq!(bodies(&body), ["charge approved"]);
    let (_, body) = served.json("/_console/api/logs?q=order").await;
    assert_eq!(bodies(&body), ["Order placed"]);
    let (_, body) = served
        .json(&format!("/_console/api/logs?trace_id={}", trace_hex(2)))
        .await;
    assert_eq!(bodies(&body), ["charge approved", "payment retried"]);
    let (_, body) = served.json("/_console/api/logs?service=shop&limit=1").await;
    assert_eq!(body["total"], 4);
    assert_eq!(body["logs"].as_array().unwrap().len(), 1);
    let record = &body["logs"][0];
    assert_eq!(record["severity_text"], "ERROR");
    assert_eq!(record["severity_number"], 17);
    assert_eq!(record["trace_id"], serde_json::Value::Null);
    assert_eq!(record["service"], "shop");
    let (status, body) = served.json("/_console/api/logs?level=loud").await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("level"));
}

#[tokio::test]
async fn clear_empties_the_store_and_the_stream_tells_live_clients() {
    let served = common::serve(Limits::default()).await;
    let response = served
        .client
        .get(served.url("/_console/api/stream"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut stream = response;
    // The subscription exists once the response headers are back.
    served.console.ingest_traces(traces(
        "shop",
        vec![server_span(1, "GET", "/v1/products", 200, 3, T0)],
    ));
    served
        .console
        .ingest_logs(logs("shop", "shop", vec![log(Some(1), 9, "INFO", "hello")]));
    let cleared = served
        .client
        .post(served.url("/_console/api/clear"))
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), 204);
    let mut text = String::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(chunk) = stream.chunk().await.unwrap() {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if text.contains("event: cleared") {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "stream so far: {text}");
    assert!(text.contains("event: request\ndata: {"), "{text}");
    assert!(text.contains(&trace_hex(1)), "{text}");
    assert!(text.contains("event: log\ndata: {"), "{text}");
    assert!(text.contains("\"body\":\"hello\""), "{text}");
    let (_, body) = served.json("/_console/api/requests").await;
    assert_eq!(body["total"], 0);
    let (_, body) = served.json("/_console/api/logs").await;
    assert_eq!(body["total"], 0);
}

#[tokio::test]
async fn the_ui_and_its_assets_are_embedded() {
    let served = common::serve(Limits::default()).await;
    for (path, kind) in [
        ("/_console/", "text/html"),
        ("/_console/assets/app.js", "text/javascript"),
        ("/_console/assets/app.css", "text/css"),
    ] {
        let response = served.client.get(served.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(content_type.starts_with(kind), "{path}: {content_type}");
        assert!(!response.text().await.unwrap().is_empty());
    }
    let redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(served.url("/_console"))
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status(), 308);
    assert_eq!(redirect.headers()["location"], "/_console/");
}

/// A non-loopback address of this machine, if it has one (the source address of a route to a
/// documentation address; UDP `connect` sends nothing).
fn non_loopback_ip() -> Option<std::net::IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[tokio::test]
async fn clients_that_are_not_on_loopback_get_403() {
    // Over the network, when this machine has a non-loopback address.
    let served = common::serve_on(Console::new(Limits::default()), "0.0.0.0:0").await;
    match non_loopback_ip() {
        Some(ip) => {
            let url = format!(
                "http://{ip}:{}/_console/api/requests",
                served.address.port()
            );
            let response = served.client.get(&url).send().await.unwrap();
            assert_eq!(response.status(), 403, "{url}");
            let body: serde_json::Value = response.json().await.unwrap();
            assert!(body["error"].as_str().unwrap().contains("loopback"));
            let response = served
                .client
                .get(format!("http://{ip}:{}/_console/", served.address.port()))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 403);
            let local = format!(
                "http://127.0.0.1:{}/_console/api/requests",
                served.address.port()
            );
            assert_eq!(
                served.client.get(&local).send().await.unwrap().status(),
                200
            );
        }
        None => eprintln!(
            "no non-loopback address on this machine: the guard is tested in-process only"
        ),
    }
    // In-process, with the peer address a server would record.
    for (peer, expected) in [
        ("10.1.2.3:5000", 403),
        ("[2001:db8::1]:5000", 403),
        ("[::ffff:192.168.0.1]:5000", 403),
        ("127.0.0.1:5000", 200),
        ("[::1]:5000", 200),
    ] {
        let peer: SocketAddr = peer.parse().unwrap();
        let mut request = http::Request::get("/_console/api/requests")
            .body(axum::body::Body::empty())
            .unwrap();
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        let response = served.console.router().oneshot(request).await.unwrap();
        assert_eq!(response.status().as_u16(), expected, "{peer}");
    }
    // Served without ConnectInfo, the peer is unknown: refused.
    let request = http::Request::get("/_console/api/requests")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = served.console.router().oneshot(request).await.unwrap();
    assert_eq!(response.status(), 403);
}
