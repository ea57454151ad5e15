//! Operational endpoints and the signals a request leaves behind: health, readiness, metrics,
//! the JSON 404 fallback, DB CLIENT spans under the SERVER span, start-up against a shared
//! database and pool exhaustion — on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use crate::common::{
    Db, TestDatabase, UsersWriteLock, on_both_backends, serve, shop_config, spawn_app_on,
    test_telemetry,
};
use serde_json::{Value, json};
use shop::app::router;
use shop::state::AppState;
use shop::store::Store;
use telemetry::testkit::SpanKind;

on_both_backends!(
    healthz_answers_ok,
    readyz_answers_ok_when_the_database_answers,
    readyz_answers_503_db_unavailable_when_the_database_is_unreachable,
    unknown_route_answers_json_404_route_not_found,
    unsupported_method_answers_json_405_and_is_observed_once,
    metrics_endpoint_serves_request_and_database_durations,
    product_request_produces_db_client_spans_under_the_server_span,
    two_instances_starting_at_once_seed_the_catalog_once,
    an_exhausted_pool_answers_503_db_pool_exhausted_within_the_acquire_timeout,
);

async fn healthz_answers_ok(db: Db) {
    let app = spawn_app_on(db, &[]).await;
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        serde_json::json!({"status": "ok"})
    );
}

async fn readyz_answers_ok_when_the_database_answers(db: Db) {
    let app = spawn_app_on(db, &[]).await;
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        serde_json::json!({"status": "ok"})
    );
}

async fn readyz_answers_503_db_unavailable_when_the_database_is_unreachable(db: Db) {
    let (telemetry, _guard, _receiver) = test_telemetry(&[]).await;
    let database = TestDatabase::create(db).await;
    let config = shop_config(telemetry.config(), &database, &[]);
    let store = Store::open(&config, &telemetry).await.unwrap();
    store.close().await;
    let (address, _stop) = serve(router(
        AppState::new(store, &config, &telemetry).unwrap(),
        &telemetry,
    ))
    .await;

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

async fn unknown_route_answers_json_404_route_not_found(db: Db) {
    let app = spawn_app_on(db, &[]).await;
    let response = app.get("/v1/nothing/here").await;
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "route.not_found", "{body}");
}

async fn unsupported_method_answers_json_405_and_is_observed_once(db: Db) {
    let app = spawn_app_on(db, &[]).await;
    let response = app
        .client
        .delete(app.url("/v1/products"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "route.method_not_allowed", "{body}");
    let warnings: Vec<Value> = app
        .log_lines()
        .into_iter()
        .filter(|l| l["level"] == "WARN" || l["level"] == "ERROR")
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert_eq!(warnings[0]["error.code"], "route.method_not_allowed");
    assert_eq!(warnings[0]["route"], "/v1/products");
}

async fn metrics_endpoint_serves_request_and_database_durations(db: Db) {
    let app = spawn_app_on(db, &[]).await;
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

async fn product_request_produces_db_client_spans_under_the_server_span(db: Db) {
    let app = spawn_app_on(db, &[]).await;
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
        assert_eq!(client.str_attr("db.system.name"), Some(db.system_name()));
        assert_eq!(client.str_attr("db.operation.name"), Some("SELECT"));
        assert_eq!(client.str_attr("db.collection.name"), Some("products"));
        assert_eq!(client.str_attr("db.query.summary"), Some("SELECT products"));
        let keys: Vec<&str> = client.attributes.keys().map(String::as_str).collect();
        let mut expected = vec![
            "db.collection.name",
            "db.operation.name",
            "db.query.summary",
            "db.system.name",
        ];
        if db.system_name() == "postgresql" {
            // A client/server database: the span names the server (SQLite is embedded).
            // The test server's host and port (127.0.0.1:5432 by default).
            assert!(
                client
                    .str_attr("server.address")
                    .is_some_and(|h| !h.is_empty())
            );
            assert!(
                client
                    .attr("server.port")
                    .and_then(|v| v.as_i64())
                    .is_some_and(|p| p > 0)
            );
            expected.extend(["server.address", "server.port"]);
        }
        assert_eq!(
            keys, expected,
            "no bound values or statement text on DB spans"
        );
    }
}

async fn two_instances_starting_at_once_seed_the_catalog_once(db: Db) {
    let (telemetry, _guard, _receiver) = test_telemetry(&[]).await;
    let database = TestDatabase::create(db).await;
    let config = shop_config(telemetry.config(), &database, &[]);
    let (first, second) = tokio::join!(
        Store::open(&config, &telemetry),
        Store::open(&config, &telemetry)
    );
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(first.system_name(), db.system_name());
    let all = shop::store::ProductQuery {
        page: shop::store::PageRequest {
            page: 1,
            per_page: 100,
        },
        category: None,
        sort: shop::store::ProductSort::Id,
    };
    let (items, total) = first.list_products(&all).await.unwrap();
    assert_eq!(total as usize, items.len());
    let ids: Vec<i64> = items.iter().map(|p| p.id).collect();
    let expected: Vec<i64> = (1..=ids.len() as i64).collect();
    assert_eq!(ids, expected, "one catalog, ids from 1 without gaps");
    assert_eq!(second.list_products(&all).await.unwrap().1, total);
    // A restart finds the catalog in place and adds nothing.
    first.close().await;
    second.close().await;
    let third = Store::open(&config, &telemetry).await.unwrap();
    assert_eq!(third.list_products(&all).await.unwrap().1, total);
    third.close().await;
}

async fn an_exhausted_pool_answers_503_db_pool_exhausted_within_the_acquire_timeout(db: Db) {
    const ACQUIRE_TIMEOUT: Duration = Duration::from_millis(300);
    let app = spawn_app_on(
        db,
        &[
            ("APP_DB_MAX_CONNECTIONS", "1"),
            ("APP_DB_ACQUIRE_TIMEOUT_MS", "300"),
        ],
    )
    .await;
    // Another session holds the users table: a sign-up waits for it while holding the pool's
    // only connection.
    let lock = UsersWriteLock::acquire(&app.database).await;
    let sign_up = tokio::spawn(
        app.client
            .post(app.url("/v1/users"))
            .json(&json!({"email": "waiting@example.com", "name": "Waiting"}))
            .send(),
    );

    let mut exhausted = None;
    for _ in 0..20 {
        let started = Instant::now();
        let response = app.get("/v1/products/1").await;
        let elapsed = started.elapsed();
        if response.status() == 503 {
            exhausted = Some((response.json::<Value>().await.unwrap(), elapsed));
            break;
        }
        assert_eq!(
            response.status(),
            200,
            "before the sign-up holds the connection"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (body, elapsed) = exhausted.expect("no 503 while the only connection was busy");
    assert_eq!(body["error"]["kind"], "unavailable", "{body}");
    assert_eq!(body["error"]["code"], "db.pool_exhausted", "{body}");
    assert!(
        elapsed >= ACQUIRE_TIMEOUT && elapsed < ACQUIRE_TIMEOUT + Duration::from_secs(1),
        "answered after {elapsed:?}, expected about the acquire timeout"
    );

    // Once the other session lets go, the waiting sign-up completes and the pool recovers.
    lock.release().await;
    let signed_up = sign_up.await.unwrap().unwrap();
    assert_eq!(signed_up.status(), 201);
    assert_eq!(app.get("/v1/products/1").await.status(), 200);
}
