//! Every stdout line names its service: the shop and its in-process payment simulator write to
//! the same stdout, and their lines (both have access lines with `"target":"access"`) are told
//! apart by `service` (their `service.name`), in every log format.

#![allow(clippy::unwrap_used)]

use crate::common::TempDatabase;
use crate::common::process::{collect, free_port, shop_command, terminate, wait_healthy};

/// Runs the binary (with its in-process simulator) in `format`, signs up and places one order,
/// and returns everything it wrote to stdout.
async fn checkout_stdout(format: &str) -> String {
    let database = TempDatabase::new();
    let port = free_port();
    let mut child = shop_command()
        .env("PORT", port.to_string())
        .env("DATABASE_URL", database.url())
        .env("APP_LOG_FORMAT", format)
        .spawn()
        .unwrap();
    let stdout = collect(child.stdout.take().unwrap());
    let stderr = collect(child.stderr.take().unwrap());
    let base = format!("http://127.0.0.1:{port}");
    if let Err(status) = wait_healthy(&base, &mut child).await {
        panic!(
            "shop exited early with {status}: {}",
            stderr.join().unwrap()
        );
    }
    let client = reqwest::Client::new();
    let account: serde_json::Value = client
        .post(format!("{base}/v1/users"))
        .json(&serde_json::json!({"email": "stdout@example.com", "name": "Out"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = account["token"].as_str().unwrap();
    let order = client
        .post(format!("{base}/v1/orders"))
        .bearer_auth(token)
        .header("idempotency-key", "stdout-service-1")
        .json(&serde_json::json!({"items": [{"product_id": 1, "quantity": 1}]}))
        .send()
        .await
        .unwrap();
    // Paid or declined (the simulator's default decline rate): either way it was charged.
    assert!([201, 402].contains(&order.status().as_u16()), "{order:?}");
    let status = terminate(&mut child).await;
    let stdout = stdout.join().unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "stderr: {}\nstdout: {stdout}",
        stderr.join().unwrap()
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_json_line_names_its_service_and_the_simulators_are_told_apart() {
    for format in ["json", "gcp"] {
        let stdout = checkout_stdout(format).await;
        let lines = crate::common::parse_json_lines(&stdout);
        assert!(!lines.is_empty());
        for line in &lines {
            let service = line["service"].as_str();
            assert!(
                matches!(service, Some("shop" | "payments-sim")),
                "{format}: every line names its service: {line}"
            );
        }
        let access = |service: &str, route: &str| {
            lines
                .iter()
                .any(|l| l["target"] == "access" && l["service"] == service && l["route"] == route)
        };
        assert!(access("shop", "/v1/orders"), "{format}: {stdout}");
        assert!(access("payments-sim", "/v1/charges"), "{format}: {stdout}");
        assert!(
            !access("shop", "/v1/charges") && !access("payments-sim", "/v1/orders"),
            "{format}: {stdout}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pretty_line_names_its_service() {
    let stdout = checkout_stdout("pretty").await;
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for line in &lines {
        assert!(
            line.ends_with(" service=shop") || line.ends_with(" service=payments-sim"),
            "{line}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains("route=/v1/charges") && l.ends_with(" service=payments-sim")),
        "{stdout}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("route=/v1/orders") && l.ends_with(" service=shop")),
        "{stdout}"
    );
}
