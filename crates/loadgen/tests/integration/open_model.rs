//! The open model measures from each arrival's due time: when the server is slower than the
//! arrivals, the waiting shows in the latency instead of being hidden (coordinated omission).

use crate::common::{Shop, json, loadgen, scenario_file, stderr};

#[tokio::test]
async fn open_model_latency_includes_the_queueing_behind_a_slow_server() {
    // Every charge takes 300 ms: one connection serves at most ~3 journeys per second.
    let shop = Shop::start(&[("PAYMENTS_SIM_LATENCY_MS", "300")]).await;
    let scenario = scenario_file(
        "slow-buy",
        "[[journey]]\nname = \"buy\"\nweight = 1\nsteps = [\"sign_up\", \"list_products\", \"checkout\"]\n",
    );
    // 30 requests/s = 10 journeys/s offered to one connection for 3 s.
    let output = loadgen(
        &[
            "--target",
            &shop.url,
            "--rate",
            "30",
            "--connections",
            "1",
            "--duration",
            "3s",
            "--timeout",
            "30s",
            "--json",
            "--scenario",
            scenario.to_str().unwrap(),
        ],
        &[],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let summary = json(&output);
    let route = |name: &str| {
        summary["routes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["route"] == name)
            .unwrap()
            .clone()
    };
    let checkout = route("POST /v1/orders");
    assert!(checkout["count"].as_u64().unwrap() > 0, "{summary:#}");
    assert!(
        checkout["latency_ms"]["p50"].as_f64().unwrap() >= 300.0,
        "{checkout:#}"
    );
    // Signing up takes milliseconds, but it is each journey's first request: measured from the
    // due time, it carries the wait for the connection held by earlier 300 ms checkouts.
    let sign_up = route("POST /v1/users");
    assert!(
        sign_up["latency_ms"]["p99"].as_f64().unwrap() >= 300.0,
        "queueing is missing from the latency: {sign_up:#}"
    );
    assert!(
        summary["schedule_lag_ms"]["max"].as_f64().unwrap() >= 300.0,
        "{summary:#}"
    );
    // Arrivals no connection could start before the end are reported, not forgotten.
    assert!(
        summary["dropped_journeys"].as_u64().unwrap() > 0,
        "{summary:#}"
    );
}
