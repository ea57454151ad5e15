//! A real server on port 0, instrumented by one telemetry instance exporting to an in-process
//! OTLP receiver, with its log lines captured in memory.
#![allow(dead_code, clippy::unwrap_used, unreachable_pub)]

use std::net::SocketAddr;

use axum::Router;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use telemetry::config::OtlpProtocol;
use telemetry::log_sink::LogSink;
use telemetry::testkit::{CapturedSpan, OtlpReceiver, SpanKind};
use telemetry::{ErrorKind, ErrorObservation, Telemetry, TelemetryConfig, TelemetryGuard};

pub struct Harness {
    pub base: String,
    pub receiver: OtlpReceiver,
    pub telemetry: Telemetry,
    guard: Option<TelemetryGuard>,
    pub client: reqwest::Client,
}

/// Test routes: a normal handler that logs, a handled 404, a 503, a panic, health.
pub fn routes() -> Router {
    Router::new()
        .route("/items/{id}", get(item))
        .route("/unavailable", get(unavailable))
        .route("/boom", get(boom))
        .route("/healthz", get(|| async { "ok" }))
        .route("/user", get(user))
        .route(
            "/event",
            get(|| async {
                tracing::info!(
                    event.name = "app.test.happened",
                    test.count = 3,
                    "it happened"
                );
                "ok"
            }),
        )
        .fallback(telemetry::layer::not_found_fallback)
}

struct TestError(ErrorKind, &'static str, &'static str);

impl IntoResponse for TestError {
    fn into_response(self) -> Response {
        let body = telemetry::layer::error_body(self.0.as_str(), self.1, "safe message");
        let mut response = (self.0.status(), body).into_response();
        response
            .extensions_mut()
            .insert(ErrorObservation::new(self.0, self.1, self.2));
        response
    }
}

async fn item(Path(id): Path<u64>) -> Result<String, TestError> {
    tracing::info!(item_id = id, "fetching item");
    if id == 0 {
        return Err(TestError(
            ErrorKind::NotFound,
            "item.not_found",
            "no item 0",
        ));
    }
    Ok(format!("{{\"id\":{id}}}"))
}

async fn unavailable() -> Result<String, TestError> {
    Err(TestError(
        ErrorKind::Unavailable,
        "dependency.unavailable",
        "upstream refused for ann@example.com",
    ))
}

async fn boom() -> &'static str {
    panic!("kaboom for bob@example.com")
}

/// Stands in for an authentication middleware: the user id arrives in a header that the
/// telemetry never records.
async fn user(headers: http::HeaderMap) -> &'static str {
    let id = headers
        .get("x-test-user")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("anonymous");
    if let Some(context) = telemetry::RequestContext::current() {
        context.set_user(id);
    }
    tracing::info!(
        email = "carol@example.com",
        contact_email = "dave@example.org",
        token = "tok_secret_value",
        "user seen"
    );
    "ok"
}

pub fn config(pairs: &[(&str, &str)]) -> TelemetryConfig {
    let mut env: Vec<(String, String)> = vec![
        ("APP_LOG_FORMAT".into(), "json".into()),
        ("APP_PII_KEY".into(), "test-pseudonym-key-0123456789".into()),
    ];
    env.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let mut config = TelemetryConfig::from_lookup("test-svc", "1.0.0", |key| {
        env.iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    })
    .unwrap();
    config.metric_export_interval = std::time::Duration::from_millis(200);
    config.span_batch.schedule_delay = std::time::Duration::from_millis(100);
    config.log_batch.schedule_delay = std::time::Duration::from_millis(100);
    config
}

/// Serves `router` instrumented by a new instance built from `config` (log lines in memory) on
/// 127.0.0.1:0; returns the base URL, the instance and its guard.
pub async fn serve_instrumented(
    config: TelemetryConfig,
    router: Router,
) -> (String, Telemetry, TelemetryGuard) {
    telemetry::testkit::install_test_subscriber();
    let (telemetry, guard) = Telemetry::builder(config)
        .log_sink(LogSink::memory())
        // The test app's vocabulary: its `email` and `user.email` fields hold an address.
        .email_fields(&["email", "user.email"])
        .build()
        .unwrap();
    let app = telemetry.observe_router(router);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    (format!("http://{addr}"), telemetry, guard)
}

/// The value of the first `/metrics` line starting with `series` (name and labels), if any.
pub fn prometheus_value(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|line| line.starts_with(series))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

impl Harness {
    pub async fn start(pairs: &[(&str, &str)]) -> Self {
        Self::start_with(pairs, OtlpProtocol::Grpc, routes()).await
    }

    pub async fn start_with(
        pairs: &[(&str, &str)],
        protocol: OtlpProtocol,
        router: Router,
    ) -> Self {
        telemetry::testkit::install_test_subscriber();
        let receiver = OtlpReceiver::start().await.unwrap();
        let endpoint = match protocol {
            OtlpProtocol::Grpc => receiver.grpc_endpoint(),
            OtlpProtocol::HttpProtobuf => receiver.http_endpoint(),
        };
        let (base, telemetry, guard) =
            serve_instrumented(config(pairs).with_otlp(endpoint, protocol), router).await;
        Self {
            base,
            receiver,
            telemetry,
            guard: Some(guard),
            client: reqwest::Client::new(),
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{}", self.base, path))
            .send()
            .await
            .unwrap()
    }

    /// Flushes every signal to the receiver (shutdown of the instance).
    pub async fn flush(&mut self) {
        if let Some(guard) = self.guard.take() {
            guard.shutdown().await;
        }
    }

    /// Captured stdout lines, parsed.
    pub fn log_lines(&self) -> Vec<serde_json::Value> {
        self.telemetry
            .log_sink()
            .captured()
            .lines()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
            })
            .collect()
    }

    pub fn access_lines(&self) -> Vec<serde_json::Value> {
        self.log_lines()
            .into_iter()
            .filter(|l| l["target"] == "access")
            .collect()
    }

    pub fn server_spans(&self) -> Vec<CapturedSpan> {
        self.receiver
            .spans()
            .into_iter()
            .filter(|s| s.kind == SpanKind::Server)
            .collect()
    }
}

/// A loopback address nothing listens on (connections are refused).
pub fn closed_address() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// `http://` and [`closed_address`]: an OTLP endpoint where nothing listens.
pub fn closed_endpoint() -> String {
    format!("http://{}", closed_address())
}
