//! The metric contract of the service, asserted on what it really exports over OTLP:
//! the cardinality budget holds under thousands of unique paths, ids, methods and user agents,
//! the exported series shapes equal the golden list in docs/telemetry.md, and no forbidden
//! attribute key ever appears on a metric.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use crate::common::{TestApp, spawn_app};
use futures_util::stream::{self, StreamExt};
use shop::payments::simulator::Faults;
use telemetry::metrics::FORBIDDEN_METRIC_ATTRIBUTE_KEYS;
use telemetry::testkit::CapturedMetric;

/// The series budget of one instance (docs/telemetry.md).
const SERIES_BUDGET: usize = 1_000;

/// A series shape: metric name and its sorted attribute keys, as in the golden list.
fn shape(name: &str, keys: impl Iterator<Item = String>) -> String {
    let keys: Vec<String> = keys.collect::<BTreeSet<_>>().into_iter().collect();
    format!("{name}{{{}}}", keys.join(","))
}

fn exported_shapes(points: &[CapturedMetric]) -> BTreeSet<String> {
    points
        .iter()
        .flat_map(|m| {
            m.point_attribute_sets()
                .into_iter()
                .map(move |attrs| shape(&m.name, attrs.keys().cloned()))
        })
        .collect()
}

/// The golden series shapes from docs/telemetry.md: (required, optional).
fn golden_shapes() -> (BTreeSet<String>, BTreeSet<String>) {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/telemetry.md"
    ))
    .unwrap();
    let block = doc
        .split("```golden-series\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("docs/telemetry.md has a ```golden-series block");
    let mut required = BTreeSet::new();
    let mut optional = BTreeSet::new();
    for line in block.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match line.strip_suffix('?') {
            Some(shape) => optional.insert(shape.to_owned()),
            None => required.insert(line.to_owned()),
        };
    }
    (required, optional)
}

/// One request of every kind the service answers: successes, handled 400, 401, 404, 409 and
/// 422 on a route, checkouts placed, out of stock, declined (402) and failing at the provider
/// (502), an unmatched route, an unknown method, health, readiness, metrics, the OpenAPI
/// document.
async fn standard_load(app: &TestApp) {
    let sign_up = serde_json::json!({"email": "load@example.com", "name": "Load"});
    let created = app
        .client
        .post(app.url("/v1/users"))
        .json(&sign_up)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let account: serde_json::Value = created.json().await.unwrap();
    let token = account["token"].as_str().unwrap();
    let me = app
        .client
        .get(app.url("/v1/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    assert_eq!(app.get("/v1/me").await.status(), 401);
    let taken = app
        .client
        .post(app.url("/v1/users"))
        .json(&sign_up)
        .send()
        .await
        .unwrap();
    assert_eq!(taken.status(), 409);
    let malformed = app
        .client
        .post(app.url("/v1/users"))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);

    // Checkouts: placed, out of stock (product 3 has 80 in stock), declined, provider failing.
    let checkout = |quantity: u32| {
        app.client
            .post(app.url("/v1/orders"))
            .bearer_auth(token)
            .json(&serde_json::json!({"items": [{"product_id": 3, "quantity": quantity}]}))
            .send()
    };
    assert_eq!(checkout(1).await.unwrap().status(), 201);
    assert_eq!(checkout(100).await.unwrap().status(), 409);
    let simulator = &app.payments.simulator;
    simulator
        .set_faults(Faults {
            decline_rate: 1.0,
            ..Faults::default()
        })
        .unwrap();
    assert_eq!(checkout(1).await.unwrap().status(), 402);
    simulator
        .set_faults(Faults {
            error_rate: 1.0,
            ..Faults::default()
        })
        .unwrap();
    assert_eq!(checkout(1).await.unwrap().status(), 502);
    simulator.set_faults(Faults::default()).unwrap();
    for path in ["/v1/orders", "/v1/orders/1"] {
        let response = app
            .client
            .get(app.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }

    for path in [
        "/v1/products",
        "/v1/products?page=2&per_page=5",
        "/v1/products/1",
        "/v1/products/999999",
        "/v1/products/not-a-number",
        "/v1/products?per_page=0",
        "/no/such/route",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
    ] {
        app.get(path).await;
    }
    let brew = reqwest::Method::from_bytes(b"BREW").unwrap();
    app.client
        .request(brew.clone(), app.url("/v1/products"))
        .send()
        .await
        .unwrap();
    app.client
        .request(brew, app.url("/elsewhere"))
        .send()
        .await
        .unwrap();
}

/// Waits for one complete metric export that started after now, and returns every series seen.
async fn series_after_next_export(app: &TestApp) -> Vec<CapturedMetric> {
    let before = app.receiver.export_requests().metrics();
    let exported = app
        .receiver
        .wait_for_metrics(Duration::from_secs(10), |_| {
            app.receiver.export_requests().metrics() >= before + 2
        })
        .await;
    assert!(exported, "no metric export within 10 s");
    app.receiver.latest_metric_points()
}

/// Requests with unique paths, ids, methods and user agents in the cardinality attack.
const ATTACK_REQUESTS: u32 = 20_000;

/// Resident memory of this process (the server runs in it), from /proc.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn series_count(points: &[CapturedMetric]) -> usize {
    points.iter().map(|m| m.point_attribute_sets().len()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_count_stays_flat_under_tens_of_thousands_of_unique_paths_ids_methods_and_user_agents()
 {
    let app = spawn_app(&[]).await;
    standard_load(&app).await;
    let before = series_count(&series_after_next_export(&app).await);

    // During the attack the receiver only counts (storing 20,000 spans and log records would
    // grow this test process, hiding what the server itself does with memory).
    app.receiver.count_only();
    let rss_before = rss_kib();
    let client = &app.client;
    let statuses: Vec<u16> = stream::iter(0..ATTACK_REQUESTS)
        .map(|i| {
            let (method, path) = match i % 5 {
                0 => (reqwest::Method::GET, format!("/unknown/{i}/path-{}", i * 7)),
                1 => (
                    reqwest::Method::GET,
                    format!("/v1/products/{}", 1_000_000 + i),
                ),
                2 => (reqwest::Method::GET, format!("/v1/products/id-{i}")),
                3 => (
                    reqwest::Method::from_bytes(format!("M{i}").as_bytes()).unwrap(),
                    format!("/v1/products?page={i}"),
                ),
                _ => (
                    reqwest::Method::GET,
                    format!("/v1/products?page={}&sort=x{i}", i % 3 + 1),
                ),
            };
            let request = client
                .request(method, app.url(&path))
                .header("user-agent", format!("agent-{i}-{}", i * 31))
                .header("x-request-id", format!("req-{i}"));
            async move { request.send().await.unwrap().status().as_u16() }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    assert_eq!(statuses.len(), ATTACK_REQUESTS as usize);
    assert!(
        statuses.iter().all(|s| *s < 500),
        "no request failed on the server side"
    );
    let rss_growth_mib = rss_kib().saturating_sub(rss_before) / 1024;
    eprintln!("cardinality attack: {ATTACK_REQUESTS} requests, RSS growth {rss_growth_mib} MiB");
    assert!(
        rss_growth_mib < 64,
        "memory grew by {rss_growth_mib} MiB under unique values"
    );

    app.receiver.accept();
    let points = series_after_next_export(&app).await;
    let after = series_count(&points);
    assert_eq!(
        after, before,
        "{ATTACK_REQUESTS} unique paths, ids, methods and user agents added series"
    );
    assert!(
        after < SERIES_BUDGET,
        "{after} series exceed the budget of {SERIES_BUDGET}"
    );
    // The requests were counted, just not as new series.
    let requests: u64 = points
        .iter()
        .filter(|m| m.name == "http.server.request.duration")
        .flat_map(|m| match &m.data {
            telemetry::testkit::MetricData::Histogram { points, .. } => {
                points.iter().map(|p| p.count).collect()
            }
            _ => Vec::new(),
        })
        .sum();
    assert!(
        requests >= u64::from(ATTACK_REQUESTS),
        "only {requests} requests measured"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exported_series_shapes_equal_the_golden_list() {
    let app = spawn_app(&[]).await;
    standard_load(&app).await;
    let points = series_after_next_export(&app).await;
    let exported = exported_shapes(&points);
    let (required, optional) = golden_shapes();

    let unexpected: Vec<&String> = exported
        .iter()
        .filter(|s| !required.contains(*s) && !optional.contains(*s))
        .collect();
    let missing: Vec<&String> = required.iter().filter(|s| !exported.contains(*s)).collect();
    assert!(
        unexpected.is_empty() && missing.is_empty(),
        "docs/telemetry.md golden-series differs from what the service exports.\n\
         exported but not listed: {unexpected:#?}\nlisted but not exported: {missing:#?}\n\
         update the list in the same change if this is intended"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_metric_carries_a_forbidden_attribute_key() {
    let app = spawn_app(&[]).await;
    standard_load(&app).await;
    app.client
        .get(app.url("/v1/products/1"))
        .header("authorization", "Bearer not-a-real-token")
        .header("user-agent", "forbidden-check/1")
        .send()
        .await
        .unwrap();
    let points = series_after_next_export(&app).await;
    // The library's generic keys and the shop's own (`shop::observability`).
    let forbidden: Vec<&str> = app.telemetry.forbidden_metric_attribute_keys().collect();
    for key in FORBIDDEN_METRIC_ATTRIBUTE_KEYS
        .iter()
        .chain(shop::observability::FORBIDDEN_METRIC_ATTRIBUTE_KEYS)
    {
        assert!(forbidden.contains(key), "{key} is checked");
    }
    for metric in &points {
        for attrs in metric.point_attribute_sets() {
            for key in attrs.keys() {
                assert!(
                    !forbidden.contains(&key.as_str()),
                    "{} carries forbidden key {key}",
                    metric.name
                );
            }
        }
    }
}
