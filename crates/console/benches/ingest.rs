//! The console's whole CPU cost per request: the same instrumented handler (no OTLP endpoint)
//! with and without the console's tap, in interleaved rounds; each round with the console
//! ends when the console has decoded and stored every span and log record of the round.
//! CPU is the process's user + system time (every thread: the runtime, the record queues'
//! export threads, the console's ingest thread), from `/proc/self/stat`.
//!
//! ```sh
//! cargo bench -p console --bench ingest
//! ```
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::routing::get;
use console::{Console, Limits};
use telemetry::log_sink::LogSink;
use telemetry::{Telemetry, TelemetryConfig};
use tower::ServiceExt;

async fn product(Path(id): Path<u64>) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({"id": id, "name": "Widget", "price_cents": 1999, "stock": 12}))
}

fn process_cpu_micros() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = fields[11].parse().unwrap();
    let stime: f64 = fields[12].parse().unwrap();
    (utime + stime) / 100.0 * 1_000_000.0
}

fn config() -> TelemetryConfig {
    TelemetryConfig::from_lookup("bench", "0", |key| match key {
        "APP_LOG_FORMAT" => Some("json".into()),
        "APP_PII_KEY" => Some("bench-pseudonym-key-0123456789".into()),
        "OTEL_TRACES_SAMPLER" => Some("always_on".into()),
        "OTEL_BSP_MAX_QUEUE_SIZE" | "OTEL_BLRP_MAX_QUEUE_SIZE" => Some("200000".into()),
        _ => None,
    })
    .unwrap()
}

async fn round(
    router: &Router,
    requests: usize,
    telemetry: &Telemetry,
    console: Option<(&Console, u64)>,
) -> f64 {
    let cpu = process_cpu_micros();
    for i in 0..requests {
        let request = http::Request::get(format!("/v1/products/{}", i % 50 + 1))
            .header("user-agent", "bench/1.0")
            .body(Body::empty())
            .unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        let _ = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
    }
    telemetry.force_flush().await;
    if let Some((console, before)) = console {
        let deadline = Instant::now() + Duration::from_secs(60);
        while console.received().spans < before + requests as u64
            || console.received().logs < before + requests as u64
        {
            assert!(
                Instant::now() < deadline,
                "the console did not receive everything: {:?}",
                console.received()
            );
            assert_eq!(console.received().batches_dropped, 0, "a batch was dropped");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    process_cpu_micros() - cpu
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let console = Console::new(Limits::default());
        let (plain, plain_guard) = Telemetry::builder(config())
            .log_sink(LogSink::writer(std::io::sink()))
            .build()
            .unwrap();
        let (tapped, tapped_guard) = Telemetry::builder(config())
            .log_sink(LogSink::writer(std::io::sink()))
            .export_tap(console.tap())
            .build()
            .unwrap();
        let handler = || Router::new().route("/v1/products/{id}", get(product));
        let off = plain.observe_router(handler()).with_state(());
        let on = tapped.observe_router(handler()).with_state(());
        let requests = std::env::var("BENCH_REQUESTS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20_000);
        let rounds = std::env::var("BENCH_ROUNDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(6);
        // Warm-up (the store fills to its bounds: later rounds pay for eviction too).
        round(&off, requests, &plain, None).await;
        let before = console.received().spans.min(console.received().logs);
        round(&on, requests, &tapped, Some((&console, before))).await;
        let (mut cpu_off, mut cpu_on) = (0.0, 0.0);
        for _ in 0..rounds {
            cpu_off += round(&off, requests, &plain, None).await;
            let before = console.received().spans.min(console.received().logs);
            cpu_on += round(&on, requests, &tapped, Some((&console, before))).await;
        }
        plain_guard.shutdown().await;
        tapped_guard.shutdown().await;
        let n = (rounds * requests) as f64;
        println!("requests per variant: {n}");
        println!(
            "instrumented, no endpoint, console off: {:.2} us/req",
            cpu_off / n
        );
        println!(
            "instrumented, no endpoint, console on:  {:.2} us/req",
            cpu_on / n
        );
        println!(
            "the console's cost: +{:.2} us/req (encoding, hand-off, decoding, store, eviction)",
            (cpu_on - cpu_off) / n
        );
        println!("received: {:?}", console.received());
    });
}
