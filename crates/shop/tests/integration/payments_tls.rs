//! The payment client over `https://`: the real `shop` binary checks out against a TLS stub
//! of the provider whose certificate comes from the testkit's test CA, trusted through the
//! platform mechanism (`SSL_CERT_FILE`); without that trust the same checkout fails (502) and
//! the provider never sees a request.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::routing::post;
use serde_json::{Value, json};
use telemetry::testkit::{ReceiverTls, TestPki, TlsListener};

use crate::common::process::{collect, free_port, shop_command, terminate, wait_healthy};
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
