//! The `payments-sim` binary: serves charges, logs as itself, exits 0 on SIGTERM; `--help`
//! lists the settings; a bad knob or an unknown argument exits 2.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use crate::common::parse_json_lines;
use crate::common::process::{
    collect, exit_within, free_port, sim_command, terminate, wait_healthy,
};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_payments_sim_binary_serves_charges_and_exits_0_on_sigterm() {
    let port = free_port();
    let mut child = sim_command()
        .env("PAYMENTS_SIM_PORT", port.to_string())
        .env("PAYMENTS_SIM_DECLINE_RATE", "1")
        .env("APP_LOG_FORMAT", "json")
        .spawn()
        .unwrap();
    let stdout = collect(child.stdout.take().unwrap());
    let stderr = collect(child.stderr.take().unwrap());
    let base = format!("http://127.0.0.1:{port}");
    if let Err(status) = wait_healthy(&base, &mut child).await {
        panic!("exited early with {status}");
    }

    let response = reqwest::Client::new()
        .post(format!("{base}/v1/charges"))
        .header("Idempotency-Key", "binary")
        .json(&json!({"amount_cents": 100, "currency": "EUR", "reference": "o-14"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYMENT_REQUIRED);

    let status = terminate(&mut child).await;
    let stdout = stdout.join().unwrap();
    let stderr = stderr.join().unwrap();
    assert_eq!(status.code(), Some(0), "stderr: {stderr}\nstdout: {stdout}");
    let lines = parse_json_lines(&stdout);
    let listening = lines
        .iter()
        .find(|l| l["message"] == "listening")
        .unwrap_or_else(|| panic!("{stdout}"));
    assert_eq!(listening["server.address"], "127.0.0.1", "{stdout}");
    assert_eq!(listening["server.port"], port, "{stdout}");
    assert_eq!(
        listening["payments_sim.admin_access"], "loopback_only",
        "{stdout}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["target"] == "access" && l["route"] == "/v1/charges" && l["status"] == 402),
        "{stdout}"
    );
    // Every line names its service (`service.name`).
    assert!(
        lines.iter().all(|l| l["service"] == "payments-sim"),
        "every line of the standalone simulator names it: {stdout}"
    );
    // The simulator's own lines name it (or the library), never the shop.
    assert_eq!(listening["target"], "payments_sim::service", "{listening}");
    for line in &lines {
        let target = line["target"].as_str().unwrap();
        assert!(
            target == "access"
                || target.starts_with("payments_sim")
                || target.starts_with("telemetry"),
            "{line}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "shutting down: draining in-flight requests")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_exits_0_and_lists_every_setting_with_its_default() {
    let mut child = sim_command().arg("--help").spawn().unwrap();
    let stdout = collect(child.stdout.take().unwrap());
    let _stderr = collect(child.stderr.take().unwrap());
    let status = exit_within(&mut child, Duration::from_secs(10), "--help").await;
    let stdout = stdout.join().unwrap();
    assert_eq!(status.code(), Some(0), "{stdout}");
    for setting in [
        "PAYMENTS_SIM_PORT",
        "[default: 8090]",
        "PAYMENTS_SIM_DECLINE_RATE",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "APP_LOG_FORMAT",
    ] {
        assert!(
            stdout.contains(setting),
            "{setting} missing from:\n{stdout}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_refuses_a_bad_knob_and_an_unknown_argument_with_exit_code_2() {
    for (args, env, expected) in [
        (
            &[][..],
            ("PAYMENTS_SIM_ERROR_RATE", "often"),
            "PAYMENTS_SIM_ERROR_RATE",
        ),
        (
            &["--verbose"][..],
            ("APP_LOG_FORMAT", "json"),
            "unknown argument \"--verbose\"",
        ),
    ] {
        let mut child = sim_command().args(args).env(env.0, env.1).spawn().unwrap();
        let stderr = collect(child.stderr.take().unwrap());
        let _stdout = collect(child.stdout.take().unwrap());
        let status = exit_within(&mut child, Duration::from_secs(10), &format!("{args:?}")).await;
        let stderr = stderr.join().unwrap();
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{stderr}");
    }
}
