//! TLS in the real `shop` binary. The payment client over `https://`: a checkout against a TLS
//! stub of the provider whose certificate comes from the testkit's test CA, trusted through the
//! platform mechanism (`SSL_CERT_FILE`); without that trust the same checkout fails (502) and
//! the provider never sees a request. OTLP TLS files that cannot be used stop start-up with
//! exit code 2 and one line naming the variable, and the start-up line says where export goes.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::routing::post;
use serde_json::{Value, json};
use telemetry::testkit::{ReceiverTls, TestPki, TlsListener};

use std::time::Duration;

use crate::common::process::{
    collect, exit_within, free_port, shop_command, terminate, wait_healthy,
};
use crate::common::{TempDatabase, parse_json_lines};

/// A provider stub on `https://127.0.0.1:PORT` approving every charge; counts the charges it
/// answered and the handshakes that failed.
async fn tls_provider() -> (String, Arc<AtomicUsize>, Arc<std::sync::atomic::AtomicU64>) {
    let charges = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&charges);
    let router = Router::new().route(
        "/v1/charges",
        post(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                (
                    axum::http::StatusCode::CREATED,
                    axum::Json(json!({"id": format!("ch_tls_{n}"), "status": "approved"})),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let listener = TlsListener::new(listener, &ReceiverTls::test_pki()).unwrap();
    let failed_handshakes = listener.failed_handshakes();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("https://{address}"), charges, failed_handshakes)
}

/// Starts the binary against `provider` (with `SSL_CERT_FILE` when `trust` is set), signs up,
/// checks one product out; returns the checkout's status and the stdout lines.
async fn checkout_through(provider: &str, trust: Option<&str>) -> (u16, Vec<Value>) {
    let database = TempDatabase::new();
    let port = free_port();
    let mut command = shop_command();
    command
        .env("PORT", port.to_string())
        .env("DATABASE_URL", database.url())
        .env("APP_LOG_FORMAT", "json")
        .env("PAYMENTS_URL", provider)
        .env("PAYMENTS_MAX_ATTEMPTS", "1")
        .env_remove("SSL_CERT_DIR");
    match trust {
        Some(ca) => command.env("SSL_CERT_FILE", ca),
        None => command.env_remove("SSL_CERT_FILE"),
    };
    let mut child = command.spawn().unwrap();
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
    let signed_up: Value = client
        .post(format!("{base}/v1/users"))
        .json(&json!({"email": "tls@example.com", "name": "Buyer"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = signed_up["token"].as_str().unwrap();
    let status = client
        .post(format!("{base}/v1/orders"))
        .bearer_auth(token)
        .json(&json!({"items": [{"product_id": 1, "quantity": 1}]}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    let exit = terminate(&mut child).await;
    let stdout = stdout.join().unwrap();
    assert_eq!(exit.code(), Some(0), "stderr: {}", stderr.join().unwrap());
    (status, parse_json_lines(&stdout))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_charges_an_https_provider_whose_ca_the_platform_trusts() {
    let (provider, charges, _) = tls_provider().await;
    let ca = TestPki::path("ca.pem").display().to_string();
    let (status, lines) = checkout_through(&provider, Some(&ca)).await;
    assert_eq!(status, 201, "{lines:?}");
    assert_eq!(charges.load(Ordering::SeqCst), 1);
    let access = lines
        .iter()
        .find(|l| l["target"] == "access" && l["route"] == "/v1/orders")
        .unwrap_or_else(|| panic!("no access line for the checkout in {lines:?}"));
    assert_eq!(access["status"], 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_provider_with_an_untrusted_certificate_is_never_charged() {
    let (provider, charges, failed_handshakes) = tls_provider().await;
    // The platform's roots (this machine's /etc/ssl/certs) do not hold the test CA.
    let (status, lines) = checkout_through(&provider, None).await;
    assert_eq!(status, 502, "{lines:?}");
    assert_eq!(charges.load(Ordering::SeqCst), 0);
    assert!(failed_handshakes.load(Ordering::SeqCst) >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_refuses_an_unreadable_otlp_certificate_with_exit_code_2_naming_the_variable() {
    let database = TempDatabase::new();
    let mut child = shop_command()
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "https://collector.example:4317",
        )
        .env(
            "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
            "/nonexistent/ca.pem",
        )
        .env("PORT", free_port().to_string())
        .env("DATABASE_URL", database.url())
        .spawn()
        .unwrap();
    let stdout = collect(child.stdout.take().unwrap());
    let stderr = collect(child.stderr.take().unwrap());
    let status = exit_within(
        &mut child,
        Duration::from_secs(10),
        "the shop with a bad certificate",
    )
    .await;
    let stderr = stderr.join().unwrap();
    assert_eq!(status.code(), Some(2), "stderr: {stderr}");
    assert!(
        stderr.contains("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE")
            && stderr.contains("/nonexistent/ca.pem"),
        "{stderr}"
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(stdout.join().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_states_at_start_up_that_export_is_off() {
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
    if let Err(status) = wait_healthy(&format!("http://127.0.0.1:{port}"), &mut child).await {
        panic!(
            "shop exited early with {status}: {}",
            stderr.join().unwrap()
        );
    }
    terminate(&mut child).await;
    let lines = parse_json_lines(&stdout.join().unwrap());
    let startup: Vec<&Value> = lines
        .iter()
        .filter(|l| l["target"] == "telemetry::startup")
        .collect();
    // The shop's own instance (and the in-process simulator's, when it has its own).
    assert!(!startup.is_empty(), "{lines:?}");
    for line in startup {
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["otlp.export"], "off", "{line}");
    }
}
