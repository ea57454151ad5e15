//! The shop binary's payment simulator: `shop payments-sim` (the convenience for the
//! `payments-sim` binary, tested in its own crate), the simulator started in-process, and the
//! command line (`--help`, unknown arguments).

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::parse_json_lines;
use crate::common::process::{collect, exit_within, free_port, shop_command, terminate};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn order(amount_cents: u64, reference: &str) -> Value {
    json!({"amount_cents": amount_cents, "currency": "EUR", "reference": reference})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_payments_sim_binary_serves_charges_and_exits_0_on_sigterm() {
    let port = free_port();
    let mut child = shop_command()
        .arg("payments-sim")
        .env("PAYMENTS_SIM_PORT", port.to_string())
        .env("PAYMENTS_SIM_DECLINE_RATE", "1")
        .env("APP_LOG_FORMAT", "json")
        .spawn()
        .unwrap();
    let stdout = collect(child.stdout.take().unwrap());
    let stderr = collect(child.stderr.take().unwrap());
    let base = format!("http://127.0.0.1:{port}");
    if let Err(status) = crate::common::process::wait_healthy(&base, &mut child).await {
        panic!("exited early with {status}");
    }

    let response = reqwest::Client::new()
        .post(format!("{base}/v1/charges"))
        .header("Idempotency-Key", "binary")
        .json(&order(100, "o-14"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYMENT_REQUIRED);

    let status = terminate(&mut child).await;
    let stdout = stdout.join().unwrap();
    let stderr = stderr.join().unwrap();
    assert_eq!(status.code(), Some(0), "stderr: {stderr}\nstdout: {stdout}");
    let lines = parse_json_lines(&stdout);
    assert!(
        lines.iter().any(|l| l["message"] == "listening"
            && l["server.address"] == "127.0.0.1"
            && l["server.port"] == port),
        "{stdout}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["target"] == "access" && l["route"] == "/v1/charges" && l["status"] == 402),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_refuses_a_bad_knob_and_an_unknown_command_with_exit_code_2() {
    for (args, env, expected) in [
        (
            &["payments-sim"][..],
            ("PAYMENTS_SIM_ERROR_RATE", "often"),
            "PAYMENTS_SIM_ERROR_RATE",
        ),
        (&["pay"][..], ("APP_LOG_FORMAT", "json"), "usage: shop"),
        (
            &["pay"][..],
            ("APP_LOG_FORMAT", "json"),
            "unknown argument \"pay\"",
        ),
        (
            &["--verbose"][..],
            ("APP_LOG_FORMAT", "json"),
            "--help lists the settings",
        ),
    ] {
        let mut child = shop_command().args(args).env(env.0, env.1).spawn().unwrap();
        let stderr = collect(child.stderr.take().unwrap());
        let _stdout = collect(child.stdout.take().unwrap());
        let status = exit_within(&mut child, Duration::from_secs(10), &format!("{args:?}")).await;
        let stderr = stderr.join().unwrap();
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{stderr}");
    }
}

/// Collects a child's output line by line while it runs.
fn lines_of(
    stream: impl std::io::Read + Send + 'static,
) -> (Arc<Mutex<Vec<String>>>, std::thread::JoinHandle<()>) {
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = Arc::clone(&lines);
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push(line);
        }
    });
    (lines, reader)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shop_starts_the_simulator_in_process_when_no_payments_url_is_set() {
    let database = crate::common::TempDatabase::new();
    let port = free_port();
    let mut child = shop_command()
        .env("PORT", port.to_string())
        .env("DATABASE_URL", database.url())
        .env("APP_LOG_FORMAT", "json")
        .env_remove("PAYMENTS_URL")
        .spawn()
        .unwrap();
    let (stdout, reader) = lines_of(child.stdout.take().unwrap());
    let stderr = collect(child.stderr.take().unwrap());
    let base = format!("http://127.0.0.1:{port}");
    if let Err(status) = crate::common::process::wait_healthy(&base, &mut child).await {
        panic!("exited early with {status}");
    }

    let find = |message: &str| {
        stdout
            .lock()
            .unwrap()
            .iter()
            .map(|line| serde_json::from_str::<Value>(line).unwrap())
            .find(|l| l["message"] == message)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let started = loop {
        if let Some(line) = find("payment simulator started in-process") {
            break line;
        }
        assert!(Instant::now() < deadline, "{:?}", stdout.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(started["level"], "INFO");
    let url = started["url.full"].as_str().unwrap();
    assert!(url.starts_with("http://127.0.0.1:"), "{started}");

    // The in-process simulator answers, and its access line reaches the same stdout.
    let response = reqwest::Client::new()
        .post(format!("{url}/v1/charges"))
        .header("Idempotency-Key", "in-process")
        .json(&order(100, "o-15"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);

    let status = terminate(&mut child).await;
    let stderr = stderr.join().unwrap();
    reader.join().unwrap();
    let stdout = stdout.lock().unwrap().join("\n");
    assert_eq!(status.code(), Some(0), "stderr: {stderr}\nstdout: {stdout}");
    let lines = parse_json_lines(&stdout);
    assert!(
        lines
            .iter()
            .any(|l| l["target"] == "access" && l["route"] == "/v1/charges" && l["status"] == 201),
        "{stdout}"
    );
    assert!(
        lines.iter().any(|l| l["message"] == "charge recorded"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_exits_0_and_lists_every_setting_with_its_default() {
    let mut child = shop_command().arg("--help").spawn().unwrap();
    let stdout = collect(child.stdout.take().unwrap());
    let _stderr = collect(child.stderr.take().unwrap());
    let status = exit_within(&mut child, Duration::from_secs(10), "--help").await;
    let stdout = stdout.join().unwrap();
    assert_eq!(status.code(), Some(0), "{stdout}");
    for setting in [
        "usage: shop",
        "PORT",
        "[default: 8080]",
        "DATABASE_URL",
        "[default: sqlite://data/shop.db?mode=rwc]",
        "PAYMENTS_URL",
        "PAYMENTS_SIM_DECLINE_RATE",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "RUST_LOG",
    ] {
        assert!(
            stdout.contains(setting),
            "{setting} missing from:\n{stdout}"
        );
    }
}
