//! The cloud persona reads the project id, region and instance id from the metadata server at
//! start-up: here a fake one on port 0, found through `GCE_METADATA_HOST` as Google's client
//! libraries find theirs. Success, a server that never answers, 404s and garbage.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use telemetry::config::{MetadataLookup, OtlpProtocol};
use telemetry::log_sink::LogSink;
use telemetry::testkit::{OtlpReceiver, SpanKind};
use telemetry::{Telemetry, TelemetryConfig};

#[derive(Clone, Copy)]
enum Fake {
    /// Answers like Cloud Run's metadata server.
    CloudRun,
    /// Accepts and never answers.
    Hang,
    /// 404 for everything.
    NotFound,
    /// 200, but HTML (a captive portal, a proxy's error page).
    Html,
    /// A plausible body without `Metadata-Flavor: Google`.
    NoFlavor,
}

async fn answer(fake: Fake, path: &str, headers: &HeaderMap) -> Response {
    // The real server refuses requests without the header; so does the fake.
    if headers.get("metadata-flavor").and_then(|v| v.to_str().ok()) != Some("Google") {
        return StatusCode::FORBIDDEN.into_response();
    }
    let flavor = [("metadata-flavor", "Google")];
    let body = match path {
        "project/project-id" => "demo-project-42",
        "instance/region" => "projects/123456789012/regions/europe-west1",
        "instance/id" => "0066b1dcae7ffa9f2ca2e0f3a84c9e5c2b31e8d1",
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    match fake {
        Fake::CloudRun => (flavor, body).into_response(),
        Fake::Hang => std::future::pending().await,
        Fake::NotFound => (StatusCode::NOT_FOUND, flavor, "Not Found").into_response(),
        Fake::Html => (flavor, "<html><body>Sign in to the network</body></html>").into_response(),
        Fake::NoFlavor => body.into_response(),
    }
}

/// Starts the fake on 127.0.0.1:0; returns `host:port` for `GCE_METADATA_HOST`.
async fn fake_metadata_server(fake: Fake) -> String {
    let app =
        Router::new().route(
            "/computeMetadata/v1/{*path}",
            get(
                move |axum::extract::Path(path): axum::extract::Path<String>,
                      headers: HeaderMap| async move {
                    answer(fake, &path, &headers).await
                },
            ),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address.to_string()
}

/// A server that answers every connection with bytes that are not HTTP.
async fn garbage_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
                let mut request = [0u8; 2048];
                let _ = socket.read(&mut request).await;
                let _ = socket
                    .write_all(b"SSH-2.0-OpenSSH_9.6\r\n\x00\xff\xfe")
                    .await;
                let _ = socket.shutdown().await;
            });
        }
    });
    address.to_string()
}

/// The cloud persona's configuration with the metadata server at `host` (read on a blocking
/// thread: the lookup waits, at most 1.5 s, and the fake runs on this runtime).
async fn cloud_config(host: &str, extra: &[(&str, &str)]) -> TelemetryConfig {
    let mut env: Vec<(String, String)> = vec![
        ("APP_ENV".into(), "cloud".into()),
        ("APP_PII_KEY".into(), "test-pseudonym-key-0123456789".into()),
        ("GCE_METADATA_HOST".into(), host.into()),
    ];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    tokio::task::spawn_blocking(move || {
        TelemetryConfig::from_lookup("cloud-svc", "1.0.0", |key| {
            env.iter()
                .rev()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        })
    })
    .await
    .unwrap()
    .unwrap()
}

fn errors(config: &TelemetryConfig) -> Vec<String> {
    match &config.gcp_metadata {
        MetadataLookup::Asked { errors, .. } => errors.clone(),
        MetadataLookup::Skipped => panic!("the metadata server was not asked"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metadata_server_gives_the_project_region_and_instance() {
    let host = fake_metadata_server(Fake::CloudRun).await;
    let config = cloud_config(&host, &[]).await;
    assert_eq!(config.gcp_project.as_deref(), Some("demo-project-42"));
    assert_eq!(config.gcp_region.as_deref(), Some("europe-west1"));
    assert_eq!(
        config.gcp_instance_id.as_deref(),
        Some("0066b1dcae7ffa9f2ca2e0f3a84c9e5c2b31e8d1")
    );
    assert!(errors(&config).is_empty(), "{:?}", errors(&config));

    // The project feeds the Cloud Logging trace field, the three the resource.
    telemetry::testkit::install_test_subscriber();
    let receiver = OtlpReceiver::start().await.unwrap();
    let mut config = config.with_otlp(receiver.grpc_endpoint(), OtlpProtocol::Grpc);
    config.span_batch.schedule_delay = Duration::from_millis(100);
    let (telemetry, guard) = Telemetry::builder(config)
        .log_sink(LogSink::memory())
        .build()
        .unwrap();
    let app = telemetry.observe_router(Router::new().route("/hello", get(|| async { "hi" })));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap()
    });
    let response = reqwest::get(format!("http://{address}/hello"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    guard.shutdown().await;

    let spans = receiver.spans();
    let span = spans.iter().find(|s| s.kind == SpanKind::Server).unwrap();
    let resource = |key: &str| {
        span.resource
            .get(key)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    assert_eq!(
        resource("cloud.account.id").as_deref(),
        Some("demo-project-42")
    );
    assert_eq!(resource("cloud.region").as_deref(), Some("europe-west1"));
    assert_eq!(
        resource("faas.instance").as_deref(),
        Some("0066b1dcae7ffa9f2ca2e0f3a84c9e5c2b31e8d1")
    );
    assert_eq!(resource("cloud.platform").as_deref(), Some("gcp_cloud_run"));

    let captured = telemetry.log_sink().captured();
    let lines: Vec<serde_json::Value> = captured
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines.iter().all(|l| l["severity"] != "WARNING"),
        "no warning when everything was read: {captured}"
    );
    // The access line of /hello (not excluded) carries the project's trace name.
    let access = lines.iter().find(|l| l["target"] == "access").unwrap();
    assert_eq!(
        access["logging.googleapis.com/trace"],
        format!("projects/demo-project-42/traces/{}", span.trace_id)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_explicit_project_wins_over_the_metadata_server() {
    let host = fake_metadata_server(Fake::CloudRun).await;
    let config = cloud_config(&host, &[("APP_GCP_PROJECT", "explicit-project")]).await;
    assert_eq!(config.gcp_project.as_deref(), Some("explicit-project"));
    // The region and instance still come from the server.
    assert_eq!(config.gcp_region.as_deref(), Some("europe-west1"));
    // And with the lookup off, nothing is asked at all.
    let off = cloud_config(&host, &[("APP_GCP_METADATA", "off")]).await;
    assert_eq!(off.gcp_metadata, MetadataLookup::Skipped);
    assert_eq!(off.gcp_project, None);
    assert_eq!(off.gcp_region, None);
}

/// A server that fails in `fake`'s way: start-up goes on without the values and writes one
/// WARN line naming the host and what went wrong; log lines carry no trace field.
async fn start_without_metadata(host: &str, expected_error: &str) {
    let config = cloud_config(host, &[]).await;
    assert_eq!(config.gcp_project, None);
    assert_eq!(config.gcp_region, None);
    assert_eq!(config.gcp_instance_id, None);
    let errors = errors(&config);
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(
        errors.iter().all(|e| e.contains(expected_error)),
        "{errors:?} should say {expected_error}"
    );

    telemetry::testkit::install_test_subscriber();
    let mut config = config;
    config.otlp_endpoint = None; // stdout only: this test is about the start-up line
    let (telemetry, guard) = Telemetry::builder(config)
        .log_sink(LogSink::memory())
        .build()
        .unwrap();
    guard.shutdown().await;
    let captured = telemetry.log_sink().captured();
    let warnings: Vec<serde_json::Value> = captured
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|l| l["severity"] == "WARNING")
        .collect();
    assert_eq!(warnings.len(), 1, "{captured}");
    let warning = &warnings[0];
    assert_eq!(warning["target"], "telemetry::startup");
    assert_eq!(warning["gcp.metadata.host"], host);
    assert!(
        warning["message"]
            .as_str()
            .unwrap()
            .contains("logging.googleapis.com/trace"),
        "{warning}"
    );
    assert!(
        warning["error"].as_str().unwrap().contains(expected_error),
        "{warning}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metadata_server_that_never_answers_costs_the_timeout_and_a_warning() {
    let host = fake_metadata_server(Fake::Hang).await;
    start_without_metadata(&host, "no answer within 1500 ms").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_answers_leave_the_values_unknown() {
    let host = fake_metadata_server(Fake::NotFound).await;
    start_without_metadata(&host, "HTTP 404").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_is_never_taken_for_a_value() {
    let host = fake_metadata_server(Fake::Html).await;
    start_without_metadata(&host, "not a plausible value").await;
    let host = fake_metadata_server(Fake::NoFlavor).await;
    start_without_metadata(&host, "Metadata-Flavor").await;
    let host = garbage_server().await;
    start_without_metadata(&host, "not an HTTP answer").await;
    // Nothing listening: refused at once.
    let closed = crate::common::closed_address().to_string();
    start_without_metadata(&closed, "cannot connect").await;
}
