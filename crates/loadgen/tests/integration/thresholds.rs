use crate::common::{Shop, loadgen, stderr};

#[tokio::test]
async fn thresholds_that_hold_exit_0_and_a_breach_exits_1_naming_the_line() {
    let shop = Shop::start(&[]).await;
    let holding = loadgen(
        &[
            "--target",
            &shop.url,
            "--users",
            "2",
            "--requests",
            "100",
            "--threshold",
            "errors<1%",
            "--threshold",
            "p99<60s",
            "--threshold",
            "GET /v1/products:max<60s",
        ],
        &[],
    );
    assert!(holding.status.success(), "{}", stderr(&holding));
    let text = String::from_utf8_lossy(&holding.stdout);
    assert!(text.contains("pass errors<1%"), "{text}");
    assert!(text.contains("pass GET /v1/products:max<60s"), "{text}");

    let breached = loadgen(
        &[
            "--target",
            &shop.url,
            "--users",
            "2",
            "--requests",
            "100",
            "--threshold",
            "errors<1%",
            "--threshold",
            "POST /v1/users:p50<1us",
            "--threshold",
            "rps>100000000",
        ],
        &[],
    );
    assert_eq!(breached.status.code(), Some(1), "{}", stderr(&breached));
    let errors = stderr(&breached);
    assert!(
        errors.contains("threshold breached: POST /v1/users:p50<1us (actual "),
        "{errors}"
    );
    assert!(
        errors.contains("threshold breached: rps>100000000"),
        "{errors}"
    );
    assert!(
        !errors.contains("errors<1%"),
        "a holding threshold is not reported: {errors}"
    );
    assert_eq!(errors.lines().count(), 2, "{errors}");
}

#[tokio::test]
async fn a_server_answering_errors_breaches_the_error_threshold() {
    // Every checkout is declined by the payment simulator: 402 is not what a checkout expects.
    let shop = Shop::start(&[("PAYMENTS_SIM_DECLINE_RATE", "1")]).await;
    let scenario = crate::common::scenario_file(
        "declined",
        "[[journey]]\nname = \"buy\"\nweight = 1\nsteps = [\"sign_up\", \"list_products\", \"checkout\"]\n",
    );
    let output = loadgen(
        &[
            "--target",
            &shop.url,
            "--users",
            "2",
            "--requests",
            "60",
            "--json",
            "--scenario",
            scenario.to_str().unwrap(),
            "--threshold",
            "errors<1%",
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let summary = crate::common::json(&output);
    let orders = summary["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["route"] == "POST /v1/orders")
        .unwrap();
    assert!(
        orders["errors_by_status"]["402"].as_u64().unwrap() > 0,
        "{orders:#}"
    );
    assert_eq!(orders["errors"], orders["count"]);
    let failed = orders["failed"].as_array().unwrap();
    assert!(!failed.is_empty());
    for sample in failed {
        assert_eq!(sample["status"], "402");
        assert_eq!(sample["trace_id"].as_str().unwrap().len(), 32);
        assert!(
            sample["request_id"]
                .as_str()
                .is_some_and(|id| !id.is_empty())
        );
    }
    assert_eq!(summary["thresholds"][0]["passed"], false);
}
