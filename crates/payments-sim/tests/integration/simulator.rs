//! The payment simulator over real HTTP: charges approved, declined and replayed by idempotency
//! key, injected errors, latency and hangs, the admin API and its guard, bad input, its
//! telemetry (a SERVER span of `payments-sim` continuing the caller's trace).

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use crate::common::{TestSimulator, parse_json_lines, spawn_simulator, spawn_simulator_with};
use payments_sim::{Faults, Latency, Simulator, SimulatorConfig, Stats};
use reqwest::StatusCode;
use serde_json::{Value, json};
use telemetry::config::Secret;
use telemetry::testkit::{OtlpReceiver, SpanKind};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

async fn start(faults: Faults) -> (TestSimulator, OtlpReceiver) {
    let receiver = OtlpReceiver::start().await.unwrap();
    (spawn_simulator(&receiver, faults).await, receiver)
}

fn order(amount_cents: u64, reference: &str) -> Value {
    json!({"amount_cents": amount_cents, "currency": "EUR", "reference": reference})
}

/// POSTs `body` to `/v1/charges` with `key`; returns status, `Idempotent-Replayed` and body.
async fn charge(sim: &TestSimulator, key: &str, body: &Value) -> (StatusCode, bool, Value) {
    let response = reqwest::Client::new()
        .post(sim.url("/v1/charges"))
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    read(response).await
}

async fn read(response: reqwest::Response) -> (StatusCode, bool, Value) {
    let status = response.status();
    let replayed = response
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true");
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, replayed, body)
}

fn faults(change: impl FnOnce(&mut Faults)) -> Faults {
    let mut faults = Faults::none();
    change(&mut faults);
    faults
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_charge_is_approved_with_201_and_a_new_charge_id() {
    let (sim, _receiver) = start(Faults::none()).await;
    let (status, replayed, body) = charge(&sim, "order-1-attempt", &order(1250, "order-1")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(!replayed);
    let id = body["id"].as_str().unwrap();
    assert!(
        id.len() == 35 && id.starts_with("ch_") && id[3..].bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    assert_eq!(body["status"], "approved");
    assert_eq!(body["amount_cents"], 1250);
    assert_eq!(body["currency"], "EUR");
    assert_eq!(body["reference"], "order-1");
    assert!(body.get("reason").is_none());
    assert_eq!(
        sim.simulator.stats(),
        Stats {
            charges: 1,
            approved: 1,
            ..Stats::default()
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_charge_is_declined_with_402_at_decline_rate_1_and_replays_decline() {
    let (sim, _receiver) = start(faults(|f| f.decline_rate = 1.0)).await;
    let (status, _, body) = charge(&sim, "k-declined", &order(990, "order-2")).await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{body}");
    assert_eq!(body["status"], "declined");
    assert_eq!(body["reason"], "card_declined");
    assert_eq!(body["amount_cents"], 990);

    // A declined charge is a recorded outcome: even with declines off, the key replays it.
    sim.simulator.set_faults(Faults::none()).unwrap();
    let (again, replayed, replay) = charge(&sim, "k-declined", &order(990, "order-2")).await;
    assert_eq!(again, StatusCode::PAYMENT_REQUIRED);
    assert!(replayed);
    assert_eq!(replay, body);
    let stats = sim.simulator.stats();
    assert_eq!((stats.charges, stats.declined, stats.replayed), (1, 1, 1));

    // Observed once, as payment_declined (a 4xx: WARN access line).
    let access: Vec<Value> = sim
        .log_lines()
        .into_iter()
        .filter(|l| l["target"] == "access")
        .collect();
    assert_eq!(access.len(), 2, "{access:?}");
    for line in &access {
        assert_eq!(line["error.type"], "payment_declined", "{line}");
        assert_eq!(line["error.code"], "payment.declined");
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["route"], "/v1/charges");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_injected_error_records_nothing_and_a_retry_with_the_same_key_succeeds() {
    let (sim, _receiver) = start(faults(|f| f.error_rate = 1.0)).await;
    let (status, replayed, body) = charge(&sim, "retry-me", &order(500, "order-3")).await;
    assert!(
        status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::INTERNAL_SERVER_ERROR,
        "{status} {body}"
    );
    assert!(!replayed);
    let code = body["error"]["code"].as_str().unwrap();
    assert!(
        code == "simulated.unavailable" || code == "simulated.internal",
        "{body}"
    );
    assert_eq!(sim.simulator.stats().charges, 0);
    assert_eq!(sim.simulator.stats().errors_injected, 1);

    let client = reqwest::Client::new();
    let knobs: Value = client
        .put(sim.url("/admin/faults"))
        .json(&json!({"error_rate": 0}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(knobs["error_rate"], 0.0);

    let (status, replayed, body) = charge(&sim, "retry-me", &order(500, "order-3")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(!replayed, "the failed attempt recorded nothing to replay");
    let stats: Value = client
        .get(sim.url("/admin/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        stats,
        json!({"charges": 1, "approved": 1, "declined": 0, "replayed": 0,
               "errors_injected": 1, "hangs": 0})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_key_and_body_replays_the_first_answer_without_a_new_charge() {
    let (sim, _receiver) = start(Faults::none()).await;
    let (first_status, first_replayed, first) = charge(&sim, "same", &order(42, "o-4")).await;
    let (second_status, second_replayed, second) = charge(&sim, "same", &order(42, "o-4")).await;
    assert_eq!(first_status, StatusCode::CREATED);
    assert_eq!(second_status, StatusCode::CREATED);
    assert!(!first_replayed);
    assert!(second_replayed);
    assert_eq!(first, second, "same id and body");
    let stats = sim.simulator.stats();
    assert_eq!((stats.charges, stats.replayed), (1, 1));

    // Another key is another charge.
    let (_, _, other) = charge(&sim, "other", &order(42, "o-4")).await;
    assert_ne!(other["id"], first["id"]);
    assert_eq!(sim.simulator.stats().charges, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_key_with_another_body_is_422_key_reused() {
    let (sim, _receiver) = start(Faults::none()).await;
    let (status, _, _) = charge(&sim, "reused", &order(100, "o-5")).await;
    assert_eq!(status, StatusCode::CREATED);
    for different in [order(101, "o-5"), order(100, "o-6")] {
        let (status, replayed, body) = charge(&sim, "reused", &different).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(!replayed);
        assert_eq!(body["error"]["code"], "idempotency.key_reused");
        assert_eq!(body["error"]["field"], "idempotency-key");
    }
    assert_eq!(sim.simulator.stats().charges, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_requests_with_one_key_record_exactly_one_charge() {
    let (sim, _receiver) = start(faults(|f| f.decline_rate = 0.5)).await;
    let body = order(7_500, "o-concurrent");
    let answers =
        futures_util::future::join_all((0..20).map(|_| charge(&sim, "concurrent-key", &body)))
            .await;
    let first = &answers[0];
    for (status, _, answer) in &answers {
        assert_eq!(*status, first.0, "one outcome for all: {answer}");
        assert_eq!(answer["id"], first.2["id"]);
    }
    assert_eq!(
        answers.iter().filter(|(_, replayed, _)| !replayed).count(),
        1
    );
    let stats = sim.simulator.stats();
    assert_eq!((stats.charges, stats.replayed), (1, 19), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_latency_knob_delays_every_answer() {
    let (sim, _receiver) = start(faults(|f| f.latency_ms = Latency::constant(200))).await;
    for key in ["slow-1", "slow-1", "slow-2"] {
        let started = Instant::now();
        let (status, _, _) = charge(&sim, key, &order(1, "o-7")).await;
        let elapsed = started.elapsed();
        assert_eq!(status, StatusCode::CREATED);
        assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hang_times_the_client_out_records_nothing_and_does_not_block_shutdown() {
    let (sim, _receiver) = start(faults(|f| f.hang_rate = 1.0)).await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let error = impatient
        .post(sim.url("/v1/charges"))
        .header("Idempotency-Key", "hung")
        .json(&order(1, "o-8"))
        .send()
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error}");

    // A patient client is still waiting when the simulator stops: it gets 503 at once.
    let url = sim.url("/v1/charges");
    let patient = tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .header("Idempotency-Key", "hung-too")
            .json(&order(1, "o-9"))
            .send()
            .await
    });
    let simulator = sim.simulator.clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    while simulator.stats().hangs < 2 {
        assert!(Instant::now() < deadline, "{:?}", simulator.stats());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(simulator.stats().charges, 0);

    let stopping = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), sim.server.stop())
        .await
        .expect("the simulator stops within 5 s despite hung requests")
        .unwrap();
    assert!(stopping.elapsed() < Duration::from_secs(5));
    let answer = patient.await.unwrap().unwrap();
    assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    let (_, _, body) = read(answer).await;
    assert_eq!(body["error"]["code"], "simulated.unavailable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_put_validates_every_knob_and_applies_partial_changes() {
    let (sim, _receiver) = start(Faults::none()).await;
    let client = reqwest::Client::new();
    let put = |body: Value| client.put(sim.url("/admin/faults")).json(&body).send();

    let (status, _, body) = read(put(json!({"error_rate": 1.5})).await.unwrap()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "faults.invalid");
    assert_eq!(body["error"]["field"], "error_rate");
    let (status, _, body) = read(
        put(json!({"decline_rate": 0.5, "latency_ms": {"p50": 100, "p99": 10}}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "latency_ms.p50");
    assert_eq!(
        sim.simulator.faults(),
        Faults::none(),
        "a refused change changes nothing"
    );

    let (status, _, body) = read(
        put(json!({"decline_rate": 0.25, "latency_ms": {"p50": 5, "p99": 50}}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"error_rate": 0.0, "decline_rate": 0.25, "hang_rate": 0.0,
               "latency_ms": {"p50": 5, "p99": 50}})
    );
    let (_, _, current) = read(client.get(sim.url("/admin/faults")).send().await.unwrap()).await;
    assert_eq!(current, body);

    let (status, _, _) = read(
        client
            .put(sim.url("/admin/faults"))
            .body("{not json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_reset_forgets_charges_and_counters() {
    let (sim, _receiver) = start(Faults::none()).await;
    let (_, _, first) = charge(&sim, "before-reset", &order(1, "o-10")).await;
    let response = reqwest::Client::new()
        .post(sim.url("/admin/reset"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(sim.simulator.stats(), Stats::default());
    let (status, replayed, again) = charge(&sim, "before-reset", &order(1, "o-10")).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(!replayed);
    assert_ne!(again["id"], first["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_requires_the_bearer_token_when_one_is_set_and_never_logs_it() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let token = "sim-admin-token-0123456789";
    let config = SimulatorConfig {
        admin_token: Some(Secret::new(token)),
        ..SimulatorConfig::no_faults()
    };
    let sim = spawn_simulator_with(&receiver, &config).await;
    let client = reqwest::Client::new();
    let stats = |authorization: Option<&str>| {
        let mut request = client.get(sim.url("/admin/stats"));
        if let Some(value) = authorization {
            request = request.header("Authorization", value);
        }
        request.send()
    };

    for wrong in [
        None,
        Some("Bearer not-the-token-at-all"),
        Some("Basic c2ltOnNpbQ=="),
    ] {
        let response = stats(wrong).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{wrong:?}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let (_, _, body) = read(response).await;
        assert_eq!(body["error"]["code"], "admin.token_invalid");
    }
    let response = stats(Some(&format!("Bearer {token}"))).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // Charges do not need the token.
    let (status, _, _) = charge(&sim, "no-token-needed", &order(1, "o-11")).await;
    assert_eq!(status, StatusCode::CREATED);

    let TestSimulator {
        telemetry, guard, ..
    } = sim;
    guard.shutdown().await;
    let logs = telemetry.log_sink().captured();
    assert!(logs.contains("admin.token_invalid"), "{logs}");
    assert!(!logs.contains(token), "{logs}");
    assert!(!receiver.dump_all().contains(token));
}

/// The first non-loopback IPv4 address of this machine, if it has one (no packet is sent).
fn non_loopback_address() -> Option<std::net::IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_is_refused_to_a_non_loopback_peer_without_a_token() {
    let Some(ip) = non_loopback_address() else {
        eprintln!("SKIPPED: this machine has no non-loopback IPv4 address");
        return;
    };
    let (telemetry, _guard, _receiver) = crate::common::test_telemetry().await;
    let simulator = Simulator::new(&SimulatorConfig::no_faults());
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let server = payments_sim::spawn(listener, simulator, &telemetry)
        .await
        .unwrap();
    let port = server.address.port();
    let client = reqwest::Client::new();

    let remote = client
        .get(format!("http://{ip}:{port}/admin/stats"))
        .send()
        .await
        .unwrap();
    assert_eq!(remote.status(), StatusCode::FORBIDDEN);
    let (_, _, body) = read(remote).await;
    assert_eq!(body["error"]["code"], "admin.loopback_only");
    let local = client
        .get(format!("http://127.0.0.1:{port}/admin/stats"))
        .send()
        .await
        .unwrap();
    assert_eq!(local.status(), StatusCode::OK);
    // The public route answers everyone.
    let charge = client
        .post(format!("http://{ip}:{port}/v1/charges"))
        .header("Idempotency-Key", "remote")
        .json(&order(1, "o-12"))
        .send()
        .await
        .unwrap();
    assert_eq!(charge.status(), StatusCode::CREATED);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_answered_with_json_errors_and_records_nothing() {
    let (sim, _receiver) = start(Faults::none()).await;
    let client = reqwest::Client::new();
    let post = |key: Option<&str>, body: &'static str| {
        let mut request = client
            .post(sim.url("/v1/charges"))
            .header("content-type", "application/json")
            .body(body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request.send()
    };
    let valid = r#"{"amount_cents": 1, "currency": "EUR", "reference": "r"}"#;
    let cases = [
        (
            None,
            valid,
            400,
            "idempotency.key_missing",
            Some("idempotency-key"),
        ),
        (
            Some("has space"),
            valid,
            400,
            "idempotency.key_invalid",
            Some("idempotency-key"),
        ),
        (Some("k"), "{not json", 400, "request.malformed_json", None),
        (Some("k"), "", 400, "request.malformed_json", None),
        (Some("k"), "[1, 2]", 422, "request.invalid_body", None),
        (
            Some("k"),
            r#"{"currency": "EUR", "reference": "r"}"#,
            422,
            "request.invalid_body",
            Some("amount_cents"),
        ),
        (
            Some("k"),
            r#"{"amount_cents": 0, "currency": "EUR", "reference": "r"}"#,
            422,
            "request.invalid_body",
            Some("amount_cents"),
        ),
        (
            Some("k"),
            r#"{"amount_cents": 1, "currency": "usd", "reference": "r"}"#,
            422,
            "request.invalid_body",
            Some("currency"),
        ),
        (
            Some("k"),
            r#"{"amount_cents": 1, "currency": "EUR", "reference": ""}"#,
            422,
            "request.invalid_body",
            Some("reference"),
        ),
    ];
    for (key, body, status, code, field) in cases {
        let (actual, _, answer) = read(post(key, body).await.unwrap()).await;
        assert_eq!(actual.as_u16(), status, "{key:?} {body}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{body}");
        assert!(answer["error"]["message"].is_string());
        assert_eq!(answer["error"]["field"].as_str(), field, "{body}");
    }
    let huge = client
        .post(sim.url("/v1/charges"))
        .header("Idempotency-Key", "huge")
        .body(vec![b' '; 64 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(sim.simulator.stats(), Stats::default());

    // Still serving.
    let (status, _, _) = charge(&sim, "k", &order(1, "r")).await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_span_is_payments_sim_and_continues_the_callers_trace() {
    let (sim, receiver) = start(Faults::none()).await;
    let response = reqwest::Client::new()
        .post(sim.url("/v1/charges"))
        .header("Idempotency-Key", "traced")
        .header("traceparent", format!("00-{TRACE}-{PARENT}-01"))
        .json(&order(300, "o-13"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let traceparent = response.headers()["traceparent"].to_str().unwrap();
    assert!(
        traceparent.starts_with(&format!("00-{TRACE}-")),
        "{traceparent}"
    );

    let TestSimulator {
        telemetry, guard, ..
    } = sim;
    guard.shutdown().await;
    let spans = receiver.spans();
    let server = spans
        .iter()
        .find(|s| s.kind == SpanKind::Server && s.name == "POST /v1/charges")
        .unwrap_or_else(|| panic!("no SERVER span in {spans:?}"));
    assert_eq!(server.trace_id, TRACE);
    assert_eq!(server.parent_span_id, PARENT);
    assert_eq!(
        server.resource.get("service.name").and_then(|v| v.as_str()),
        Some("payments-sim")
    );
    assert_eq!(server.str_attr("http.route"), Some("/v1/charges"));

    let lines = parse_json_lines(&telemetry.log_sink().captured());
    let recorded = lines
        .iter()
        .find(|l| l["message"] == "charge recorded")
        .unwrap_or_else(|| panic!("no charge event in {lines:?}"));
    assert_eq!(recorded["trace_id"], TRACE);
    assert_eq!(recorded["payments_sim.charge.outcome"], "approved");
    assert!(
        !lines.iter().any(|l| l.to_string().contains("o-13")),
        "the reference never reaches the logs"
    );
}
