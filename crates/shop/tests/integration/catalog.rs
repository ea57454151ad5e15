//! The catalog API: paging, filtering by category, sorting, validation and not-found answers,
//! in the design's JSON shape, on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used)]

use crate::common::{Db, TestApp, TestDatabase, on_both_backends, spawn_app_on};
use serde_json::Value;
use sqlx::{Connection, Executor, PgConnection, SqliteConnection};

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
    category_filter_returns_only_that_category_and_counts_it,
    a_filtered_set_is_paged_by_its_own_total,
    unknown_category_answers_an_empty_page_with_total_zero,
    invalid_category_is_rejected_with_422_naming_category,
    invalid_sort_is_rejected_with_422_naming_sort,
    every_invalid_parameter_is_named_in_one_answer,
    sorting_by_price_breaks_ties_by_id_in_both_directions,
    sorting_by_name_uses_code_point_order_and_breaks_ties_by_id,
    paging_a_sorted_filtered_set_neither_repeats_nor_skips,
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

/// Adds products straight into the database (SQL with literal values, valid on both backends).
async fn insert_products(database: &TestDatabase, values: &[(&str, &str, &str, i64)]) {
    let rows: Vec<String> = values
        .iter()
        .map(|(sku, name, category, price)| {
            format!("('{sku}', '{name}', 'test product', '{category}', {price}, 1)")
        })
        .collect();
    let statement = format!(
        "INSERT INTO products (sku, name, description, category, price_cents, stock) VALUES {}",
        rows.join(", ")
    );
    let statement = sqlx::AssertSqlSafe(statement);
    match database {
        TestDatabase::Sqlite(_) => {
            let mut connection = SqliteConnection::connect(&database.url()).await.unwrap();
            connection.execute(sqlx::raw_sql(statement)).await.unwrap();
            connection.close().await.unwrap();
        }
        TestDatabase::Postgres(_) => {
            let mut connection = PgConnection::connect(&database.url()).await.unwrap();
            connection.execute(sqlx::raw_sql(statement)).await.unwrap();
            connection.close().await.unwrap();
        }
    }
}

/// The listing at `query` (200 expected).
async fn listing(app: &TestApp, query: &str) -> Value {
    let response = app.get(&format!("/v1/products?{query}")).await;
    assert_eq!(response.status(), 200, "{query}");
    json(response).await
}

fn items(body: &Value) -> &Vec<Value> {
    body["items"].as_array().unwrap()
}

fn ids(body: &Value) -> Vec<i64> {
    items(body)
        .iter()
        .map(|item| item["id"].as_i64().unwrap())
        .collect()
}

/// Every product, in id order (the catalog holds fewer than 100).
async fn all_products(app: &TestApp) -> Vec<Value> {
    let body = listing(app, "per_page=100").await;
    assert!(body["total"].as_u64().unwrap() < 100);
    items(&body).clone()
}

async fn category_filter_returns_only_that_category_and_counts_it(db: Db) {
    let app = spawn_app_on(db, &[]).await;
    let expected: Vec<i64> = all_products(&app)
        .await
        .iter()
        .filter(|p| p["category"] == "tea")
        .map(|p| p["id"].as_i64().unwrap())
        .collect();
    assert!(expected.len() >= 2, "the seed has tea");

    let body = listing(&app, "category=tea&per_page=100").await;
    assert_eq!(
        body["total"],
        expected.len() as u64,
        "total counts the filtered set"
    );
    assert_eq!(ids(&body), expected, "only tea, in id order");
    assert!(items(&body).iter().all(|p| p["category"] == "tea"));
}

async fn a_filtered_set_is_paged_by_its_own_total(db: Db) {
    let app = spawn_app_on(db, &[]).await;
    let all_tea = ids(&listing(&app, "category=tea&per_page=100").await);
    let total = all_tea.len();
    assert!(total > 4, "the seed has more than one page of 4 teas");

    let first = listing(&app, "category=tea&per_page=4").await;
    let second = listing(&app, "category=tea&per_page=4&page=2").await;
    let beyond = listing(&app, "category=tea&per_page=4&page=3").await;
    for page in [&first, &second, &beyond] {
        assert_eq!(page["total"], total as u64);
        assert_eq!(page["per_page"], 4);
    }
    assert_eq!(ids(&first), all_tea[..4]);
    assert_eq!(ids(&second), all_tea[4..]);
    assert!(items(&beyond).is_empty());
}

async fn unknown_category_answers_an_empty_page_with_total_zero(db: Db) {
    let app = spawn_app_on(db, &[]).await;
    let body = listing(&app, "category=no-such-category&sort=-price").await;
    assert_eq!(body["total"], 0);
    assert_eq!(body["page"], 1);
    assert_eq!(body["per_page"], 20);
    assert!(items(&body).is_empty());
}

async fn invalid_category_is_rejected_with_422_naming_category(db: Db) {
    let app = spawn_app_on(db, &[]).await;
    let too_long = "a".repeat(33);
    for category in [
        "",
        "Tea",
        "tea%20leaves",
        "tea_leaves",
        "t%C3%A9",
        "tea'--",
        too_long.as_str(),
    ] {
        let response = app.get(&format!("/v1/products?category={category}")).await;
        assert_eq!(response.status(), 422, "{category}");
        assert_validation_error_naming(&json(response).await, "category");
    }
}

async fn invalid_sort_is_rejected_with_422_naming_sort(db: Db) {
    let app = spawn_app_on(db, &[]).await;
    for sort in ["", "price_cents", "%2Bprice", "-id", "name%20desc", "PRICE"] {
        let response = app.get(&format!("/v1/products?sort={sort}")).await;
        assert_eq!(response.status(), 422, "{sort}");
        let body = json(response).await;
        assert_validation_error_naming(&body, "sort");
        let hint = body["error"]["fields"][0]["message"].as_str().unwrap();
        assert!(hint.contains("-price"), "lists the accepted values: {hint}");
    }
}

async fn every_invalid_parameter_is_named_in_one_answer(db: Db) {
    let app = spawn_app_on(db, &[]).await;
    let response = app
        .get("/v1/products?sort=cheapest&category=Tea&per_page=0")
        .await;
    assert_eq!(response.status(), 422);
    let body = json(response).await;
    assert_eq!(body["error"]["code"], "request.invalid_query");
    let fields: Vec<&str> = body["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["per_page", "category", "sort"]);
}

/// `products` sorted by `key` (ascending or descending), ties by ascending id.
fn sorted_ids(products: &[Value], key: &str, descending: bool) -> Vec<i64> {
    let mut products: Vec<&Value> = products.iter().collect();
    products.sort_by(|a, b| {
        let by_key = match key {
            "price_cents" => a[key].as_i64().cmp(&b[key].as_i64()),
            _ => a[key].as_str().cmp(&b[key].as_str()),
        };
        let by_key = if descending { by_key.reverse() } else { by_key };
        by_key.then(a["id"].as_i64().cmp(&b["id"].as_i64()))
    });
    products.iter().map(|p| p["id"].as_i64().unwrap()).collect()
}

async fn sorting_by_price_breaks_ties_by_id_in_both_directions(db: Db) {
    let app = spawn_app_on(db, &[]).await;
    // Two more products at the price of product 1: a three-way tie whatever the seed holds.
    let price = listing(&app, "per_page=1").await["items"][0]["price_cents"]
        .as_i64()
        .unwrap();
    insert_products(
        &app.database,
        &[
            ("TIE-001", "Tie One", "ties", price),
            ("TIE-002", "Tie Two", "ties", price),
        ],
    )
    .await;
    let products = all_products(&app).await;

    for (sort, descending) in [("price", false), ("-price", true)] {
        let body = listing(&app, &format!("sort={sort}&per_page=100")).await;
        assert_eq!(
            ids(&body),
            sorted_ids(&products, "price_cents", descending),
            "sort={sort}"
        );
        let tied: Vec<i64> = items(&body)
            .iter()
            .filter(|p| p["price_cents"] == price)
            .map(|p| p["id"].as_i64().unwrap())
            .collect();
        assert!(
            tied.len() >= 3 && tied.is_sorted(),
            "ties by ascending id: {tied:?}"
        );
    }
}

async fn sorting_by_name_uses_code_point_order_and_breaks_ties_by_id(db: Db) {
    let app = spawn_app_on(db, &[]).await;
    // A duplicate name and names that locale-aware collations would order differently
    // (lower case after every upper case letter in code point order).
    insert_products(
        &app.database,
        &[
            ("NAM-001", "aardvark mug", "names", 100),
            ("NAM-002", "Zebra Mug", "names", 100),
            ("NAM-003", "aardvark mug", "names", 100),
            ("NAM-004", "Zebra-mug", "names", 100),
        ],
    )
    .await;
    if let TestDatabase::Postgres(_) = &app.database {
        // A locale-aware column collation (ICU's root locale sorts "aardvark" before "Zebra"),
        // as many production databases have by default: the listing must not follow it.
        let mut connection = PgConnection::connect(&app.database.url()).await.unwrap();
        connection
            .execute(r#"ALTER TABLE products ALTER COLUMN name TYPE TEXT COLLATE "und-x-icu""#)
            .await
            .unwrap();
        connection.close().await.unwrap();
    }
    let products = all_products(&app).await;

    for (sort, descending) in [("name", false), ("-name", true)] {
        let body = listing(&app, &format!("sort={sort}&per_page=100")).await;
        assert_eq!(
            ids(&body),
            sorted_ids(&products, "name", descending),
            "sort={sort}"
        );
    }
    let names = listing(&app, "category=names&sort=name").await;
    let names: Vec<&str> = items(&names)
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["Zebra Mug", "Zebra-mug", "aardvark mug", "aardvark mug"]
    );
}

async fn paging_a_sorted_filtered_set_neither_repeats_nor_skips(db: Db) {
    let app = spawn_app_on(db, &[]).await;
    let books: Vec<Value> = all_products(&app)
        .await
        .into_iter()
        .filter(|p| p["category"] == "books")
        .collect();
    assert!(books.len() > 2);
    let expected = sorted_ids(&books, "price_cents", true);

    let mut seen = Vec::new();
    for page in 1..=expected.len().div_ceil(2) {
        let body = listing(
            &app,
            &format!("category=books&sort=-price&per_page=2&page={page}"),
        )
        .await;
        assert_eq!(body["total"], books.len() as u64);
        seen.extend(ids(&body));
    }
    assert_eq!(seen, expected);
}
