//! What the telemetry plane loses is counted and visible on `/metrics`: records dropped by a
//! full export queue, and export requests that failed.
#![allow(clippy::unwrap_used)]

use crate::common::{config, routes};
use telemetry::Telemetry;
use telemetry::config::OtlpProtocol;
use telemetry::testkit::OtlpReceiver;

fn counter(metrics: &str, series: &str) -> f64 {
    crate::common::prometheus_value(metrics, series)
        .unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
}

/// Serves `routes()` exporting over OTLP/HTTP to `endpoint`, with extra settings.
async fn serve_exporting_to(
    endpoint: String,
    pairs: &[(&str, &str)],
) -> (String, Telemetry, telemetry::TelemetryGuard) {
    crate::common::serve_instrumented(
        config(pairs).with_otlp(endpoint, OtlpProtocol::HttpProtobuf),
        routes(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_and_counts_instead_of_waiting() {
    // A collector that accepts connections and never answers: the first export hangs, the
    // queues (2 records each) fill, and everything after must be dropped and counted while
    // requests keep succeeding.
    let hanging = OtlpReceiver::start().await.unwrap();
    hanging.never_answer();
    let (base, _telemetry, guard) = serve_exporting_to(
        hanging.http_endpoint(),
        &[
            ("OTEL_BSP_MAX_QUEUE_SIZE", "2"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "2"),
            ("OTEL_BLRP_MAX_QUEUE_SIZE", "2"),
            ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "2"),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    for _ in 0..30 {
        assert_eq!(
            client
                .get(format!("{base}/items/1"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // At most a queue's worth per signal (exports in flight included) escapes the count.
    assert!(
        counter(&metrics, "app_telemetry_dropped_total{signal=\"spans\"}") >= 26.0,
        "{metrics}"
    );
    assert!(
        counter(&metrics, "app_telemetry_dropped_total{signal=\"logs\"}") >= 26.0,
        "{metrics}"
    );
    guard
        .shutdown_within(std::time::Duration::from_millis(500))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_exports_are_counted_and_requests_still_succeed() {
    // A port where nothing listens.
    let (base, telemetry, guard) = serve_exporting_to(
        crate::common::closed_endpoint(),
        &[
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "500"),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
            ("OTEL_BLRP_SCHEDULE_DELAY", "50"),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    for _ in 0..5 {
        let response = client.get(format!("{base}/items/1")).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    telemetry.force_flush().await;
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        counter(
            &metrics,
            "app_telemetry_export_failures_total{signal=\"spans\"}"
        ) >= 1.0,
        "{metrics}"
    );
    assert!(
        counter(
            &metrics,
            "app_telemetry_export_failures_total{signal=\"logs\"}"
        ) >= 1.0,
        "{metrics}"
    );
    guard
        .shutdown_within(std::time::Duration::from_secs(2))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_spans_share_the_bounded_span_queue_and_its_drop_count() {
    use opentelemetry::trace::{Span as _, Tracer as _};
    // A collector that never answers holds the first export; the queue (2 spans) fills.
    let receiver = telemetry::testkit::OtlpReceiver::start().await.unwrap();
    receiver.never_answer();
    let (_base, telemetry, guard) = serve_exporting_to(
        receiver.http_endpoint(),
        &[
            ("OTEL_BSP_MAX_QUEUE_SIZE", "2"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "2"),
        ],
    )
    .await;
    for _ in 0..20 {
        telemetry.tracer().start("child").end();
    }
    let text = telemetry.prometheus_text();
    // At most the queue's 2 spans (exports in flight included) escape the count.
    assert!(
        counter(&text, "app_telemetry_dropped_total{signal=\"spans\"}") >= 16.0,
        "{text}"
    );
    guard
        .shutdown_within(std::time::Duration::from_millis(500))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_export_warn_line_uses_the_instance_format_and_never_the_headers() {
    let closed = crate::common::closed_endpoint();
    for format in ["gcp", "pretty"] {
        let (base, telemetry, guard) = serve_exporting_to(
            closed.clone(),
            &[
                ("APP_LOG_FORMAT", format),
                (
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    "x-api-key=sekrit-header-value",
                ),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "500"),
            ],
        )
        .await;
        let client = reqwest::Client::new();
        for _ in 0..5 {
            let response = client.get(format!("{base}/items/1")).send().await.unwrap();
            assert_eq!(response.status(), 200);
        }
        telemetry.force_flush().await;
        let captured = telemetry.log_sink().captured();
        let warn: Vec<&str> = captured
            .lines()
            .filter(|l| l.contains("telemetry::export"))
            .collect();
        assert_eq!(warn.len(), 2, "{format}: one line per signal\n{captured}");
        for line in &warn {
            assert!(!line.contains("sekrit"), "{line}");
            assert!(line.contains(&closed), "{line}");
            if format == "gcp" {
                let json: serde_json::Value = serde_json::from_str(line).unwrap();
                assert_eq!(json["severity"], "WARNING", "{line}");
                assert_eq!(json["target"], "telemetry::export");
            } else {
                assert!(line.contains(" WARN "), "{line}");
                assert!(line.contains("failed_exports="), "{line}");
            }
        }
        guard
            .shutdown_within(std::time::Duration::from_millis(500))
            .await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn dropping_an_instance_without_shutdown_never_stalls_the_runtime() {
    // A collector that never answers, and an instance dropped without `shutdown` (a test's
    // end, a server task finishing): the metric provider's final flush waits for the exporter
    // up to its timeout — that wait must not happen on the async worker dropping the instance.
    let hanging = OtlpReceiver::start().await.unwrap();
    hanging.never_answer();
    let (telemetry, guard) =
        Telemetry::builder(config(&[]).with_otlp(hanging.grpc_endpoint(), OtlpProtocol::Grpc))
            .log_sink(telemetry::log_sink::LogSink::memory())
            .build()
            .unwrap();
    telemetry
        .meter()
        .u64_counter("test.drops")
        .build()
        .add(1, &[]);
    let started = std::time::Instant::now();
    drop(guard);
    drop(telemetry);
    let blocked = started.elapsed();
    // The provider's own drop waits up to 5 s (seen: 5.0 s per instance before the fix).
    assert!(
        blocked < std::time::Duration::from_secs(2),
        "dropping the instance blocked the runtime for {blocked:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_leaves_in_requests_of_at_most_a_batch() {
    // The collector answers slowly, so records pile up behind the first export. The backlog
    // must leave in requests of at most OTEL_BSP_MAX_EXPORT_BATCH_SIZE records (one request
    // with all of it can exceed a collector's message limit and lose everything), and nothing
    // is lost.
    let slow = OtlpReceiver::start().await.unwrap();
    slow.answer_slowly(std::time::Duration::from_millis(100));
    let (base, _telemetry, guard) = serve_exporting_to(
        slow.http_endpoint(),
        &[
            ("OTEL_TRACES_SAMPLER", "always_on"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "1000"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "5"),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    for _ in 0..60 {
        let status = client
            .get(format!("{base}/items/1"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200);
    }
    assert!(
        slow.wait_for_spans(std::time::Duration::from_secs(20), |spans| spans.len()
            >= 60)
            .await,
        "all 60 SERVER spans arrive, got {}",
        slow.spans().len()
    );
    let requests = slow.export_requests().traces();
    assert!(
        requests >= 12,
        "60 spans at most 5 per request need at least 12 requests, got {requests}"
    );
    guard
        .shutdown_within(std::time::Duration::from_millis(500))
        .await;
}

/// Serves `routes()` exporting spans in batches of 5 to `endpoint` over `protocol`.
async fn serve_in_batches_of_five(
    endpoint: String,
    protocol: OtlpProtocol,
) -> (String, Telemetry, telemetry::TelemetryGuard) {
    crate::common::serve_instrumented(
        config(&[
            ("OTEL_TRACES_SAMPLER", "always_on"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "1000"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "5"),
        ])
        .with_otlp(endpoint, protocol),
        routes(),
    )
    .await
}

async fn get_items(base: &str, count: usize) {
    let client = reqwest::Client::new();
    for _ in 0..count {
        let status = client
            .get(format!("{base}/items/1"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_collector_gets_several_exports_at_once() {
    // An export waiting for its answer must not hold back the batches behind it: with one
    // export at a time, answers that took ~40 ms (rotel's, under load) overflowed the span
    // queue. Every answer here comes 300 ms late and six batches wait almost at once: the
    // queue keeps more than one export in flight, at most MAX_EXPORTS_IN_FLIGHT (4), and
    // loses nothing.
    for protocol in [OtlpProtocol::Grpc, OtlpProtocol::HttpProtobuf] {
        let slow = OtlpReceiver::start().await.unwrap();
        slow.answer_slowly(std::time::Duration::from_millis(300));
        let endpoint = match protocol {
            OtlpProtocol::Grpc => slow.grpc_endpoint(),
            OtlpProtocol::HttpProtobuf => slow.http_endpoint(),
        };
        let (base, _telemetry, guard) = serve_in_batches_of_five(endpoint, protocol).await;
        get_items(&base, 30).await;
        assert!(
            slow.wait_for_spans(std::time::Duration::from_secs(20), |spans| spans.len()
                >= 30)
                .await,
            "{protocol:?}: all 30 SERVER spans arrive, got {}",
            slow.spans().len()
        );
        let most = slow.max_concurrent_requests().traces;
        assert!(
            (2..=4).contains(&most),
            "{protocol:?}: 2 to 4 trace exports at once, got {most}"
        );
        guard
            .shutdown_within(std::time::Duration::from_millis(500))
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_waits_for_an_earlier_export_that_finishes_last() {
    // Exports in flight finish in any order: here the second batch is answered at once while
    // the first is still held. A flush must still wait for every record queued before it.
    let receiver = OtlpReceiver::start().await.unwrap();
    receiver.answer_slowly(std::time::Duration::from_millis(800));
    let (base, telemetry, guard) =
        serve_in_batches_of_five(receiver.grpc_endpoint(), OtlpProtocol::Grpc).await;
    get_items(&base, 5).await;
    let started = std::time::Instant::now();
    while receiver.export_requests().traces() < 1 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the first batch never arrived"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // The first request is held for 800 ms; everything after it is answered at once.
    receiver.accept();
    get_items(&base, 5).await;
    telemetry.force_flush().await;
    let spans = receiver.spans();
    assert_eq!(
        spans.len(),
        10,
        "both batches exported when the flush returns: {:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    guard
        .shutdown_within(std::time::Duration::from_millis(500))
        .await;
}
