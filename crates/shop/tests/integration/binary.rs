//! The real `shop` binary: serves (on SQLite and PostgreSQL), writes JSON access lines, exits
//! cleanly on SIGTERM, refuses bad configuration with exit code 2 and exits 1 when its database
//! is unreachable, never printing a database password.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use crate::common::process::{
    collect, exit_within, free_port, shop_command, terminate, wait_healthy,
};
use crate::common::{Db, TempDatabase, TestDatabase, parse_json_lines, postgres_ready};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_serves_logs_a_json_access_line_and_exits_0_within_10s_of_sigterm() {
    let database = TempDatabase::new();
    let port = free_port();
    let mut child = shop_command()
        .env("PORT", port.to_string())
        .env("DATABASE_URL", database.url())
        .env("APP_LOG_FORMAT", "json")
        .spawn()
        .unwrap();
    let stdout = collect(child.stdout.take().unwrap());
    let stderr = collect(child.stderr.take().unwrap());
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");

    if let Err(status) = wait_healthy(&base, &mut child).await {
        panic!(
            "shop exited early with {status}: {}",
            stderr.join().unwrap()
        );
    }

    let response = client
        .get(format!("{base}/v1/products/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();

    let signalled = Instant::now();
    let status = terminate(&mut child).await;
    assert!(signalled.elapsed() < Duration::from_secs(10));
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
    let access = lines
        .iter()
        .find(|l| l["target"] == "access" && l["route"] == "/v1/products/{id}")
        .unwrap_or_else(|| panic!("no access line for the product request in {stdout}"));
    assert_eq!(access["status"], 200);
    assert_eq!(access["method"], "GET");
    assert_eq!(access["request_id"], request_id.as_str());
    for key in ["trace_id", "span_id", "request_id"] {
        assert!(
            access[key].as_str().is_some_and(|v| !v.is_empty()),
            "{key} in {access}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_refuses_a_bad_pii_mode_with_exit_code_2_naming_the_variable() {
    let database = TempDatabase::new();
    let mut child = shop_command()
        .env("APP_PII_MODE", "everything")
        .env("PORT", free_port().to_string())
        .env("DATABASE_URL", database.url())
        .spawn()
        .unwrap();
    let stdout = collect(child.stdout.take().unwrap());
    let stderr = collect(child.stderr.take().unwrap());
    let status = exit_within(
        &mut child,
        Duration::from_secs(10),
        "the shop with a bad configuration",
    )
    .await;
    let stderr = stderr.join().unwrap();
    assert_eq!(status.code(), Some(2), "stderr: {stderr}");
    assert!(stderr.starts_with("shop: "), "{stderr}");
    assert!(
        stderr.contains("APP_PII_MODE") && stderr.contains("everything"),
        "{stderr}"
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(stdout.join().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_refuses_bad_proxy_and_sentry_settings_naming_the_variable() {
    for (variable, value, shown) in [
        ("APP_TRUSTED_PROXIES", "everyone", true),
        ("SENTRY_DSN", "https://secretkey@", false),
        ("SENTRY_DSN", "http://secretkey@sentry.example/3", false),
    ] {
        let database = TempDatabase::new();
        let mut child = shop_command()
            .env(variable, value)
            .env("PORT", free_port().to_string())
            .env("DATABASE_URL", database.url())
            .spawn()
            .unwrap();
        let stderr = collect(child.stderr.take().unwrap());
        let status = exit_within(&mut child, Duration::from_secs(10), "the shop").await;
        let stderr = stderr.join().unwrap();
        assert_eq!(status.code(), Some(2), "{variable}: {stderr}");
        assert!(stderr.contains(variable), "{stderr}");
        assert_eq!(stderr.contains(value), shown, "{stderr}");
        assert!(
            !stderr.contains("secretkey"),
            "the DSN is never printed: {stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_refuses_an_unknown_database_scheme_with_exit_code_2_hiding_the_password() {
    let mut child = shop_command()
        .env("DATABASE_URL", "mysql://shop:hunter2@127.0.0.1:3306/test")
        .env("PORT", free_port().to_string())
        .env("APP_LOG_FORMAT", "json")
        .spawn()
        .unwrap();
    let _stdout = collect(child.stdout.take().unwrap());
    let stderr = collect(child.stderr.take().unwrap());
    let status = exit_within(
        &mut child,
        Duration::from_secs(10),
        "the shop with an unsupported database",
    )
    .await;
    let stderr = stderr.join().unwrap();
    assert_eq!(status.code(), Some(2), "stderr: {stderr}");
    assert!(
        stderr.contains("DATABASE_URL") && stderr.contains("postgres://"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_exits_1_when_postgres_is_unreachable_without_printing_the_password() {
    let mut child = shop_command()
        // Port 1: nothing listens there, the connection is refused.
        .env("DATABASE_URL", "postgres://shop:hunter2@127.0.0.1:1/test")
        .env("APP_DB_ACQUIRE_TIMEOUT_MS", "500")
        .env("PORT", free_port().to_string())
        .env("APP_LOG_FORMAT", "json")
        .spawn()
        .unwrap();
    let stdout = collect(child.stdout.take().unwrap());
    let stderr = collect(child.stderr.take().unwrap());
    let status = exit_within(
        &mut child,
        Duration::from_secs(10),
        "the shop with an unreachable database",
    )
    .await;
    let stdout = stdout.join().unwrap();
    let stderr = stderr.join().unwrap();
    assert_eq!(status.code(), Some(1), "stderr: {stderr}\nstdout: {stdout}");
    let lines = parse_json_lines(&stdout);
    assert!(
        lines
            .iter()
            .any(|l| l["level"] == "ERROR" && l["message"] == "start-up failed"),
        "{stdout}"
    );
    // The error names where it tried (host and port) and why, not only the pool's timeout.
    assert!(stderr.contains("127.0.0.1:1"), "stderr: {stderr}");
    assert!(
        stderr.to_lowercase().contains("refused"),
        "stderr: {stderr}"
    );
    assert!(!format!("{stdout}{stderr}").contains("hunter2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_serves_the_catalog_from_postgres() {
    if !postgres_ready("binary_serves_the_catalog_from_postgres").await {
        return;
    }
    let database = TestDatabase::create(Db::Postgres).await;
    let port = free_port();
    let mut child = shop_command()
        .env("PORT", port.to_string())
        .env("DATABASE_URL", database.url())
        .env("APP_LOG_FORMAT", "json")
        .spawn()
        .unwrap();
    let _stdout = collect(child.stdout.take().unwrap());
    let stderr = collect(child.stderr.take().unwrap());
    let client = reqwest::Client::new();
    let started = Instant::now();
    let response = loop {
        if let Ok(response) = client
            .get(format!("http://127.0.0.1:{port}/v1/products/1"))
            .send()
            .await
        {
            break response;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "shop exited early with {status}: {}",
                stderr.join().unwrap()
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "shop did not start on PostgreSQL"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(response.status(), 200);
    let status = terminate(&mut child).await;
    assert_eq!(status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shop_console_receives_otlp_over_http_serves_the_ui_and_exits_0_on_sigterm() {
    let (ui, grpc, http) = (free_port(), free_port(), free_port());
    let mut child = shop_command()
        .arg("console")
        .env("APP_CONSOLE_ADDR", format!("127.0.0.1:{ui}"))
        .env("APP_CONSOLE_OTLP_GRPC_ADDR", format!("127.0.0.1:{grpc}"))
        .env("APP_CONSOLE_OTLP_HTTP_ADDR", format!("127.0.0.1:{http}"))
        .spawn()
        .unwrap();
    let stdout = collect(child.stdout.take().unwrap());
    let stderr = collect(child.stderr.take().unwrap());
    let client = reqwest::Client::new();
    let requests = format!("http://127.0.0.1:{ui}/_console/api/requests");
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.get(&requests).send().await.is_err() {
        assert!(Instant::now() < deadline, "{}", stderr.join().unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // An empty export request is a valid one; JSON is refused with 415.
    let traces = format!("http://127.0.0.1:{http}/v1/traces");
    let accepted = client
        .post(&traces)
        .header("content-type", "application/x-protobuf")
        .body(Vec::new())
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 200);
    assert_eq!(accepted.headers()["content-type"], "application/x-protobuf");
    let json = client
        .post(&traces)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), 415);
    let garbage = client
        .post(&traces)
        .header("content-type", "application/x-protobuf")
        .body(vec![0xff, 0xff, 0xff])
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 400);
    let ui_page = client
        .get(format!("http://127.0.0.1:{ui}/_console/"))
        .send()
        .await
        .unwrap();
    assert_eq!(ui_page.status(), 200);
    let status = terminate(&mut child).await;
    let stdout = stdout.join().unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "{stdout}\n{}",
        stderr.join().unwrap()
    );
    let lines = parse_json_lines(&stdout);
    assert!(
        lines.iter().any(|l| l["target"] == "console::startup"
            && l["console.url"] == format!("http://127.0.0.1:{ui}/_console/").as_str()
            && l["otlp.http"] == format!("http://127.0.0.1:{http}").as_str()
            && l["otlp.grpc"] == format!("http://127.0.0.1:{grpc}").as_str()),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_url_is_on_the_start_up_line() {
    let database = TempDatabase::new();
    let port = free_port();
    let mut child = shop_command()
        .env("PORT", port.to_string())
        .env("DATABASE_URL", database.url())
        .env("APP_LOG_FORMAT", "json")
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
    let console = reqwest::get(format!("{base}/_console/")).await.unwrap();
    assert_eq!(console.status(), 200);
    let status = terminate(&mut child).await;
    let stdout = stdout.join().unwrap();
    assert_eq!(status.code(), Some(0));
    let url = format!("http://127.0.0.1:{port}/_console/");
    let lines = parse_json_lines(&stdout);
    assert!(
        lines.iter().any(|l| l["target"] == "telemetry::startup"
            && l["service"] == "shop"
            && l["console.url"] == url.as_str()),
        "{stdout}"
    );
    assert!(
        !lines.iter().any(|l| l["target"] == "telemetry::startup"
            && l["service"] == "payments-sim"
            && l.get("console.url").is_some()),
        "only the shop's line names it: {stdout}"
    );
}
