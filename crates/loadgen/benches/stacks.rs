//! The servers of the side-by-side benchmark (`scripts/bench-stacks.sh`): one handler served
//! three ways, to be loaded by `loadgen` one after the other.
//!
//! ```text
//! cargo bench -p loadgen --bench stacks -- --serve bare|ours|peer PORT [--sqlite]
//! ```
//!
//! - `bare`: axum, no instrumentation.
//! - `ours`: the workspace's `telemetry` crate (`Telemetry::observe_router`), configured by the
//!   `OTEL_*` / `APP_*` environment like the shop (all three signals over OTLP when
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` is set).
//! - `peer`: the stack most Rust services assemble by hand: tower-http `TraceLayer` with a span
//!   carrying the extracted W3C parent, `tracing-opentelemetry`, a `tracing-subscriber` JSON
//!   `fmt` layer with an INFO access event per request, an OTel `http.server.request.duration`
//!   histogram, and the stock OTLP/gRPC exporters with their default batch processors.
//!
//! `--sqlite`: the handler runs one query on an in-memory SQLite database. With `ours`,
//! `APP_CONSOLE=on` adds the embedded console (crates/console) as the shop wires it.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Path, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Histogram, MeterProvider as _};
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use sqlx::sqlite::SqlitePool;
use tower_http::trace::TraceLayer;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

#[derive(Clone)]
struct Db(Option<SqlitePool>);

async fn product(State(db): State<Db>, Path(id): Path<i64>) -> axum::Json<serde_json::Value> {
    let stock: i64 = match &db.0 {
        Some(pool) => sqlx::query_scalar("SELECT stock FROM products WHERE id = ?")
            .bind(id)
            .fetch_optional(pool)
            .await
            .ok()
            .flatten()
            .unwrap_or(0),
        None => 12,
    };
    axum::Json(serde_json::json!({"id": id, "name": "Widget", "price_cents": 1999, "stock": stock}))
}

async fn database(sqlite: bool) -> Db {
    if !sqlite {
        return Db(None);
    }
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .unwrap();
    sqlx::query("CREATE TABLE products (id INTEGER PRIMARY KEY, stock INTEGER NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    for id in 1..=100 {
        sqlx::query("INSERT INTO products (id, stock) VALUES (?, ?)")
            .bind(id)
            .bind(id * 3)
            .execute(&pool)
            .await
            .unwrap();
    }
    Db(Some(pool))
}

fn routes(db: Db) -> Router {
    Router::new()
        .route("/v1/products/{id}", get(product))
        .route("/readyz", get(|| async { "ok" }))
        .with_state(db)
}

async fn record_duration(
    State(histogram): State<Histogram<f64>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let response = next.run(request).await;
    histogram.record(
        started.elapsed().as_secs_f64(),
        &[
            KeyValue::new("http.request.method", method),
            KeyValue::new("http.route", route),
            KeyValue::new(
                "http.response.status_code",
                i64::from(response.status().as_u16()),
            ),
        ],
    );
    response
}

/// The hand-assembled stack; returns the router and the providers to keep alive.
fn peer(db: Db) -> (Router, SdkTracerProvider, SdkMeterProvider) {
    let endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
        .unwrap_or_else(|_| "http://127.0.0.1:4317".into());
    let resource = Resource::builder().with_service_name("peer").build();
    let spans = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint.clone())
        .build()
        .unwrap();
    let tracer_provider = SdkTracerProvider::builder()
        .with_resource(resource.clone())
        .with_batch_exporter(spans)
        .build();
    let metrics = opentelemetry_otlp::MetricExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .unwrap();
    let meter_provider = SdkMeterProvider::builder()
        .with_resource(resource)
        .with_periodic_exporter(metrics)
        .build();
    let histogram = meter_provider
        .meter("peer")
        .f64_histogram("http.server.request.duration")
        .with_unit("s")
        .build();
    tracing_subscriber::registry()
        .with(tracing_subscriber::filter::LevelFilter::INFO)
        .with(tracing_opentelemetry::layer().with_tracer(tracer_provider.tracer("peer")))
        .with(tracing_subscriber::fmt::layer().json())
        .init();
    let trace = TraceLayer::new_for_http()
        .make_span_with(|request: &Request| {
            let parent = TraceContextPropagator::new()
                .extract(&opentelemetry_http::HeaderExtractor(request.headers()));
            let route = request
                .extensions()
                .get::<MatchedPath>()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default();
            let span = tracing::info_span!(
                "request",
                otel.name = format!("{} {route}", request.method()),
                otel.kind = "server",
                http.request.method = %request.method(),
                http.route = %route,
                url.path = %request.uri().path(),
                http.response.status_code = tracing::field::Empty,
            );
            let _ = span.set_parent(parent);
            span
        })
        .on_response(
            |response: &Response, latency: Duration, span: &tracing::Span| {
                span.record("http.response.status_code", response.status().as_u16());
                tracing::info!(
                    status = response.status().as_u16(),
                    duration_ms = latency.as_secs_f64() * 1e3,
                    "request finished"
                );
            },
        );
    let router = routes(db)
        .layer(trace)
        .layer(axum::middleware::from_fn_with_state(
            histogram,
            record_duration,
        ));
    (router, tracer_provider, meter_provider)
}

/// The library's own loss counters (records dropped on a full queue, failed exports), for the
/// script to report next to the figures: a variant that drops records does less work.
fn losses(telemetry: &telemetry::Telemetry) -> String {
    telemetry
        .prometheus_text()
        .lines()
        .filter(|line| line.starts_with("app_telemetry_"))
        .map(|line| format!("{line}\n"))
        .collect()
}

/// An OTLP/HTTP endpoint that reads every export request and discards it (answering with an
/// empty `Export*ServiceResponse`), on one thread: what a collector costs when it does nothing,
/// for the `ours-sink` variant (our export path without a collector's decoding on the same
/// cores).
fn sink(port: u16) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let discard = axum::routing::post(|body: axum::body::Bytes| async move {
            drop(body);
            (
                [(axum::http::header::CONTENT_TYPE, "application/x-protobuf")],
                "",
            )
        });
        let app = Router::new()
            .route("/v1/traces", discard.clone())
            .route("/v1/logs", discard.clone())
            .route("/v1/metrics", discard)
            .layer(axum::extract::DefaultBodyLimit::max(64 << 20));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .unwrap();
    });
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(at) = args.iter().position(|a| a == "--serve") else {
        println!(
            "usage: stacks --serve bare|ours|peer|sink PORT [--sqlite] (see scripts/bench-stacks.sh)"
        );
        return;
    };
    let variant = args[at + 1].clone();
    let port: u16 = args[at + 2].parse().unwrap();
    let sqlite = args.iter().any(|a| a == "--sqlite");
    if variant == "sink" {
        return sink(port);
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        let db = database(sqlite).await;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        match variant.as_str() {
            "bare" => axum::serve(listener, routes(db))
                .with_graceful_shutdown(shutdown)
                .await
                .unwrap(),
            "ours" => {
                let config = telemetry::TelemetryConfig::from_env("ours", "0").unwrap();
                // APP_CONSOLE=on: the embedded console as the shop wires it (an export tap
                // beside OTLP, its UI merged outside `observe_router`).
                let console = (std::env::var("APP_CONSOLE").as_deref() == Ok("on"))
                    .then(|| console::Console::new(console::Limits::default()));
                let mut builder = telemetry::Telemetry::builder(config);
                if let Some(console) = &console {
                    builder = builder.export_tap(console.tap());
                }
                let (telemetry, guard) = builder.build().unwrap();
                // As the shop does: the app's own `tracing` events (here sqlx's) go through
                // the library's layer.
                telemetry.install_global_subscriber();
                let health = telemetry.clone();
                let app = telemetry.observe_router(routes(db)).route(
                    "/bench/telemetry",
                    get(move || async move { losses(&health) }),
                );
                let app = match &console {
                    Some(console) => app.merge(console.router()),
                    None => app,
                };
                axum::serve(
                    listener,
                    app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
                )
                .with_graceful_shutdown(shutdown)
                .await
                .unwrap();
                guard.shutdown().await;
            }
            "peer" => {
                let (app, tracer_provider, meter_provider) = peer(db);
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
                    .unwrap();
                let _ = tracer_provider.shutdown();
                let _ = meter_provider.shutdown();
            }
            other => panic!("unknown variant {other}"),
        }
    });
}
