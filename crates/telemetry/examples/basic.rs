//! A plain axum app instrumented in a few lines.
//!
//! ```sh
//! cargo run -p telemetry --example basic
//! curl -i localhost:3000/hello/world
//! curl -s localhost:3000/metrics | head
//! # with a collector: OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317 cargo run -p telemetry --example basic
//! ```

use axum::Router;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use telemetry::{ErrorKind, ErrorObservation, Telemetry, TelemetryConfig};
// `.instrument(span)` for spawned work; `Telemetry::observe_router` does not collide with it.
use tracing::Instrument as _;

/// Errors are returned, never logged: the middleware observes them exactly once.
struct NotFriendly;

impl IntoResponse for NotFriendly {
    fn into_response(self) -> Response {
        let body =
            telemetry::layer::error_body("forbidden", "greeting.refused", "not greeting that one");
        let mut response = (http::StatusCode::FORBIDDEN, body).into_response();
        response.extensions_mut().insert(ErrorObservation::new(
            ErrorKind::Forbidden,
            "greeting.refused",
            "refused to greet the dark lord",
        ));
        response
    }
}

async fn hello(Path(name): Path<String>) -> Result<String, NotFriendly> {
    if name == "sauron" {
        return Err(NotFriendly);
    }
    let greeting = compose(&name).await;
    // Spawned work keeps its parent span (and the request's ids) across threads.
    tokio::spawn(
        async { tracing::info!("greeting recorded") }
            .instrument(tracing::info_span!("record_greeting")),
    );
    Ok(greeting)
}

/// A child span of the request's SERVER span, with `name` as its attribute.
#[tracing::instrument]
async fn compose(name: &str) -> String {
    tracing::info!("greeting"); // carries trace_id, this span's span_id, request_id
    format!("hello, {name}\n")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. configuration from OTEL_* / APP_* (bad values stop here with the variable named)
    let config = TelemetryConfig::from_env("hello", env!("CARGO_PKG_VERSION"))?;
    // 2. one instance, built inside the runtime
    let (telemetry, guard) = Telemetry::init(config)?;
    telemetry.install_global_subscriber();
    // 3. one call instruments every route, the fallback and adds /metrics
    let app = telemetry.observe_router(
        Router::new()
            .route("/hello/{name}", get(hello))
            .fallback(telemetry::layer::not_found_fallback),
    );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    tracing::info!(address = %listener.local_addr()?, "listening");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    // 4. flush traces, logs and metrics without blocking the runtime
    guard.shutdown().await;
    Ok(())
}
