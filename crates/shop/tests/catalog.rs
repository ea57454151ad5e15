//! The catalog API: paging, validation and not-found answers, in the design's JSON shape, on
//! SQLite and PostgreSQL.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Db, on_both_backends, spawn_app_on};
use serde_json::Value;

on_both_backends!(
    product_listing_is_paged_and_reports_the_total,
    listing_defaults_to_twenty_items_on_page_one,
    per_page_zero_is_rejected_with_422_naming_per_page,
    non_numeric_page_is_rejected_with_422_naming_page,
    malformed_query_encoding_is_answered_with_the_json_error,
    known_product_is_returned_with_its_stock,
    unknown_product_answers_404_product_not_found,
    non_positive_or_non_numeric_product_id_is_rejected_naming_id,
    a_failed_request_is_observed_once_in_the_access_log,
);

async fn json(response: reqwest::Response) -> Value {
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json"),
        "every answer is JSON"
    );
    response.json().await.unwrap()
}

fn assert_validation_error_naming(body: &Value, field: &str) {
    assert_eq!(body["error"]["kind"], "validation", "{body}");
    assert_eq!(body["error"]["code"], "request.invalid_query", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    let fields = body["error"]["fields"].as_array().unwrap();
    assert_eq!(fields.len(), 1, "{body}");
    assert_eq!(fields[0]["field"], field, "{body}");
    assert!(
        fields[0]["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

async fn product_listing_is_paged_and_reports_the_total(db: Db) {
    let app = spawn_app_on(db, &[]).await;

    let first = app.get("/v1/products?per_page=5").await;
    assert_eq!(first.status(), 200);
    let first = json(first).await;
    assert_eq!(first["page"], 1);
    assert_eq!(first["per_page"], 5);
    let total = first["total"].as_u64().unwrap();
    assert!(total >= 24, "a few dozen products are seeded, got {total}");
    let items = first["items"].as_array().unwrap();
    assert_eq!(items.len(), 5);
    assert_eq!(items[0]["id"], 1);
    for key in [
        "id",
        "sku",
        "name",
        "description",
        "category",
        "price_cents",
        "stock",
    ] {
        assert!(
            items[0].get(key).is_some(),
            "product has {key}: {}",
            items[0]
        );
    }

    let second = json(app.get("/v1/products?page=2&per_page=5").await).await;
    assert_eq!(second["page"], 2);
    assert_eq!(second["total"], total);
    assert_eq!(
        second["items"][0]["id"], 6,
        "page 2 continues where page 1 stopped"
    );

    let last_page = total.div_ceil(5);
    let last = json(
        app.get(&format!("/v1/products?page={last_page}&per_page=5"))
            .await,
    )
    .await;
    let expected_on_last = total - (last_page - 1) * 5;
    assert_eq!(
        last["items"].as_array().unwrap().len() as u64,
        expected_on_last
    );

    let beyond = json(
        app.get(&format!("/v1/products?page={}&per_page=5", last_page + 1))
            .await,
    )
    .await;
    assert_eq!(beyond["items"].as_array().unwrap().len(), 0);
    assert_eq!(beyond["total"], total);
}

async fn listing_defaults_to_twenty_items_on_page_one(db: Db) {
    let app = spawn_app_on(db, &[]).await;
    let body = json(app.get("/v1/products").await).await;
    assert_eq!(body["page"], 1);
    assert_eq!(body["per_page"], 20);
    assert_eq!(body["items"].as_array().unwrap().len(), 20);
}

async fn per_page_zero_is_rejected_with_422_naming_per_page(db: Db) {
    let app = spawn_app_on(db, &[]).await;
    let response = app.get("/v1/products?per_page=0").await;
    assert_eq!(response.status(), 422);
    assert_validation_error_naming(&json(response).await, "per_page");
}

async fn non_numeric_page_is_rejected_with_422_naming_page(db: Db) {
    let app = spawn_app_on(db, &[]).await;
    let response = app.get("/v1/products?page=abc").await;
    assert_eq!(response.status(), 422);
    assert_validation_error_naming(&json(response).await, "page");
}

async fn malformed_query_encoding_is_answered_with_the_json_error(db: Db) {
    let app = spawn_app_on(db, &[]).await;
    let response = app.get("/v1/products?page=%FF%FE").await;
    assert_eq!(response.status(), 422);
    let body = json(response).await;
    assert_eq!(body["error"]["kind"], "validation", "{body}");
}

async fn known_product_is_returned_with_its_stock(db: Db) {
    let app = spawn_app_on(db, &[]).await;
    let response = app.get("/v1/products/3").await;
    assert_eq!(response.status(), 200);
    let product = json(response).await;
    assert_eq!(product["id"], 3);
    assert!(product["stock"].is_i64());
    assert!(product["price_cents"].is_i64());
}

async fn unknown_product_answers_404_product_not_found(db: Db) {
    let app = spawn_app_on(db, &[]).await;
    let response = app.get("/v1/products/999999").await;
    assert_eq!(response.status(), 404);
    let body = json(response).await;
    assert_eq!(body["error"]["kind"], "not_found", "{body}");
    assert_eq!(body["error"]["code"], "product.not_found", "{body}");
    assert!(body["error"].get("fields").is_none(), "{body}");
}

async fn non_positive_or_non_numeric_product_id_is_rejected_naming_id(db: Db) {
    let app = spawn_app_on(db, &[]).await;
    for id in ["0", "-4", "abc", "1.5", "99999999999999999999"] {
        let response = app.get(&format!("/v1/products/{id}")).await;
        assert_eq!(response.status(), 422, "{id}");
        let body = json(response).await;
        assert_eq!(body["error"]["code"], "request.invalid_path", "{body}");
        assert_eq!(body["error"]["fields"][0]["field"], "id", "{body}");
    }
}

async fn a_failed_request_is_observed_once_in_the_access_log(db: Db) {
    let app = spawn_app_on(db, &[]).await;
    app.get("/v1/products/999999").await;
    let access: Vec<Value> = app
        .log_lines()
        .into_iter()
        .filter(|line| line["target"] == "access")
        .collect();
    assert_eq!(access.len(), 1, "{access:?}");
    assert_eq!(access[0]["level"], "WARN");
    assert_eq!(access[0]["route"], "/v1/products/{id}");
    assert_eq!(access[0]["error.type"], "not_found");
    assert_eq!(access[0]["error.code"], "product.not_found");
    let errors = app
        .telemetry
        .log_sink()
        .captured()
        .matches("\"level\":\"ERROR\"")
        .count();
    assert_eq!(errors, 0, "handlers never log errors");
}
