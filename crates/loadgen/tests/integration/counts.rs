use crate::common::{Shop, json, loadgen};

#[tokio::test]
async fn counts_per_route_add_up_and_match_what_the_shop_served() {
    let shop = Shop::start(&[]).await;
    let output = loadgen(
        &[
            "--target",
            &shop.url,
            "--users",
            "4",
            "--requests",
            "600",
            "--json",
        ],
        &[],
    );
    assert!(
        output.status.success(),
        "{}",
        crate::common::stderr(&output)
    );
    let summary = json(&output);
    assert_eq!(summary["requests"], 600);
    assert_eq!(summary["errors"], 0, "{summary:#}");
    let routes = summary["routes"].as_array().unwrap();
    let total: u64 = routes.iter().map(|r| r["count"].as_u64().unwrap()).sum();
    assert_eq!(total, 600);
    for route in routes {
        let by_status: u64 = route["statuses"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert_eq!(by_status, route["count"].as_u64().unwrap(), "{route:#}");
        assert!(
            route["count"].as_u64().unwrap() > 0,
            "every default route is used: {route:#}"
        );
    }
    // The bad requests are answered as intended, and count as successes.
    let route = |name: &str| routes.iter().find(|r| r["route"] == name).unwrap();
    assert!(route("GET /v1/me")["statuses"]["401"].as_u64().unwrap() > 0);
    assert!(route("POST /v1/users")["statuses"]["422"].as_u64().unwrap() > 0);
    assert!(
        route("GET /v1/products/{id}")["statuses"]["404"]
            .as_u64()
            .unwrap()
            > 0
    );
    // Every retried checkout key was answered as a replay, never as a second order: each
    // checkout has one retry, except for at most one journey per user cut short at the end.
    let replays = summary["idempotent_replays"].as_u64().unwrap();
    let orders = route("POST /v1/orders")["count"].as_u64().unwrap();
    assert!(replays > 0);
    assert!(
        2 * replays <= orders && orders - 2 * replays <= 4,
        "{replays} replays of {orders}"
    );

    // What the shop itself counted, route by route, is what the generator sent.
    let served = shop.served_by_route().await;
    for route in routes {
        let name = route["route"].as_str().unwrap();
        let template = name.to_owned();
        assert_eq!(
            served.get(&template).copied().unwrap_or(0),
            route["count"].as_u64().unwrap(),
            "{name}: shop {served:?}"
        );
    }
}

#[tokio::test]
async fn an_open_model_run_stops_by_itself_after_its_duration() {
    let shop = Shop::start(&[]).await;
    let output = loadgen(
        &[
            "--target",
            &shop.url,
            "--rate",
            "100",
            "--ramp",
            "500ms",
            "--duration",
            "2s",
            "--json",
        ],
        &[],
    );
    assert!(
        output.status.success(),
        "{}",
        crate::common::stderr(&output)
    );
    let summary = json(&output);
    assert_eq!(summary["model"]["kind"], "open");
    assert!(summary["schedule_lag_ms"].is_object());
    let requests = summary["requests"].as_u64().unwrap();
    // 100/s for 2 s minus half of the 0.5 s ramp: about 175 requests were due.
    assert!(requests > 20, "{requests}");
    assert!(summary["elapsed_s"].as_f64().unwrap() >= 2.0);
}
