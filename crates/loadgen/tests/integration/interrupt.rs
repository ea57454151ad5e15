//! Ctrl-C (SIGINT) stops the run and prints the summary so far.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::Shop;

#[tokio::test]
async fn ctrl_c_prints_the_summary_so_far_and_exits_130() {
    let shop = Shop::start(&[]).await;
    let child = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "--target",
            &shop.url,
            "--users",
            "2",
            "--duration",
            "60s",
            "--json",
        ])
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let sent = Instant::now();
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        sent.elapsed() < Duration::from_secs(10),
        "stopped long after Ctrl-C"
    );
    assert_eq!(
        output.status.code(),
        Some(130),
        "{}",
        crate::common::stderr(&output)
    );
    let summary = crate::common::json(&output);
    assert_eq!(summary["interrupted"], true);
    assert!(summary["requests"].as_u64().unwrap() > 0, "{summary:#}");
    assert!(summary["elapsed_s"].as_f64().unwrap() < 30.0);
}
