//! The OpenAPI document at `GET /openapi.json`: OpenAPI 3.1, exactly the routes the service
//! registers and serves, every error answer each operation can give, parameter bounds equal to
//! the validation's, and real answers that match the documented schemas.
//!
//! Full JSON Schema validation of every answer (patterns, formats) is schemathesis' job
//! (`scripts/api-fuzz.sh`); here a small validator checks the structure of real answers.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::common::{TestApp, spawn_app};
use serde_json::{Value, json};
use shop::catalog::{CATEGORY_PATTERN, MAX_CATEGORY_CHARS, MAX_PAGE, MAX_PER_PAGE};
use shop::store::ProductSort;

/// The operations of the document's `paths`: (method in upper case, path template).
fn documented_operations(document: &Value) -> BTreeSet<(String, String)> {
    document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|key| METHODS.contains(&key.to_uppercase().as_str()))
                .map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect()
}

const METHODS: [&str; 8] = [
    "GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE",
];

async fn served_document(app: &TestApp) -> Value {
    let response = app.get("/openapi.json").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_openapi_3_1_with_the_package_version() {
    let app = spawn_app(&[]).await;
    let document = served_document(&app).await;
    assert!(
        document["openapi"].as_str().unwrap().starts_with("3.1."),
        "{}",
        document["openapi"]
    );
    assert_eq!(document["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(document["info"]["title"], "shop");
    assert!(
        document.get("servers").is_none(),
        "relative to where it is served"
    );
    assert_eq!(document, shop::openapi::document(), "served as generated");
}

/// The route templates the source registers: every `.route(` of `crates/shop/src`, plus
/// `/metrics` (added by `telemetry::Telemetry::observe_router`), minus the W3C conformance service
/// (only with `APP_CONFORMANCE=w3c`, not part of the API) and the payment simulator (a service
/// of its own, on its own port).
fn registered_routes() -> BTreeSet<String> {
    fn scan(directory: &Path, routes: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(directory).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                // The payment simulator is another service with its own routes and port.
                if !path.ends_with("payments/simulator") {
                    scan(&path, routes);
                }
                continue;
            }
            let source = std::fs::read_to_string(&path).unwrap();
            for (_, rest) in source
                .match_indices(".route(")
                .map(|(i, _)| source.split_at(i))
            {
                let argument = rest[".route(".len()..]
                    .split(',')
                    .next()
                    .unwrap()
                    .trim()
                    .to_owned();
                let route = match argument.as_str() {
                    literal if literal.starts_with('"') => literal.trim_matches('"').to_owned(),
                    "openapi::PATH" => shop::openapi::PATH.to_owned(),
                    "W3C_PATH" => continue,
                    other => panic!(
                        "{}: .route({other}, …): teach registered_routes() this constant",
                        path.display()
                    ),
                };
                routes.insert(route);
            }
        }
    }
    let mut routes = BTreeSet::from(["/metrics".to_owned()]);
    scan(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut routes,
    );
    routes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_registered_route_is_documented_and_every_documented_route_is_registered() {
    let document = shop::openapi::document();
    let documented: BTreeSet<String> = documented_operations(&document)
        .into_iter()
        .map(|(_, path)| path)
        .collect();
    let registered = registered_routes();
    assert!(registered.contains("/v1/products/{id}"), "{registered:?}");
    assert_eq!(documented, registered);
}

/// `path` with its parameters filled in with a valid value.
fn concrete(path: &str) -> String {
    path.replace("{id}", "1")
}

async fn send(app: &TestApp, method: &str, path: &str, token: &str) -> reqwest::Response {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = app
        .client
        .request(method.clone(), app.url(&concrete(path)))
        .bearer_auth(token);
    if method == reqwest::Method::POST {
        request = request.json(&if path == "/v1/orders" {
            json!({"items": [{"product_id": 1, "quantity": 1}]})
        } else {
            json!({"email": "probe@example.com", "name": "Probe"})
        });
    }
    request.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_served_and_every_other_method_answers_405() {
    let app = spawn_app(&[]).await;
    let token = app.sign_up("ann@example.com").await;
    let document = served_document(&app).await;
    let operations = documented_operations(&document);
    let paths: BTreeSet<&String> = operations.iter().map(|(_, path)| path).collect();
    for path in paths {
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            let response = send(&app, method, path, &token).await;
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let code = body["error"]["code"].as_str().unwrap_or_default();
            if operations.contains(&(method.to_owned(), path.clone())) {
                assert!(
                    !["route.not_found", "route.method_not_allowed"].contains(&code),
                    "{method} {path} is documented but answered by a fallback: {status} {body}"
                );
                assert!(status < 300, "{method} {path}: {status} {body}");
            } else {
                assert_eq!(
                    (status, code),
                    (405, "route.method_not_allowed"),
                    "{method} {path} is not documented"
                );
            }
        }
    }
}

/// The statuses each operation can answer, read off the code paths: the handler's `ApiError`s
/// and extractor rejections, plus the 500 every route can give (a panic is answered
/// `handler.panic`; database routes also `db.unexpected`).
fn expected_statuses() -> BTreeMap<(&'static str, &'static str), Vec<u16>> {
    BTreeMap::from([
        (
            ("POST", "/v1/users"),
            vec![201, 400, 409, 413, 415, 422, 500, 503],
        ),
        (("GET", "/v1/me"), vec![200, 401, 500, 503]),
        (("GET", "/v1/products"), vec![200, 422, 500, 503]),
        (("GET", "/v1/products/{id}"), vec![200, 404, 422, 500, 503]),
        (
            ("POST", "/v1/orders"),
            vec![201, 400, 401, 402, 409, 413, 415, 422, 500, 502, 503, 504],
        ),
        (("GET", "/v1/orders"), vec![200, 401, 422, 500, 503]),
        (
            ("GET", "/v1/orders/{id}"),
            vec![200, 401, 404, 422, 500, 503],
        ),
        (("GET", "/healthz"), vec![200, 500]),
        (("GET", "/readyz"), vec![200, 500, 503]),
        (("GET", "/metrics"), vec![200, 500]),
        (("GET", "/openapi.json"), vec![200, 500]),
    ])
}

#[test]
fn every_operation_documents_every_status_it_can_answer() {
    let document = shop::openapi::document();
    let expected = expected_statuses();
    assert_eq!(
        documented_operations(&document),
        expected
            .keys()
            .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
            .collect(),
        "the table above lists every operation"
    );
    for ((method, path), statuses) in expected {
        let operation = &document["paths"][path][method.to_lowercase()];
        let responses = operation["responses"].as_object().unwrap();
        let mut documented: Vec<u16> = responses.keys().map(|s| s.parse().unwrap()).collect();
        documented.sort_unstable();
        assert_eq!(documented, statuses, "{method} {path}");
        for (status, response) in responses {
            let headers = &response["headers"];
            for header in ["x-request-id", "traceparent"] {
                assert_eq!(
                    headers[header]["required"], true,
                    "{method} {path} {status}"
                );
            }
            if status.as_str() >= "400" {
                assert_eq!(
                    response["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/Error",
                    "{method} {path} {status}: the JSON error shape"
                );
            }
        }
    }
    let unauthorized = &document["paths"]["/v1/me"]["get"]["responses"]["401"];
    assert_eq!(
        unauthorized["headers"]["WWW-Authenticate"]["required"],
        true
    );
}

#[test]
fn the_bearer_scheme_guards_exactly_the_authenticated_routes() {
    let document = shop::openapi::document();
    assert_eq!(
        document["components"]["securitySchemes"]["bearer"],
        json!({"type": "http", "scheme": "bearer"})
    );
    for (method, path) in documented_operations(&document) {
        let security = &document["paths"][&path][method.to_lowercase()]["security"];
        if path == "/v1/me" || path.starts_with("/v1/orders") {
            assert_eq!(security, &json!([{"bearer": []}]), "{method} {path}");
        } else {
            assert!(security.is_null(), "{method} {path}: {security}");
        }
    }
}

#[test]
fn the_listing_parameters_have_the_bounds_the_validation_applies() {
    let document = shop::openapi::document();
    let parameters: BTreeMap<String, Value> =
        document["paths"]["/v1/products"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                assert_eq!(p["in"], "query");
                assert_eq!(p["required"], false);
                (p["name"].as_str().unwrap().to_owned(), p["schema"].clone())
            })
            .collect();
    assert_eq!(parameters["page"]["minimum"], 1);
    assert_eq!(parameters["page"]["maximum"], MAX_PAGE);
    assert_eq!(parameters["per_page"]["minimum"], 1);
    assert_eq!(parameters["per_page"]["maximum"], MAX_PER_PAGE);
    assert_eq!(parameters["category"]["pattern"], CATEGORY_PATTERN);
    assert_eq!(parameters["category"]["maxLength"], MAX_CATEGORY_CHARS);
    let sorts: Vec<&str> = ProductSort::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(parameters["sort"]["enum"], json!(sorts));
    assert_eq!(parameters["sort"]["default"], "id");
    let list = &document["components"]["schemas"]["ProductList"]["properties"];
    assert_eq!(list["page"]["maximum"], MAX_PAGE);
    assert_eq!(list["per_page"]["maximum"], MAX_PER_PAGE);
    assert_eq!(list["items"]["maxItems"], MAX_PER_PAGE);
}

/// A structural JSON Schema check for the subset the document uses: `$ref`, `allOf`, `type`,
/// `required`, `properties`, `items`, `enum`, `minimum`, `maximum`, `minItems`, `maxItems`.
fn assert_matches(document: &Value, schema: &Value, value: &Value, at: &str) {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.trim_start_matches("#/components/schemas/");
        return assert_matches(
            document,
            &document["components"]["schemas"][name],
            value,
            at,
        );
    }
    if let Some(all) = schema["allOf"].as_array() {
        for part in all {
            assert_matches(document, part, value, at);
        }
    }
    if let Some(allowed) = schema["enum"].as_array() {
        assert!(allowed.contains(value), "{at}: {value} not in {allowed:?}");
    }
    match schema["type"].as_str() {
        Some("object") => {
            let object = value.as_object().unwrap_or_else(|| panic!("{at}: {value}"));
            for key in schema["required"].as_array().into_iter().flatten() {
                let key = key.as_str().unwrap();
                assert!(object.contains_key(key), "{at}: missing {key} in {value}");
            }
            for (key, property) in schema["properties"].as_object().into_iter().flatten() {
                if let Some(field) = object.get(key) {
                    assert_matches(document, property, field, &format!("{at}.{key}"));
                }
            }
        }
        Some("array") => {
            let items = value.as_array().unwrap_or_else(|| panic!("{at}: {value}"));
            if let Some(min) = schema["minItems"].as_u64() {
                assert!(items.len() as u64 >= min, "{at}: fewer than {min} items");
            }
            if let Some(max) = schema["maxItems"].as_u64() {
                assert!(items.len() as u64 <= max, "{at}: more than {max} items");
            }
            for (i, item) in items.iter().enumerate() {
                assert_matches(document, &schema["items"], item, &format!("{at}[{i}]"));
            }
        }
        Some("string") => assert!(value.is_string(), "{at}: {value}"),
        Some("integer") => {
            let n = value.as_i64().unwrap_or_else(|| panic!("{at}: {value}"));
            if let Some(min) = schema["minimum"].as_i64() {
                assert!(n >= min, "{at}: {n} < {min}");
            }
            if let Some(max) = schema["maximum"].as_i64() {
                assert!(n <= max, "{at}: {n} > {max}");
            }
        }
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_answers_match_the_documented_schemas() {
    let app = spawn_app(&[]).await;
    let token = app.sign_up("bob@example.com").await;
    let document = served_document(&app).await;
    let cases: [(&str, &str, Option<Value>, u16, &str); 15] = [
        (
            "GET",
            "/v1/products?sort=-price&category=tea",
            None,
            200,
            "/v1/products",
        ),
        (
            "GET",
            "/v1/products?sort=cheap&page=0",
            None,
            422,
            "/v1/products",
        ),
        ("GET", "/v1/products/999999", None, 404, "/v1/products/{id}"),
        ("GET", "/v1/products/abc", None, 422, "/v1/products/{id}"),
        ("GET", "/v1/me", None, 200, "/v1/me"),
        (
            "POST",
            "/v1/users",
            Some(json!({"email": "x"})),
            422,
            "/v1/users",
        ),
        (
            "POST",
            "/v1/users",
            Some(json!({"email": "bob@example.com", "name": "B"})),
            409,
            "/v1/users",
        ),
        (
            "POST",
            "/v1/orders",
            Some(json!({"items": [{"product_id": 1, "quantity": 1}]})),
            201,
            "/v1/orders",
        ),
        (
            "POST",
            "/v1/orders",
            Some(json!({"items": []})),
            422,
            "/v1/orders",
        ),
        ("GET", "/v1/orders", None, 200, "/v1/orders"),
        ("GET", "/v1/orders?per_page=0", None, 422, "/v1/orders"),
        ("GET", "/v1/orders/999999", None, 404, "/v1/orders/{id}"),
        ("GET", "/v1/orders/1", None, 200, "/v1/orders/{id}"),
        ("GET", "/healthz", None, 200, "/healthz"),
        ("GET", "/readyz", None, 200, "/readyz"),
    ];
    for (method, target, body, status, path) in cases {
        let mut request = app.client.request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            app.url(target),
        );
        if target == "/v1/me" || target.starts_with("/v1/orders") {
            request = request.bearer_auth(&token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{method} {target}");
        let documented =
            &document["paths"][path][method.to_lowercase()]["responses"][status.to_string()];
        for header in documented["headers"].as_object().unwrap().keys() {
            assert!(
                response.headers().contains_key(header.as_str()),
                "{target}: {header}"
            );
        }
        let value: Value = response.json().await.unwrap();
        let schema = &documented["content"]["application/json"]["schema"];
        assert_matches(&document, schema, &value, &format!("{method} {target}"));
    }
}
