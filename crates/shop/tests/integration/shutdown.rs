//! SIGTERM during load, with the real `shop` binary: the request in flight completes, new
//! connections are refused while it does, the telemetry queued before the signal reaches a live
//! collector, and the process exits 0 within Cloud Run's 10 s — also when the collector is down
//! (hung, or nothing listening). The same contract in-process through `shop::run` (what the
//! binary runs), with a test's shutdown future: drain, and the drain timeout.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::common::process::{collect, free_port, shop_command, sigterm, wait_with_deadline};
use crate::common::{TempDatabase, parse_json_lines};
use telemetry::testkit::{AttrValue, OtlpReceiver, SpanKind};

/// A running binary exporting to `endpoint` (gRPC), with stdout and stderr collected.
struct Shop {
    child: Child,
    base: String,
    port: u16,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
    _database: TempDatabase,
}

impl Drop for Shop {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_shop(endpoint: &str, extra: &[(&str, &str)]) -> Shop {
    let database = TempDatabase::new();
    let port = free_port();
    let mut command = shop_command();
    command
        .env("PORT", port.to_string())
        .env("DATABASE_URL", database.url())
        .env("APP_LOG_FORMAT", "json")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc");
    for (key, value) in extra {
        command.env(key, value);
    }
    let mut child = command.spawn().unwrap();
    let stdout = collect(child.stdout.take().unwrap());
    let stderr = collect(child.stderr.take().unwrap());
    let mut shop = Shop {
        child,
        base: format!("http://127.0.0.1:{port}"),
        port,
        stdout: Some(stdout),
        stderr: Some(stderr),
        _database: database,
    };
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        if client
            .get(format!("{}/healthz", shop.base))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            break;
        }
        if let Some(status) = shop.child.try_wait().unwrap() {
            panic!(
                "shop exited early with {status}: {}",
                shop.stderr.take().unwrap().join().unwrap()
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "shop did not become healthy"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shop
}

/// Steady load: `workers` tasks sending GETs until stopped. Counts answers by status class;
/// a request that got no answer at all (refused or reset connection) is counted apart.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    not_ok: Arc<AtomicUsize>,
    no_answer: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

fn start_load(base: &str, workers: usize) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let not_ok = Arc::new(AtomicUsize::new(0));
    let no_answer = Arc::new(AtomicUsize::new(0));
    let tasks = (0..workers)
        .map(|worker| {
            let (stop, ok, not_ok, no_answer) = (
                Arc::clone(&stop),
                Arc::clone(&ok),
                Arc::clone(&not_ok),
                Arc::clone(&no_answer),
            );
            let url = format!("{base}/v1/products/{}", worker % 3 + 1);
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                while !stop.load(Ordering::Relaxed) {
                    match client.get(&url).send().await {
                        Ok(response) if response.status() == 200 => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(_) => {
                            not_ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => {
                            no_answer.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    }
                }
            })
        })
        .collect();
    Load {
        stop,
        ok,
        not_ok,
        no_answer,
        tasks,
    }
}

impl Load {
    async fn stop(self) -> (usize, usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
        (
            self.ok.load(Ordering::Relaxed),
            self.not_ok.load(Ordering::Relaxed),
            self.no_answer.load(Ordering::Relaxed),
        )
    }
}

/// A sign-up whose body arrives in two parts: the request is in flight (headers read, body
/// incomplete) until `finish` is called. Raw TCP, so nothing retries or reconnects behind
/// the test's back.
struct SlowRequest {
    stream: std::net::TcpStream,
    rest: &'static [u8],
}

const SIGN_UP_BODY: &str = r#"{"email":"slow@example.com","name":"Slow Sam"}"#;

impl SlowRequest {
    fn start(port: u16) -> Self {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let head = format!(
            "POST /v1/users HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            SIGN_UP_BODY.len()
        );
        let (first, rest) = SIGN_UP_BODY.as_bytes().split_at(10);
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(first).unwrap();
        stream.flush().unwrap();
        Self { stream, rest }
    }

    /// Sends the rest of the body and returns the response's status line.
    fn finish(mut self) -> String {
        self.stream.write_all(self.rest).unwrap();
        self.stream.flush().unwrap();
        let mut response = Vec::new();
        let mut buffer = [0_u8; 4096];
        loop {
            match self.stream.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => {
                    response.extend_from_slice(&buffer[..n]);
                    if response.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                Err(error) => panic!("reading the slow request's response: {error}"),
            }
        }
        String::from_utf8_lossy(&response)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned()
    }
}

/// Polls until a new connection to `port` is refused; returns how long that took.
async fn wait_until_refused(port: u16, timeout: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < timeout {
        match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionRefused => {
                return Some(started.elapsed());
            }
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_load_finishes_in_flight_requests_refuses_new_ones_and_flushes_telemetry() {
    let receiver = OtlpReceiver::start().await.unwrap();
    // Nothing is exported on schedule during the test (60 s delays): what reaches the
    // receiver was flushed by the shutdown.
    let mut shop = start_shop(
        &receiver.grpc_endpoint(),
        &[
            ("OTEL_BSP_SCHEDULE_DELAY", "60000"),
            ("OTEL_BLRP_SCHEDULE_DELAY", "60000"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "60000"),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    // Telemetry queued before the signal, identifiable by its request id.
    let marker = "before-sigterm-0001";
    let response = client
        .get(format!("{}/v1/products/2", shop.base))
        .header("x-request-id", marker)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let slow = SlowRequest::start(shop.port);
    let load = start_load(&shop.base, 4);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let signalled = Instant::now();
    sigterm(&shop.child);
    // New connections are refused while the in-flight request still holds the process.
    let refused_after = wait_until_refused(shop.port, Duration::from_secs(5)).await;
    assert!(
        refused_after.is_some(),
        "new connections were still accepted 5 s after SIGTERM"
    );
    assert!(
        shop.child.try_wait().unwrap().is_none(),
        "the process exited with a request in flight"
    );
    let (ok, not_ok, no_answer) = load.stop().await;
    // The in-flight request completes, after the signal and after the listener closed.
    let status_line = tokio::task::spawn_blocking(move || slow.finish())
        .await
        .unwrap();
    assert!(
        status_line.starts_with("HTTP/1.1 201"),
        "in-flight sign-up: {status_line:?}"
    );

    let status = wait_with_deadline(&mut shop.child, Duration::from_secs(10)).await;
    let exited_after = signalled.elapsed();
    let stdout = shop.stdout.take().unwrap().join().unwrap();
    let stderr = shop.stderr.take().unwrap().join().unwrap();
    let Some(status) = status else {
        panic!("shop did not exit within 10 s of SIGTERM\nstdout: {stdout}\nstderr: {stderr}");
    };
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
    assert!(exited_after < Duration::from_secs(10));
    // Every request the server answered was answered properly; the load itself ran.
    assert!(ok > 0, "no request succeeded during the load");
    assert_eq!(not_ok, 0, "requests answered with an error during shutdown");

    // The shutdown flushed what was queued: the marker's SERVER span and access log record,
    // the in-flight sign-up's span, and the metrics.
    let flushed = receiver
        .wait_for_spans(Duration::from_secs(2), |spans| {
            spans.iter().any(|s| {
                s.kind == SpanKind::Server
                    && s.attr("http.request.header.x-request-id")
                        == Some(&AttrValue::Array(vec![AttrValue::Str(marker.to_owned())]))
            }) && spans
                .iter()
                .any(|s| s.kind == SpanKind::Server && s.name == "POST /v1/users")
        })
        .await;
    assert!(
        flushed,
        "queued spans were not flushed: {}",
        receiver.dump_all()
    );
    assert!(
        receiver
            .logs()
            .iter()
            .any(|l| l.str_attr("app.request.id") == Some(marker)),
        "the access record was not flushed"
    );
    assert!(
        receiver
            .metrics()
            .iter()
            .any(|m| m.name == "http.server.request.duration"),
        "metrics were not flushed"
    );
    let lines = parse_json_lines(&stdout);
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "shutting down: draining in-flight requests"),
        "{stdout}"
    );
    println!(
        "live collector: refused new connections {:?} after SIGTERM, exited after {exited_after:?}; \
         load: {ok} ok, {no_answer} without an answer (refused after the signal)",
        refused_after.unwrap()
    );
}

/// SIGTERM under load with the collector down: exit 0 within 10 s with the default export
/// timeout (10 s), so only the shutdown budget bounds the flush.
async fn exits_in_time_with_the_collector_down(endpoint: &str, what: &str) {
    let mut shop = start_shop(endpoint, &[]).await;
    let load = start_load(&shop.base, 4);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let signalled = Instant::now();
    sigterm(&shop.child);
    let status = wait_with_deadline(&mut shop.child, Duration::from_secs(10)).await;
    let exited_after = signalled.elapsed();
    let (ok, not_ok, _) = load.stop().await;
    let stdout = shop.stdout.take().unwrap().join().unwrap();
    let stderr = shop.stderr.take().unwrap().join().unwrap();
    let Some(status) = status else {
        panic!("{what}: shop did not exit within 10 s of SIGTERM\nstderr: {stderr}");
    };
    assert_eq!(status.code(), Some(0), "{what}: stderr: {stderr}");
    assert!(ok > 0, "{what}: no request succeeded");
    assert_eq!(not_ok, 0, "{what}: requests answered with an error");
    assert!(
        parse_json_lines(&stdout)
            .iter()
            .any(|l| l["message"] == "shutting down: draining in-flight requests"),
        "{stdout}"
    );
    println!("{what}: exited {exited_after:?} after SIGTERM ({ok} requests served)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_hung_collector_still_exits_within_10s() {
    let receiver = OtlpReceiver::start().await.unwrap();
    receiver.never_answer();
    exits_in_time_with_the_collector_down(&receiver.grpc_endpoint(), "hung collector").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_no_collector_listening_still_exits_within_10s() {
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    exits_in_time_with_the_collector_down(&format!("http://{closed}"), "no collector").await;
}

// The same contract in-process: `shop::run`, the path the binary takes after parsing its
// environment, driven with a test's own shutdown future instead of a signal.

/// Settings as the binary reads them, with OTLP to `endpoint` exported only on shutdown (60 s
/// schedules) and a fresh SQLite database; the payment simulator runs in-process.
fn in_process_settings(endpoint: &str, database: &TempDatabase) -> shop::run::Settings {
    let env = std::collections::HashMap::from([
        ("PORT", "0".to_owned()),
        ("DATABASE_URL", database.url()),
        ("APP_LOG_FORMAT", "json".to_owned()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.to_owned()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".to_owned()),
        ("OTEL_BSP_SCHEDULE_DELAY", "60000".to_owned()),
        ("OTEL_BLRP_SCHEDULE_DELAY", "60000".to_owned()),
        ("OTEL_METRIC_EXPORT_INTERVAL", "60000".to_owned()),
    ]);
    shop::run::Settings::from_lookup(|key| env.get(key).cloned()).unwrap()
}

/// A scaled-down budget, so the drain timeout is reached quickly.
const SHORT_BUDGET: telemetry::serve::ShutdownBudget = telemetry::serve::ShutdownBudget {
    total: Duration::from_millis(1_500),
    drain: Duration::from_millis(500),
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_shutdown_drains_the_in_flight_request_refuses_new_ones_and_flushes() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let database = TempDatabase::new();
    let settings = in_process_settings(&receiver.grpc_endpoint(), &database);
    let budget = telemetry::serve::ShutdownBudget::CLOUD_RUN;
    let started = shop::run::start(settings, budget).await.unwrap();
    let port = started.address.port();
    let (signal, signalled) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(started.serve(
        async move {
            let _ = signalled.await;
        },
        budget,
    ));
    let marker = "before-shutdown-in-process";
    let response = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/v1/products/2"))
        .header("x-request-id", marker)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let slow = SlowRequest::start(port);
    tokio::time::sleep(Duration::from_millis(200)).await;

    signal.send(()).unwrap();
    assert!(
        wait_until_refused(port, Duration::from_secs(5))
            .await
            .is_some(),
        "new connections were still accepted 5 s after the shutdown began"
    );
    assert!(
        !serving.is_finished(),
        "run returned with a request in flight"
    );
    let status_line = tokio::task::spawn_blocking(move || slow.finish())
        .await
        .unwrap();
    assert!(status_line.starts_with("HTTP/1.1 201"), "{status_line:?}");
    let stopped = tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .expect("run did not return within Cloud Run's 10 s")
        .unwrap();
    assert_eq!(
        stopped,
        telemetry::serve::Stopped {
            failed: false,
            drained: true
        }
    );
    // Exported only by the shutdown's flush (the schedules are 60 s).
    let flushed = receiver
        .wait_for_spans(Duration::from_secs(2), |spans| {
            spans.iter().any(|s| {
                s.kind == SpanKind::Server
                    && s.attr("http.request.header.x-request-id")
                        == Some(&AttrValue::Array(vec![AttrValue::Str(marker.to_owned())]))
            }) && spans
                .iter()
                .any(|s| s.kind == SpanKind::Server && s.name == "POST /v1/users")
        })
        .await;
    assert!(
        flushed,
        "queued spans were not flushed: {}",
        receiver.dump_all()
    );
    assert!(
        receiver
            .metrics()
            .iter()
            .any(|m| m.name == "http.server.request.duration"),
        "metrics were not flushed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_shutdown_abandons_requests_at_the_drain_timeout_and_still_flushes() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let database = TempDatabase::new();
    let settings = in_process_settings(&receiver.grpc_endpoint(), &database);
    let started = shop::run::start(settings, SHORT_BUDGET).await.unwrap();
    let port = started.address.port();
    let marker = "before-abandoned-shutdown";
    let (signal, signalled) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(started.serve(
        async move {
            let _ = signalled.await;
        },
        SHORT_BUDGET,
    ));
    let response = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/v1/products/2"))
        .header("x-request-id", marker)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // Never finished: it holds the shop until the drain timeout.
    let _stuck = SlowRequest::start(port);
    tokio::time::sleep(Duration::from_millis(200)).await;

    signal.send(()).unwrap();
    let stopped = tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .expect("run did not return: the drain timeout was not enforced")
        .unwrap();
    assert_eq!(
        stopped,
        telemetry::serve::Stopped {
            failed: false,
            drained: false
        }
    );
    let flushed = receiver
        .wait_for_spans(Duration::from_secs(2), |spans| {
            spans.iter().any(|s| {
                s.kind == SpanKind::Server
                    && s.attr("http.request.header.x-request-id")
                        == Some(&AttrValue::Array(vec![AttrValue::Str(marker.to_owned())]))
            })
        })
        .await;
    assert!(
        flushed,
        "queued spans were not flushed: {}",
        receiver.dump_all()
    );
}
