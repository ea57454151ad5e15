//! Orders end to end over real HTTP, on SQLite and PostgreSQL, with the payment simulator
//! called over real HTTP: sign-up → browse → checkout → list orders; authorization; validation
//! naming fields; idempotent retries charging once; payment decline, failure and timeout
//! mapped to 402/502/504 with exactly one error observation each; the circuit breaker; and
//! parallel checkouts of a low-stock product that never oversell.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use crate::common::{
    Db, TestApp, TestDatabase, on_both_backends, spawn_app_on, spawn_app_with_faults,
};
use serde_json::{Value, json};
use shop::payments::simulator::{Faults, Latency};
use sqlx::{Connection, Executor};

on_both_backends!(
    sign_up_browse_checkout_and_list_orders,
    orders_of_other_users_do_not_exist_for_the_caller,
    orders_need_a_valid_token,
    invalid_checkouts_name_their_field_and_change_nothing,
    an_idempotent_retry_charges_once_and_replays_the_order,
    a_storm_of_parallel_retries_with_one_key_orders_and_charges_once,
    an_abandoned_pending_order_is_taken_over_by_a_retry_with_its_key,
    a_reused_key_with_other_items_is_a_conflict,
    a_declined_payment_answers_402_and_gives_the_stock_back,
    a_failing_provider_answers_502_after_bounded_retries_and_the_same_key_retries_the_order,
    a_provider_that_hangs_answers_504_within_the_deadline,
    an_answer_lost_to_the_timeout_is_recovered_by_a_retry_without_a_second_charge,
    a_dead_provider_opens_the_circuit_and_checkouts_fail_fast,
    parallel_checkouts_of_a_low_stock_product_never_oversell,
);

async fn checkout(
    app: &TestApp,
    token: &str,
    key: Option<&str>,
    items: Value,
) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url("/v1/orders"))
        .bearer_auth(token)
        .json(&json!({ "items": items }));
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    request.send().await.unwrap()
}

async fn get_as(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn stock_of(app: &TestApp, product_id: i64) -> i64 {
    let product: Value = app
        .get(&format!("/v1/products/{product_id}"))
        .await
        .json()
        .await
        .unwrap();
    product["stock"].as_i64().unwrap()
}

/// Asserts the error shape, status, kind and code; returns the body.
async fn expect_error(response: reqwest::Response, status: u16, kind: &str, code: &str) -> Value {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["kind"], kind, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    body
}

fn field_names(body: &Value) -> Vec<String> {
    body["error"]["fields"]
        .as_array()
        .map(|fields| {
            fields
                .iter()
                .map(|f| f["field"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The sum of the `/metrics` samples of `name` whose labels contain every one of `labels`.
async fn metric(app: &TestApp, name: &str, labels: &[&str]) -> f64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|line| labels.iter().all(|label| line.contains(label)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The access line and any other WARN/ERROR line of the request `request_id`.
fn lines_of(app: &TestApp, request_id: &str) -> Vec<Value> {
    app.log_lines()
        .into_iter()
        .filter(|line| line["request_id"] == request_id)
        .collect()
}

/// Exactly one error observation for the request answered by `response`: one WARN/ERROR line
/// (the access line, with `error.type`); returns that line.
fn single_error_line(app: &TestApp, request_id: &str, error_type: &str) -> Value {
    let lines = lines_of(app, request_id);
    let errors: Vec<&Value> = lines
        .iter()
        .filter(|line| line["level"] == "WARN" || line["level"] == "ERROR")
        .collect();
    assert_eq!(errors.len(), 1, "{lines:#?}");
    assert_eq!(errors[0]["target"], "access", "{:?}", errors[0]);
    assert_eq!(errors[0]["error.type"], error_type, "{:?}", errors[0]);
    errors[0].clone()
}

fn request_id(response: &reqwest::Response) -> String {
    response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned()
}

async fn sign_up_browse_checkout_and_list_orders(db: Db) {
    let app = spawn_app_on(db, &[]).await;
    let token = app.sign_up("buyer@example.com").await;

    let catalog: Value = app.get("/v1/products").await.json().await.unwrap();
    let first = &catalog["items"][0];
    let second = &catalog["items"][1];
    let (a, b) = (
        first["id"].as_i64().unwrap(),
        second["id"].as_i64().unwrap(),
    );
    let (stock_a, stock_b) = (stock_of(&app, a).await, stock_of(&app, b).await);

    let response = checkout(
        &app,
        &token,
        Some("checkout-1"),
        json!([{"product_id": b, "quantity": 1}, {"product_id": a, "quantity": 2}]),
    )
    .await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(response.headers().get("idempotent-replayed").is_none());
    let order: Value = response.json().await.unwrap();
    let id = order["id"].as_i64().unwrap();
    assert_eq!(location, format!("/v1/orders/{id}"));
    assert_eq!(order["status"], "paid");
    assert_eq!(order["currency"], "EUR");
    let expected_total =
        2 * first["price_cents"].as_i64().unwrap() + second["price_cents"].as_i64().unwrap();
    assert_eq!(order["total_cents"], expected_total);
    assert_eq!(
        order["items"],
        json!([
            {"product_id": a, "quantity": 2, "unit_price_cents": first["price_cents"]},
            {"product_id": b, "quantity": 1, "unit_price_cents": second["price_cents"]},
        ])
    );
    assert!(order.get("failure_reason").is_none(), "{order}");
    assert_eq!(stock_of(&app, a).await, stock_a - 2);
    assert_eq!(stock_of(&app, b).await, stock_b - 1);
    assert_eq!(app.payments.simulator.stats().approved, 1);

    let one: Value = get_as(&app, &token, &location).await.json().await.unwrap();
    assert_eq!(one, order);
    let second_order: Value = checkout(
        &app,
        &token,
        None,
        json!([{"product_id": a, "quantity": 1}]),
    )
    .await
    .json()
    .await
    .unwrap();
    let list: Value = get_as(&app, &token, "/v1/orders")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["total"], 2);
    assert_eq!(list["page"], 1);
    assert_eq!(list["items"][0], second_order, "newest first");
    assert_eq!(list["items"][1], order);
    let page_two: Value = get_as(&app, &token, "/v1/orders?per_page=1&page=2")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page_two["items"], json!([order]));
    assert_eq!(page_two["total"], 2);

    // The domain events: one log line each, and their metrics.
    let placed: Vec<Value> = app
        .log_lines()
        .into_iter()
        .filter(|line| line["event.name"] == "shop.order.placed")
        .collect();
    assert_eq!(placed.len(), 2, "{placed:?}");
    assert_eq!(placed[0]["shop.order.id"], id);
    assert_eq!(placed[0]["level"], "INFO");
    assert_eq!(metric(&app, "shop_orders_placed_total", &[]).await, 2.0);
    assert_eq!(
        metric(
            &app,
            "shop_payments_total",
            &["shop_payment_outcome=\"approved\""]
        )
        .await,
        2.0
    );
    assert_eq!(
        metric(
            &app,
            "shop_checkout_duration_seconds_count",
            &["shop_checkout_outcome=\"placed\""]
        )
        .await,
        2.0
    );
}

async fn orders_of_other_users_do_not_exist_for_the_caller(db: Db) {
    let app = spawn_app_on(db, &[]).await;
    let ann = app.sign_up("ann@example.com").await;
    let bob = app.sign_up("bob@example.com").await;
    let order: Value = checkout(&app, &ann, None, json!([{"product_id": 1, "quantity": 1}]))
        .await
        .json()
        .await
        .unwrap();
    let path = format!("/v1/orders/{}", order["id"]);
    assert_eq!(get_as(&app, &ann, &path).await.status(), 200);
    let theirs = get_as(&app, &bob, &path).await;
    expect_error(theirs, 404, "not_found", "order.not_found").await;
    let none = get_as(&app, &bob, "/v1/orders/999999").await;
    expect_error(none, 404, "not_found", "order.not_found").await;
    let list: Value = get_as(&app, &bob, "/v1/orders").await.json().await.unwrap();
    assert_eq!(list["items"], json!([]));
    assert_eq!(list["total"], 0);
    // Bob's key does not collide with Ann's order of the same key.
    let key = "shared-key";
    let ann_keyed = checkout(
        &app,
        &ann,
        Some(key),
        json!([{"product_id": 2, "quantity": 1}]),
    )
    .await;
    assert_eq!(ann_keyed.status(), 201);
    let bob_keyed = checkout(
        &app,
        &bob,
        Some(key),
        json!([{"product_id": 2, "quantity": 1}]),
    )
    .await;
    assert_eq!(bob_keyed.status(), 201);
    assert!(bob_keyed.headers().get("idempotent-replayed").is_none());
    // The payment simulator's admin endpoint lives on its own port only.
    for path in ["/admin/faults", "/admin/stats", "/v1/charges"] {
        let response = app.get(path).await;
        expect_error(response, 404, "not_found", "route.not_found").await;
    }
    let bad_id = get_as(&app, &ann, "/v1/orders/abc").await;
    let body = expect_error(bad_id, 422, "validation", "request.invalid_path").await;
    assert_eq!(field_names(&body), ["id"]);
}

async fn orders_need_a_valid_token(db: Db) {
    let app = spawn_app_on(db, &[]).await;
    for token in [None, Some("shop_not-a-real-token"), Some("garbage")] {
        let mut request = app
            .client
            .post(app.url("/v1/orders"))
            .json(&json!({"items": []}));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        expect_error(response, 401, "unauthenticated", "auth.token_invalid").await;
        let mut list = app.client.get(app.url("/v1/orders"));
        if let Some(token) = token {
            list = list.bearer_auth(token);
        }
        expect_error(
            list.send().await.unwrap(),
            401,
            "unauthenticated",
            "auth.token_invalid",
        )
        .await;
    }
    assert_eq!(app.payments.simulator.stats().charges, 0);
}

async fn invalid_checkouts_name_their_field_and_change_nothing(db: Db) {
    let app = spawn_app_on(db, &[]).await;
    let token = app.sign_up("buyer@example.com").await;
    let before = stock_of(&app, 1).await;

    let cases = [
        (json!({}), vec!["items"]),
        (json!({"items": []}), vec!["items"]),
        (
            json!({"items": [{"product_id": 1, "quantity": 0}, {"product_id": -2, "quantity": 1}]}),
            vec!["items[0].quantity", "items[1].product_id"],
        ),
        (
            json!({"items": [{"product_id": 1, "quantity": 1}, {"product_id": 1, "quantity": 2}]}),
            vec!["items[1].product_id"],
        ),
    ];
    for (body, fields) in cases {
        let response = app
            .client
            .post(app.url("/v1/orders"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let error = expect_error(response, 422, "validation", "order.invalid_items").await;
        assert_eq!(field_names(&error), fields, "{body}");
    }

    let unknown = checkout(
        &app,
        &token,
        None,
        json!([{"product_id": 1, "quantity": 1}, {"product_id": 424242, "quantity": 1}]),
    )
    .await;
    let error = expect_error(unknown, 422, "validation", "order.unknown_product").await;
    assert_eq!(field_names(&error), ["items[1].product_id"]);

    let too_many = checkout(
        &app,
        &token,
        None,
        json!([{"product_id": 2, "quantity": 1}, {"product_id": 1, "quantity": before + 1}]),
    )
    .await;
    // Quantities above 100 are invalid input; the seed stock of product 1 is above 100.
    if before + 1 > 100 {
        expect_error(too_many, 422, "validation", "order.invalid_items").await;
    } else {
        expect_error(too_many, 409, "conflict", "order.out_of_stock").await;
    }

    let malformed = app
        .client
        .post(app.url("/v1/orders"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"items\": [")
        .send()
        .await
        .unwrap();
    expect_error(malformed, 400, "validation", "request.malformed_json").await;

    let bad_key = checkout(
        &app,
        &token,
        Some("has spaces in it"),
        json!([{"product_id": 1, "quantity": 1}]),
    )
    .await;
    let error = expect_error(bad_key, 422, "validation", "request.invalid_header").await;
    assert_eq!(field_names(&error), ["Idempotency-Key"]);

    assert_eq!(stock_of(&app, 1).await, before, "nothing was reserved");
    assert_eq!(stock_of(&app, 2).await, stock_of(&app, 2).await);
    assert_eq!(
        app.payments.simulator.stats().charges,
        0,
        "nothing was charged"
    );
    let list: Value = get_as(&app, &token, "/v1/orders")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["total"], 0);
}

/// Sets the stock of `product_id` directly in the database.
async fn set_stock(database: &TestDatabase, product_id: i64, stock: i64) {
    execute(
        database,
        format!("UPDATE products SET stock = {stock} WHERE id = {product_id}"),
    )
    .await;
}

/// Runs `statement` on the database directly (another session than the shop's).
async fn execute(database: &TestDatabase, statement: String) {
    match database {
        TestDatabase::Sqlite(_) => {
            let mut connection = sqlx::SqliteConnection::connect(&database.url())
                .await
                .unwrap();
            connection
                .execute(sqlx::raw_sql(sqlx::AssertSqlSafe(statement)))
                .await
                .unwrap();
            connection.close().await.unwrap();
        }
        TestDatabase::Postgres(_) => {
            let mut connection = sqlx::PgConnection::connect(&database.url()).await.unwrap();
            connection
                .execute(sqlx::raw_sql(sqlx::AssertSqlSafe(statement)))
                .await
                .unwrap();
            connection.close().await.unwrap();
        }
    }
}

async fn an_idempotent_retry_charges_once_and_replays_the_order(db: Db) {
    let app = spawn_app_on(db, &[]).await;
    let token = app.sign_up("buyer@example.com").await;
    let before = stock_of(&app, 3).await;
    let items = json!([{"product_id": 3, "quantity": 2}]);
    let first = checkout(&app, &token, Some("retry-me"), items.clone()).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();

    // The stock of the product runs out meanwhile: a replay does not depend on it.
    set_stock(&app.database, 3, 0).await;
    let again = checkout(&app, &token, Some("retry-me"), items).await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again, first);

    let stats = app.payments.simulator.stats();
    assert_eq!(stats.charges, 1, "{stats:?}");
    let list: Value = get_as(&app, &token, "/v1/orders")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["total"], 1);
    set_stock(&app.database, 3, before - 2).await;
    assert_eq!(metric(&app, "shop_orders_placed_total", &[]).await, 1.0);
}

async fn a_storm_of_parallel_retries_with_one_key_orders_and_charges_once(db: Db) {
    // A client retrying impatiently: the same checkout 12 times at once. The provider is a
    // little slow, so most duplicates arrive while the first is still paying.
    let slow = Faults {
        latency_ms: Latency::constant(50),
        ..Faults::default()
    };
    let app = spawn_app_with_faults(db, slow, &[("APP_DB_MAX_CONNECTIONS", "10")]).await;
    let token = app.sign_up("buyer@example.com").await;
    let before = stock_of(&app, 10).await;
    let attempts = (0..12).map(|_| {
        let (app, token) = (&app, &token);
        async move {
            let response = checkout(
                app,
                token,
                Some("storm-1"),
                json!([{"product_id": 10, "quantity": 1}]),
            )
            .await;
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap();
            (status, body)
        }
    });
    let answers = futures_util::future::join_all(attempts).await;
    let mut ids = std::collections::BTreeSet::new();
    for (status, body) in &answers {
        match status {
            201 => {
                ids.insert(body["id"].as_i64().unwrap());
            }
            409 => assert_eq!(body["error"]["code"], "idempotency.in_progress", "{body}"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(ids.len(), 1, "one order for one key: {answers:?}");
    assert_eq!(app.payments.simulator.stats().charges, 1);
    assert_eq!(stock_of(&app, 10).await, before - 1);
    let list: Value = get_as(&app, &token, "/v1/orders")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["total"], 1);
}

async fn an_abandoned_pending_order_is_taken_over_by_a_retry_with_its_key(db: Db) {
    // A checkout whose request died after reserving (the state a crash leaves): produced by a
    // checkout that timed out, put back to `pending` with its stock reserved again.
    let faults = Faults {
        hang_rate: 1.0,
        ..Faults::default()
    };
    let app = spawn_app_with_faults(
        db,
        faults,
        &[
            ("PAYMENTS_TIMEOUT_MS", "100"),
            ("PAYMENTS_MAX_ATTEMPTS", "1"),
        ],
    )
    .await;
    let token = app.sign_up("buyer@example.com").await;
    let before = stock_of(&app, 8).await;
    let items = json!([{"product_id": 8, "quantity": 2}]);
    let first = checkout(&app, &token, Some("crash-1"), items.clone()).await;
    assert_eq!(first.status(), 504);
    let order: Value = get_as(&app, &token, "/v1/orders")
        .await
        .json()
        .await
        .unwrap();
    let order_id = order["items"][0]["id"].as_i64().unwrap();
    let reserved_just_now = i64::MAX / 2;
    execute(
        &app.database,
        format!(
            "UPDATE orders SET status = 'pending', failure_reason = NULL, \
             reserved_at_ms = {reserved_just_now} WHERE id = {order_id}"
        ),
    )
    .await;
    set_stock(&app.database, 8, before - 2).await;
    app.payments
        .simulator
        .set_faults(Faults::default())
        .unwrap();

    // Still within the time a checkout can take: another request may be settling it.
    let busy = checkout(&app, &token, Some("crash-1"), items.clone()).await;
    expect_error(busy, 409, "conflict", "idempotency.in_progress").await;

    // Long abandoned: the retry takes the order over, pays it once, and keeps its reservation.
    execute(
        &app.database,
        format!("UPDATE orders SET reserved_at_ms = 0 WHERE id = {order_id}"),
    )
    .await;
    let resumed = checkout(&app, &token, Some("crash-1"), items.clone()).await;
    assert_eq!(resumed.status(), 201);
    let resumed: Value = resumed.json().await.unwrap();
    assert_eq!(resumed["id"], order_id);
    assert_eq!(resumed["status"], "paid");
    assert_eq!(stock_of(&app, 8).await, before - 2);
    assert_eq!(app.payments.simulator.stats().charges, 1);
    let taken: Vec<Value> = app
        .log_lines()
        .into_iter()
        .filter(|line| line["event.name"] == "shop.order.taken_over")
        .collect();
    assert_eq!(taken.len(), 1, "{taken:?}");
    assert_eq!(taken[0]["shop.order.id"], order_id);
    assert_eq!(metric(&app, "shop_orders_taken_over_total", &[]).await, 1.0);

    // Settled: later retries replay it.
    let replay = checkout(&app, &token, Some("crash-1"), items).await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(app.payments.simulator.stats().charges, 1);
}

async fn a_reused_key_with_other_items_is_a_conflict(db: Db) {
    let app = spawn_app_on(db, &[]).await;
    let token = app.sign_up("buyer@example.com").await;
    let first = checkout(
        &app,
        &token,
        Some("k1"),
        json!([{"product_id": 1, "quantity": 1}]),
    )
    .await;
    assert_eq!(first.status(), 201);
    let before = stock_of(&app, 1).await;
    let other = checkout(
        &app,
        &token,
        Some("k1"),
        json!([{"product_id": 1, "quantity": 3}]),
    )
    .await;
    let rid = request_id(&other);
    let body = expect_error(other, 409, "conflict", "idempotency.key_reused").await;
    assert_eq!(field_names(&body), ["Idempotency-Key"]);
    assert_eq!(stock_of(&app, 1).await, before);
    assert_eq!(app.payments.simulator.stats().charges, 1);
    single_error_line(&app, &rid, "conflict");
}

async fn a_declined_payment_answers_402_and_gives_the_stock_back(db: Db) {
    let faults = Faults {
        decline_rate: 1.0,
        ..Faults::default()
    };
    let app = spawn_app_with_faults(db, faults, &[]).await;
    let token = app.sign_up("buyer@example.com").await;
    let before = stock_of(&app, 4).await;
    let items = json!([{"product_id": 4, "quantity": 3}]);
    let declined_errors = "error_type=\"payment_declined\"";
    assert_eq!(
        metric(&app, "app_errors_total", &[declined_errors]).await,
        0.0
    );
    let response = checkout(&app, &token, Some("declined-1"), items.clone()).await;
    let rid = request_id(&response);
    expect_error(response, 402, "payment_declined", "payment.declined").await;
    assert_eq!(
        metric(
            &app,
            "app_errors_total",
            &[declined_errors, "http_route=\"/v1/orders\""]
        )
        .await,
        1.0,
        "one error observation"
    );
    assert_eq!(
        stock_of(&app, 4).await,
        before,
        "the reservation was given back"
    );
    let access = single_error_line(&app, &rid, "payment_declined");
    assert_eq!(access["status"], 402);
    assert_eq!(access["error.code"], "payment.declined");

    let list: Value = get_as(&app, &token, "/v1/orders")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"][0]["status"], "failed");
    assert_eq!(list["items"][0]["failure_reason"], "declined");

    // A retry with the same key replays the decline; it does not charge again.
    let again = checkout(&app, &token, Some("declined-1"), items).await;
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    expect_error(again, 402, "payment_declined", "payment.declined").await;
    let stats = app.payments.simulator.stats();
    assert_eq!((stats.charges, stats.declined), (1, 1), "{stats:?}");

    assert_eq!(
        metric(
            &app,
            "shop_orders_failed_total",
            &["shop_order_failure_reason=\"payment_declined\""]
        )
        .await,
        1.0
    );
    assert_eq!(
        metric(
            &app,
            "shop_payments_total",
            &["shop_payment_outcome=\"declined\""]
        )
        .await,
        1.0
    );
    let failed: Vec<Value> = lines_of(&app, &rid)
        .into_iter()
        .filter(|line| line["event.name"] == "shop.order.failed")
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["shop.order.failure_reason"], "payment_declined");
    assert_eq!(failed[0]["level"], "INFO");
    // A decline is a business answer: INFO, and named as what it is (never "payment settled").
    let payment = payment_line(&app, &rid);
    assert_eq!(payment["level"], "INFO", "{payment}");
    assert_eq!(payment["message"], "payment declined", "{payment}");
    assert_eq!(payment["shop.payment.outcome"], "declined", "{payment}");
}

/// The one `shop.payment.settled` line of request `rid`.
fn payment_line(app: &TestApp, rid: &str) -> Value {
    let lines: Vec<Value> = lines_of(app, rid)
        .into_iter()
        .filter(|line| line["event.name"] == "shop.payment.settled")
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    lines.into_iter().next().unwrap()
}

async fn a_failing_provider_answers_502_after_bounded_retries_and_the_same_key_retries_the_order(
    db: Db,
) {
    let faults = Faults {
        error_rate: 1.0,
        ..Faults::default()
    };
    let app = spawn_app_with_faults(db, faults, &[("PAYMENTS_BREAKER_THRESHOLD", "100")]).await;
    let token = app.sign_up("buyer@example.com").await;
    let before = stock_of(&app, 5).await;
    let items = json!([{"product_id": 5, "quantity": 1}]);
    let errors_before = metric(&app, "app_errors_total", &["error_type=\"unavailable\""]).await;

    let response = checkout(&app, &token, Some("flaky-1"), items.clone()).await;
    let rid = request_id(&response);
    expect_error(response, 502, "unavailable", "payment.unavailable").await;
    let stats = app.payments.simulator.stats();
    assert_eq!(stats.errors_injected, 3, "3 attempts in all: {stats:?}");
    assert_eq!(stats.charges, 0);
    assert_eq!(stock_of(&app, 5).await, before);
    let access = single_error_line(&app, &rid, "unavailable");
    assert_eq!(access["level"], "ERROR");
    assert_eq!(access["error.code"], "payment.unavailable");
    // Says what happened, at INFO: the access line above is the one error observation.
    let payment = payment_line(&app, &rid);
    assert_eq!(payment["level"], "INFO", "{payment}");
    assert_eq!(
        payment["message"], "payment failed: the provider is unavailable",
        "{payment}"
    );
    assert_eq!(payment["shop.payment.attempts"], 3, "{payment}");
    assert_eq!(
        metric(&app, "app_errors_total", &["error_type=\"unavailable\""]).await - errors_before,
        1.0,
        "one error observation"
    );
    let failed: Value = get_as(&app, &token, "/v1/orders")
        .await
        .json()
        .await
        .unwrap();
    let order_id = failed["items"][0]["id"].clone();
    assert_eq!(failed["items"][0]["failure_reason"], "unavailable");

    // The provider recovers; the client retries with the same key: the same order is paid.
    app.payments
        .simulator
        .set_faults(Faults::default())
        .unwrap();
    let retried = checkout(&app, &token, Some("flaky-1"), items).await;
    assert_eq!(retried.status(), 201);
    let retried: Value = retried.json().await.unwrap();
    assert_eq!(retried["id"], order_id);
    assert_eq!(retried["status"], "paid");
    assert_eq!(stock_of(&app, 5).await, before - 1);
    let list: Value = get_as(&app, &token, "/v1/orders")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["total"], 1);
    assert_eq!(app.payments.simulator.stats().charges, 1);
    assert_eq!(
        metric(
            &app,
            "shop_payments_total",
            &["shop_payment_outcome=\"unavailable\""]
        )
        .await,
        1.0
    );
}

async fn a_provider_that_hangs_answers_504_within_the_deadline(db: Db) {
    let faults = Faults {
        hang_rate: 1.0,
        ..Faults::default()
    };
    let app = spawn_app_with_faults(
        db,
        faults,
        &[
            ("PAYMENTS_TIMEOUT_MS", "200"),
            ("PAYMENTS_MAX_ATTEMPTS", "2"),
        ],
    )
    .await;
    let token = app.sign_up("buyer@example.com").await;
    let before = stock_of(&app, 6).await;
    let started = Instant::now();
    let response = checkout(
        &app,
        &token,
        None,
        json!([{"product_id": 6, "quantity": 1}]),
    )
    .await;
    let elapsed = started.elapsed();
    let rid = request_id(&response);
    expect_error(response, 504, "timeout", "payment.timeout").await;
    assert_eq!(
        metric(&app, "app_errors_total", &["error_type=\"timeout\""]).await,
        1.0,
        "one error observation"
    );
    // Two attempts of 200 ms and one backoff (≤ 100 ms), with slack for a loaded machine.
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert_eq!(app.payments.simulator.stats().hangs, 2);
    assert_eq!(stock_of(&app, 6).await, before);
    let access = single_error_line(&app, &rid, "timeout");
    assert_eq!(access["status"], 504);
    assert_eq!(
        metric(
            &app,
            "shop_orders_failed_total",
            &["shop_order_failure_reason=\"payment_timeout\""]
        )
        .await,
        1.0
    );
}

async fn an_answer_lost_to_the_timeout_is_recovered_by_a_retry_without_a_second_charge(db: Db) {
    // The provider records the charge, then answers after the deadline, on every attempt: the
    // shop answers 504 although the customer was charged.
    let slow = Faults {
        latency_ms: Latency::constant(400),
        ..Faults::default()
    };
    let app = spawn_app_with_faults(
        db,
        slow,
        &[
            ("PAYMENTS_TIMEOUT_MS", "150"),
            ("PAYMENTS_MAX_ATTEMPTS", "2"),
        ],
    )
    .await;
    let token = app.sign_up("buyer@example.com").await;
    let before = stock_of(&app, 9).await;
    let items = json!([{"product_id": 9, "quantity": 1}]);
    let lost = checkout(&app, &token, Some("lost-1"), items.clone()).await;
    expect_error(lost, 504, "timeout", "payment.timeout").await;
    let stats = app.payments.simulator.stats();
    assert_eq!(stats.charges, 1, "charged, answer lost: {stats:?}");
    assert_eq!(
        stock_of(&app, 9).await,
        before,
        "the failed order gave its stock back"
    );

    // The client retries with the same key once the provider is fast again: the same order
    // gets the recorded charge back (the order's own provider key), never a second one.
    app.payments
        .simulator
        .set_faults(Faults::default())
        .unwrap();
    let recovered = checkout(&app, &token, Some("lost-1"), items).await;
    assert_eq!(recovered.status(), 201);
    let recovered: Value = recovered.json().await.unwrap();
    assert_eq!(recovered["status"], "paid");
    let stats = app.payments.simulator.stats();
    assert_eq!(stats.charges, 1, "{stats:?}");
    assert!(stats.replayed >= 1, "{stats:?}");
    assert_eq!(stock_of(&app, 9).await, before - 1);
    let list: Value = get_as(&app, &token, "/v1/orders")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["total"], 1);
}

async fn a_dead_provider_opens_the_circuit_and_checkouts_fail_fast(db: Db) {
    let faults = Faults {
        error_rate: 1.0,
        ..Faults::default()
    };
    let app = spawn_app_with_faults(
        db,
        faults,
        &[
            ("PAYMENTS_MAX_ATTEMPTS", "1"),
            ("PAYMENTS_BREAKER_THRESHOLD", "2"),
            ("PAYMENTS_BREAKER_COOLDOWN_MS", "60000"),
        ],
    )
    .await;
    let token = app.sign_up("buyer@example.com").await;
    for _ in 0..2 {
        let response = checkout(
            &app,
            &token,
            None,
            json!([{"product_id": 1, "quantity": 1}]),
        )
        .await;
        expect_error(response, 502, "unavailable", "payment.unavailable").await;
    }
    assert_eq!(app.payments.simulator.stats().errors_injected, 2);
    let opened: Vec<Value> = app
        .log_lines()
        .into_iter()
        .filter(|line| line["event.name"] == "shop.payment.circuit_opened")
        .collect();
    assert_eq!(opened.len(), 1, "{opened:?}");
    assert_eq!(opened[0]["level"], "WARN");

    let started = Instant::now();
    let response = checkout(
        &app,
        &token,
        None,
        json!([{"product_id": 1, "quantity": 1}]),
    )
    .await;
    expect_error(response, 502, "unavailable", "payment.circuit_open").await;
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(
        app.payments.simulator.stats().errors_injected,
        2,
        "the open circuit did not call the provider"
    );
    assert_eq!(
        metric(&app, "shop_payment_circuit_opened_total", &[]).await,
        1.0
    );
    assert_eq!(
        metric(
            &app,
            "shop_payments_total",
            &["shop_payment_outcome=\"circuit_open\""]
        )
        .await,
        1.0
    );
}

async fn parallel_checkouts_of_a_low_stock_product_never_oversell(db: Db) {
    let latency = Faults {
        latency_ms: Latency { p50: 5, p99: 30 },
        ..Faults::default()
    };
    let app = spawn_app_with_faults(db, latency, &[("APP_DB_MAX_CONNECTIONS", "10")]).await;
    const STOCK: i64 = 5;
    const BUYERS: usize = 24;
    set_stock(&app.database, 7, STOCK).await;
    let mut tokens = Vec::new();
    for i in 0..BUYERS {
        tokens.push(app.sign_up(&format!("buyer{i}@example.com")).await);
    }
    let requests = tokens.iter().map(|token| {
        let app = &app;
        async move {
            checkout(app, token, None, json!([{"product_id": 7, "quantity": 1}]))
                .await
                .status()
                .as_u16()
        }
    });
    let statuses = futures_util::future::join_all(requests).await;
    let placed = statuses.iter().filter(|&&s| s == 201).count();
    let sold_out = statuses.iter().filter(|&&s| s == 409).count();
    assert_eq!(placed, STOCK as usize, "{statuses:?}");
    assert_eq!(sold_out, BUYERS - STOCK as usize, "{statuses:?}");
    assert_eq!(stock_of(&app, 7).await, 0);
    assert_eq!(app.payments.simulator.stats().approved, STOCK as u64);
    assert_eq!(
        metric(
            &app,
            "shop_orders_failed_total",
            &["shop_order_failure_reason=\"out_of_stock\""]
        )
        .await,
        (BUYERS - STOCK as usize) as f64
    );
}

/// One checkout is one trace across two services, read from the captured OTLP:
/// SERVER `POST /v1/orders` (shop) → DB CLIENT spans of the reservation → payment CLIENT
/// `POST` → SERVER `POST /v1/charges` (payments-sim), and the order settled after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_is_one_trace_across_shop_database_and_payment_provider() {
    let app = spawn_app_on(Db::Sqlite, &[]).await;
    let token = app.sign_up("tracer@example.com").await;
    let response = checkout(
        &app,
        &token,
        None,
        json!([{"product_id": 2, "quantity": 1}]),
    )
    .await;
    assert_eq!(response.status(), 201);
    let traceparent = response.headers()["traceparent"]
        .to_str()
        .unwrap()
        .to_owned();
    let trace_id = traceparent.split('-').nth(1).unwrap().to_owned();

    let receiver = app.receiver.clone();
    let found = receiver
        .wait_for_spans(Duration::from_secs(10), |spans| {
            spans
                .iter()
                .any(|s| s.trace_id == trace_id && s.name == "POST /v1/charges")
                && spans
                    .iter()
                    .any(|s| s.trace_id == trace_id && s.name == "POST /v1/orders")
        })
        .await;
    assert!(found, "{}", receiver.dump_all());
    let spans: Vec<_> = receiver
        .spans()
        .into_iter()
        .filter(|s| s.trace_id == trace_id)
        .collect();
    let service = |s: &telemetry::testkit::CapturedSpan| {
        s.resource
            .get("service.name")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_owned()
    };
    let server = spans.iter().find(|s| s.name == "POST /v1/orders").unwrap();
    assert_eq!(server.kind, telemetry::testkit::SpanKind::Server);
    assert_eq!(service(server), "shop");
    assert_eq!(server.str_attr("http.route"), Some("/v1/orders"));

    let children: Vec<_> = spans
        .iter()
        .filter(|s| s.parent_span_id == server.span_id)
        .collect();
    let db: Vec<&str> = children
        .iter()
        .filter(|s| s.attr("db.system.name").is_some())
        .map(|s| s.name.as_str())
        .collect();
    for statement in [
        "BEGIN",
        "UPDATE products",
        "INSERT orders",
        "INSERT order_items",
        "COMMIT",
        "UPDATE orders",
    ] {
        assert!(
            db.contains(&statement),
            "no {statement} span under the checkout: {db:?}"
        );
    }
    assert!(
        children
            .iter()
            .filter(|s| s.attr("db.system.name").is_some())
            .all(|s| s.kind == telemetry::testkit::SpanKind::Client
                && s.str_attr("db.system.name") == Some("sqlite"))
    );
    let payment = children
        .iter()
        .find(|s| s.kind == telemetry::testkit::SpanKind::Client && s.name == "POST")
        .expect("a payment CLIENT span under the checkout");
    assert_eq!(service(payment), "shop");
    assert!(
        payment
            .str_attr("url.full")
            .is_some_and(|url| url.ends_with("/v1/charges")),
        "{payment:?}"
    );
    assert_eq!(
        payment
            .attr("http.response.status_code")
            .and_then(|v| v.as_i64()),
        Some(201)
    );
    let provider = spans.iter().find(|s| s.name == "POST /v1/charges").unwrap();
    assert_eq!(provider.kind, telemetry::testkit::SpanKind::Server);
    assert_eq!(service(provider), "payments-sim");
    assert_eq!(
        provider.parent_span_id, payment.span_id,
        "the provider continues the CLIENT span"
    );
    // Ordering: reservation committed before the charge, the order settled after it.
    let commit = children.iter().find(|s| s.name == "COMMIT").unwrap();
    let settle = children.iter().find(|s| s.name == "UPDATE orders").unwrap();
    assert!(commit.end_unix_nanos <= payment.start_unix_nanos);
    assert!(payment.end_unix_nanos <= settle.start_unix_nanos);
}
