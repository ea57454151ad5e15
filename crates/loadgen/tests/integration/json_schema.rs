//! The `--json` document is an interface: its fields are fixed by `schema_version` 1
//! (docs/loadgen.md). Adding a field means updating this list and the docs together.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::common::{Shop, json, loadgen};

fn keys(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .map(String::as_str)
        .collect()
}

fn set<'a>(names: &[&'a str]) -> BTreeSet<&'a str> {
    names.iter().copied().collect()
}

#[tokio::test]
async fn the_json_summary_has_the_documented_schema_and_nothing_else_on_stdout() {
    let shop = Shop::start(&[("PAYMENTS_SIM_DECLINE_RATE", "0.5")]).await;
    let output = loadgen(
        &[
            "--target",
            &shop.url,
            "--users",
            "3",
            "--requests",
            "300",
            "--json",
            "--threshold",
            "p99<60s",
            "--trace-url-template",
            "http://127.0.0.1:8080/_console/traces/{trace_id}",
        ],
        &[],
    );
    assert!(
        output.status.success(),
        "{}",
        crate::common::stderr(&output)
    );
    let summary = json(&output);
    assert_eq!(summary["schema_version"], 1);
    assert_eq!(
        keys(&summary),
        set(&[
            "schema_version",
            "target",
            "model",
            "limit",
            "interrupted",
            "elapsed_s",
            "requests",
            "errors",
            "error_rate",
            "throughput_rps",
            "dropped_journeys",
            "idempotent_replays",
            "journeys",
            "latency_ms",
            "schedule_lag_ms",
            "routes",
            "thresholds",
            "passed",
        ])
    );
    assert_eq!(
        keys(&summary["model"]),
        set(&[
            "kind",
            "rate_rps",
            "journey_rate",
            "ramp_s",
            "users",
            "connections",
            "think_ms"
        ])
    );
    assert_eq!(keys(&summary["limit"]), set(&["duration_s", "requests"]));
    let latency = set(&["p50", "p90", "p99", "p99_9", "max", "mean"]);
    assert_eq!(keys(&summary["latency_ms"]), latency);
    assert_eq!(
        summary["schedule_lag_ms"],
        Value::Null,
        "closed model: no schedule"
    );
    let routes = summary["routes"].as_array().unwrap();
    assert!(!routes.is_empty());
    let mut samples = 0;
    for route in routes {
        assert_eq!(
            keys(route),
            set(&[
                "route",
                "count",
                "errors",
                "throughput_rps",
                "latency_ms",
                "statuses",
                "errors_by_status",
                "slowest",
                "failed",
            ])
        );
        assert_eq!(keys(&route["latency_ms"]), latency);
        for sample in route["slowest"]
            .as_array()
            .unwrap()
            .iter()
            .chain(route["failed"].as_array().unwrap())
        {
            samples += 1;
            assert_eq!(
                keys(sample),
                set(&[
                    "latency_ms",
                    "status",
                    "trace_id",
                    "request_id",
                    "trace_url"
                ])
            );
            let trace_id = sample["trace_id"].as_str().unwrap();
            assert_eq!(
                sample["trace_url"].as_str().unwrap(),
                format!("http://127.0.0.1:8080/_console/traces/{trace_id}")
            );
        }
    }
    assert!(samples > 0);
    // Half the checkouts are declined: there are failed samples with the shop's ids.
    let orders = routes
        .iter()
        .find(|r| r["route"] == "POST /v1/orders")
        .unwrap();
    assert!(
        !orders["failed"].as_array().unwrap().is_empty(),
        "{orders:#}"
    );
    assert_eq!(
        keys(&summary["thresholds"][0]),
        set(&["threshold", "route", "actual", "passed"])
    );
}
