//! CPU cost of the telemetry middleware per request, as a difference against the same handler
//! without it, measured in one run (interleaved rounds, so machine noise hits both sides).
//!
//! ```sh
//! cargo bench -p telemetry --bench middleware            # in-process: router.oneshot(request)
//! cargo bench -p telemetry --bench middleware -- --serve instrumented 3001   # for wrk (scripts/bench-wrk.sh)
//! ```
//!
//! CPU is the whole process's user+system time from `/proc/self/stat` (every thread: runtime
//! workers, batch exporters, the stdout writer), divided by requests. The OTLP receiver runs in
//! a child process, so the collector's work is not counted; serialising and sending the OTLP
//! requests is. Sampling is 100% (`always_on`), all three signals are exported over gRPC, and
//! access lines are written in JSON to `/dev/null` through the real background writer.
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::routing::get;
use telemetry::config::OtlpProtocol;
use telemetry::log_sink::LogSink;
use telemetry::{Telemetry, TelemetryConfig};
use tower::ServiceExt;

// Both variants run on the same allocator; `BENCH_ALLOCATOR=system` is the A/B switch below.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Rounds per variant (`BENCH_ROUNDS`, default 6) and requests per round (`BENCH_REQUESTS`,
/// default 40000); small values make a profiler run (valgrind --tool=callgrind) practical.
fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn product(Path(id): Path<u64>) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({"id": id, "name": "Widget", "price_cents": 1999, "stock": 12}))
}

fn handler_router() -> Router {
    Router::new().route("/v1/products/{id}", get(product))
}

/// The same answer, built by two `#[tracing::instrument]` functions: two child spans.
async fn product_traced(Path(id): Path<u64>) -> axum::Json<serde_json::Value> {
    let name = load_name(id).await;
    let price_cents = load_price(id).await;
    axum::Json(serde_json::json!({"id": id, "name": name, "price_cents": price_cents, "stock": 12}))
}

#[tracing::instrument]
async fn load_name(id: u64) -> &'static str {
    "Widget"
}

#[tracing::instrument]
async fn load_price(id: u64) -> u64 {
    1999
}

fn traced_router() -> Router {
    Router::new().route("/v1/products/{id}", get(product_traced))
}

/// Process CPU time (user + system, all threads) in microseconds.
fn process_cpu_micros() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name (which is in parentheses and may contain spaces).
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = fields[11].parse().unwrap();
    let stime: f64 = fields[12].parse().unwrap();
    let ticks = 100.0; // USER_HZ on Linux
    (utime + stime) / ticks * 1_000_000.0
}

fn config(endpoint: Option<String>) -> TelemetryConfig {
    config_with(endpoint, OtlpProtocol::Grpc)
}

fn config_with(endpoint: Option<String>, protocol: OtlpProtocol) -> TelemetryConfig {
    let mut config = TelemetryConfig::from_lookup("bench", "0", |key| match key {
        "APP_LOG_FORMAT" => Some("json".into()),
        "APP_PII_KEY" => Some("bench-pseudonym-key-0123456789".into()),
        "OTEL_TRACES_SAMPLER" => Some("always_on".into()),
        "OTEL_METRIC_EXPORT_INTERVAL" => Some("5000".into()),
        // Queues large enough that a round never drops: every span and log record produced is
        // exported, and its cost counted (the round ends with a flush).
        "OTEL_BSP_MAX_QUEUE_SIZE" | "OTEL_BLRP_MAX_QUEUE_SIZE" => Some("200000".into()),
        _ => None,
    })
    .unwrap();
    if let Some(endpoint) = endpoint {
        config = config.with_otlp(endpoint, protocol);
    }
    config
}

/// Starts this bench binary again as an OTLP sink in a child process; returns its endpoint.
fn spawn_sink() -> (std::process::Child, String) {
    spawn_sink_kind("--otlp-sink")
}

fn spawn_sink_kind(kind: &str) -> (std::process::Child, String) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg(kind)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, line.trim().to_owned())
}

async fn run_round(router: &Router, requests: usize, flush: Option<&Telemetry>) -> (f64, f64) {
    let cpu = process_cpu_micros();
    let wall = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..4 {
        let router = router.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..requests / 4 {
                let request =
                    http::Request::get(format!("/v1/products/{}", (worker * 1000 + i) % 50 + 1))
                        .header("user-agent", "bench/1.0")
                        .body(Body::empty())
                        .unwrap();
                let response = router.clone().oneshot(request).await.unwrap();
                let _ = axum::body::to_bytes(response.into_body(), usize::MAX)
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    if let Some(telemetry) = flush {
        telemetry.force_flush().await;
    }
    (process_cpu_micros() - cpu, wall.elapsed().as_secs_f64())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--otlp-http-sink") {
        // The cheapest possible collector: OTLP/HTTP requests are read and answered with an
        // empty (valid) protobuf response, never decoded.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            println!("http://{}", listener.local_addr().unwrap());
            std::io::stdout().flush().unwrap();
            let sink = Router::new().route(
                "/v1/{signal}",
                axum::routing::post(|_body: axum::body::Bytes| async {
                    (
                        [(http::header::CONTENT_TYPE, "application/x-protobuf")],
                        Vec::<u8>::new(),
                    )
                }),
            );
            axum::serve(listener, sink).await.unwrap();
        });
        return;
    }
    if args.iter().any(|a| a == "--otlp-sink") {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let receiver = telemetry::testkit::OtlpReceiver::start().await.unwrap();
            receiver.count_only();
            println!("{}", receiver.grpc_endpoint());
            std::io::stdout().flush().unwrap();
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--serve") {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mode = args[i + 1].clone();
        let port: u16 = args[i + 2].parse().unwrap();
        runtime.block_on(serve(&mode, port));
        return;
    }
    // One runtime thread: idle workers of a multi-thread runtime spin while looking for work,
    // which adds CPU time that depends on scheduling luck rather than on the code measured.
    // The exporters' own threads still run on the other core and are counted.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(measure());
}

async fn serve(mode: &str, port: u16) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    // Only the exporting variant gets a collector; it runs in a child process, killed on exit.
    let (sink_process, endpoint, protocol) = match mode {
        "instrumented" => {
            let (child, endpoint) = spawn_sink();
            (Some(child), Some(endpoint), OtlpProtocol::Grpc)
        }
        "instrumented-http" => {
            let (child, endpoint) = spawn_sink_kind("--otlp-http-sink");
            (Some(child), Some(endpoint), OtlpProtocol::HttpProtobuf)
        }
        _ => (None, None, OtlpProtocol::Grpc),
    };
    let _kill_sink = KillOnDrop(sink_process);
    let (telemetry, _guard) = Telemetry::builder(config_with(endpoint, protocol))
        .log_sink(LogSink::writer(std::io::sink()))
        .build()
        .unwrap();
    let app = match mode {
        "bare" => handler_router(),
        "instrumented" | "instrumented-http" | "instrumented-no-export" => {
            telemetry.observe_router(handler_router())
        }
        other => panic!("mode must be bare, instrumented or instrumented-no-export, not {other}"),
    };
    eprintln!("serving {mode} on 127.0.0.1:{port}");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
    .unwrap();
}

/// An export tap that receives every encoded export request and drops it: what the library
/// spends to feed an in-process consumer such as the console (encoding, batching, hand-off),
/// without the consumer's own work.
#[derive(Debug, Default)]
struct DiscardTap(std::sync::atomic::AtomicU64);

impl telemetry::export_tap::ExportTap for DiscardTap {
    fn export(&self, _signal: telemetry::export_tap::TapSignal, request: bytes::Bytes) {
        self.0
            .fetch_add(request.len() as u64, std::sync::atomic::Ordering::Relaxed);
    }

    fn max_schedule_delay(&self) -> Option<Duration> {
        Some(Duration::from_millis(500))
    }
}

struct KillOnDrop(Option<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
        }
    }
}

async fn measure() {
    // The subscriber every variant runs under (an app's would be `install_global_subscriber`):
    // events and spans go to the instance serving the request. At INFO, the exporters' own
    // TRACE-level `h2`/`tonic` spans stay disabled, as with the default `RUST_LOG`.
    {
        use tracing_subscriber::layer::SubscriberExt as _;
        let subscriber = tracing_subscriber::registry()
            .with(tracing::level_filters::LevelFilter::INFO)
            .with(telemetry::TelemetryLogLayer::requests_only());
        tracing::subscriber::set_global_default(subscriber).unwrap();
    }
    let (mut sink, endpoint) = spawn_sink();
    let (telemetry, guard) = Telemetry::builder(config(Some(endpoint)))
        .log_sink(LogSink::writer(std::fs::File::create("/dev/null").unwrap()))
        .build()
        .unwrap();
    let (disabled, disabled_guard) = Telemetry::builder(config(None))
        .log_sink(LogSink::writer(std::io::sink()))
        .build()
        .unwrap();
    let tap = std::sync::Arc::new(DiscardTap::default());
    let (tapped, tapped_guard) = Telemetry::builder(config(None))
        .log_sink(LogSink::writer(std::io::sink()))
        .export_tap(tap.clone())
        .build()
        .unwrap();
    // `with_state(())` turns handlers into routes once, as `axum::serve` does; without it a
    // `Router` rebuilds every route (and its layers) on every `oneshot`.
    let variants: [(&str, Router); 5] = [
        ("bare handler", handler_router().with_state(())),
        (
            "instrumented, OTLP export on",
            telemetry.observe_router(handler_router()).with_state(()),
        ),
        (
            "instrumented, export off",
            disabled.observe_router(handler_router()).with_state(()),
        ),
        (
            "instrumented, 2 tracing spans",
            telemetry.observe_router(traced_router()).with_state(()),
        ),
        (
            "export off, export tap (console)",
            tapped.observe_router(handler_router()).with_state(()),
        ),
    ];
    let flushes = [
        None,
        Some(&telemetry),
        Some(&disabled),
        Some(&telemetry),
        Some(&tapped),
    ];
    // `BENCH_ONLY=0|1|2|3|4` runs one variant alone (bare, export on, export off, export on with
    // two `#[instrument]` child spans, export off with a discarding export tap): with valgrind,
    // the difference between two request counts gives exact instructions per request.
    let only: Option<usize> = std::env::var("BENCH_ONLY")
        .ok()
        .and_then(|v| v.parse().ok());
    let selected = |i: usize| only.is_none_or(|o| o == i);
    // Warm-up: connections, allocator, lazily created series.
    for (i, (_, router)) in variants.iter().enumerate().filter(|(i, _)| selected(*i)) {
        run_round(router, knob("BENCH_WARMUP", 4_000), flushes[i]).await;
    }
    let mut cpu = [0.0f64; 5];
    let mut wall = [0.0f64; 5];
    let rounds = knob("BENCH_ROUNDS", 6);
    let requests = knob("BENCH_REQUESTS", 40_000);
    for _ in 0..rounds {
        for (i, (_, router)) in variants.iter().enumerate().filter(|(i, _)| selected(*i)) {
            let (c, w) = run_round(router, requests, flushes[i]).await;
            cpu[i] += c;
            wall[i] += w;
        }
    }
    guard.shutdown().await;
    disabled_guard.shutdown().await;
    tapped_guard.shutdown().await;

    let n = (rounds * requests) as f64;
    println!("requests per variant: {n}");
    println!(
        "{:<32} {:>12} {:>14} {:>12}",
        "variant", "CPU us/req", "overhead us", "req/s (wall)"
    );
    for (i, (name, _)) in variants.iter().enumerate() {
        let per = cpu[i] / n;
        let overhead = per - cpu[0] / n;
        println!(
            "{:<32} {:>12.2} {:>14.2} {:>12.0}",
            name,
            per,
            overhead,
            n / wall[i]
        );
    }
    println!(
        "instrumented/bare CPU ratio: {:.2} (export on), {:.2} (export off)",
        cpu[1] / cpu[0],
        cpu[2] / cpu[0]
    );
    println!(
        "two tracing spans: +{:.2} us/req, {:.2}x the instrumented request (export on)",
        (cpu[3] - cpu[1]) / n,
        cpu[3] / cpu[1]
    );
    println!(
        "export tap (console) with export off: +{:.2} us/req over export off ({} bytes handed over)",
        (cpu[4] - cpu[2]) / n,
        tap.0.load(std::sync::atomic::Ordering::Relaxed)
    );
    let _ = sink.kill();
}
