//! Operational endpoints and the signals a request leaves behind: health, readiness, metrics,
//! the JSON 404 fallback, and DB CLIENT spans under the SERVER span.

#![allow(clippy::unwrap_used)]

mod common;

use common::{TempDatabase, serve, shop_config, spawn_app, test_telemetry};
use serde_json::Value;
use shop::app::{AppState, router};
use shop::store::Backend;
use telemetry::testkit::SpanKind;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_ok() {
    let app = spawn_app(&[]).await;
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        serde_json::json!({"status": "ok"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_answers_ok_when_the_database_answers() {
    let app = spawn_app(&[]).await;
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        serde_json::json!({"status": "ok"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_answers_503_db_unavailable_when_the_database_is_unreachable() {
    let (telemetry, _guard, _receiver) = test_telemetry(&[]).await;
    let database = TempDatabase::new();
    let config = shop_config(telemetry.config(), &database, &[]);
    let store = Backend::open(&config, &telemetry).await.unwrap();
    store.close().await;
    let (address, _stop) = serve(router(AppState { store }, &telemetry)).await;

    let response = reqwest::get(format!("http://{address}/readyz"))
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["kind"], "unavailable", "{body}");
    assert_eq!(body["error"]["code"], "db.unavailable", "{body}");
    assert!(
        !body.to_string().contains("pool"),
        "no internals reach the client: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_route_answers_json_404_route_not_found() {
    let app = spawn_app(&[]).await;
    let response = app.get("/v1/nothing/here").await;
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "route.not_found", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_endpoint_serves_request_and_database_durations() {
    let app = spawn_app(&[]).await;
    assert_eq!(app.get("/v1/products/1").await.status(), 200);
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(
        text.contains("http_server_request_duration_seconds"),
        "{text}"
    );
    assert!(
        text.contains("db_client_operation_duration_seconds"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn product_request_produces_db_client_spans_under_the_server_span() {
    let app = spawn_app(&[]).await;
    assert_eq!(app.get("/v1/products/1").await.status(), 200);
    app.guard.shutdown().await;

    let spans = app.receiver.spans();
    let server = spans
        .iter()
        .find(|s| s.kind == SpanKind::Server && s.name == "GET /v1/products/{id}")
        .unwrap_or_else(|| panic!("no server span among {spans:#?}"));
    let clients: Vec<_> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Client && s.trace_id == server.trace_id)
        .collect();
    assert!(
        !clients.is_empty(),
        "no DB span in the request's trace: {spans:#?}"
    );
    for client in clients {
        assert_eq!(client.parent_span_id, server.span_id, "{client:#?}");
        assert_eq!(client.str_attr("db.system.name"), Some("sqlite"));
        assert_eq!(client.str_attr("db.operation.name"), Some("SELECT"));
        assert_eq!(client.str_attr("db.collection.name"), Some("products"));
        assert_eq!(client.str_attr("db.query.summary"), Some("SELECT products"));
        let keys: Vec<&str> = client.attributes.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "db.collection.name",
                "db.operation.name",
                "db.query.summary",
                "db.system.name"
            ],
            "no bound values or statement text on DB spans"
        );
    }
}
