//! The per-instrument cardinality limit folds attribute sets beyond it into the overflow
//! series instead of growing without bound.
#![allow(clippy::unwrap_used)]

use crate::common::Harness;
use axum::Router;
use axum::routing::get;
use telemetry::config::OtlpProtocol;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_beyond_the_limit_fold_into_the_overflow_series() {
    let mut router = Router::new();
    for i in 0..40 {
        router = router.route(&format!("/r{i}"), get(|| async { "ok" }));
    }
    let h = Harness::start_with(
        &[("APP_METRIC_CARDINALITY_LIMIT", "10")],
        OtlpProtocol::Grpc,
        router,
    )
    .await;
    for i in 0..40 {
        assert_eq!(h.get(&format!("/r{i}")).await.status(), 200);
    }
    let metrics = h.get("/metrics").await.text().await.unwrap();
    let series: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("http_server_request_duration_seconds_count"))
        .collect();
    assert!(
        series.len() <= 11,
        "{} series for a limit of 10:\n{}",
        series.len(),
        series.join("\n")
    );
    let overflow = series
        .iter()
        .find(|l| l.contains("otel_metric_overflow=\"true\""))
        .unwrap_or_else(|| panic!("no overflow series in\n{}", series.join("\n")));
    let counted: u64 = series
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(
        counted, 40,
        "every request is still counted; overflow: {overflow}"
    );
}
