//! The OpenAPI 3.1 document of the shop, generated from the code and served at
//! `GET /openapi.json`.
//!
//! Each handler carries a `#[utoipa::path(...)]` annotation next to it (method, path, query and
//! path parameters, request body, security and **every** response it can give), and each body
//! type derives `utoipa::ToSchema`. [`ApiDoc`] lists the handlers; this module adds what every
//! operation has in common (the 500 answer, the `x-request-id` and `traceparent` response
//! headers, the bearer security scheme).
//!
//! # Adding a route
//!
//! 1. Annotate the handler with `#[utoipa::path(...)]` listing every status it can answer
//!    (look at its `ApiError`s and extractor rejections; the 500 is added here), and derive
//!    `ToSchema` on its bodies.
//! 2. Add the handler to `paths(...)` of [`ApiDoc`] — one line.
//!
//! `crates/shop/tests/integration/openapi.rs` fails until both are done: it compares the routes the source
//! registers with the documented ones and probes every documented operation over HTTP.
//!
//! The W3C conformance service (`POST /_test/w3c`, only with `APP_CONFORMANCE=w3c`) is a test
//! fixture, not part of the API, and is not documented.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use serde_json::Value;
use telemetry::ErrorKind;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref, RefOr, ResponseBuilder, Schema};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use crate::{accounts, catalog, health, orders};

/// Where the document is served.
pub const PATH: &str = "/openapi.json";

/// The name of the bearer-token security scheme (`security(("bearer" = []))` on a route).
pub const BEARER: &str = "bearer";

/// The response headers every answer carries (set by the telemetry middleware), with the
/// pattern of their values.
pub const COMMON_RESPONSE_HEADERS: [(&str, &str, &str); 2] = [
    (
        "x-request-id",
        "^[A-Za-z0-9._:-]{1,128}$",
        "The request id: the caller's `x-request-id` when it is 1-128 characters of \
         `[A-Za-z0-9._:-]`, else a new UUIDv7. It is in every log line of the request.",
    ),
    (
        "traceparent",
        "^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
        "W3C Trace Context of this request's SERVER span.",
    ),
];

/// The shop's API. Add a handler to `paths(...)` to document its route (see the module docs).
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "shop",
        description = "A small shop (accounts, a catalog, orders paid through a payment \
            provider) observed end to end: every answer \
            carries `x-request-id` and `traceparent`, and every error has the one JSON shape \
            `{\"error\": {\"kind\", \"code\", \"message\", \"fields\"?}}`."
    ),
    paths(
        accounts::sign_up,
        accounts::me,
        catalog::list_products,
        catalog::get_product,
        orders::place_order,
        orders::list_orders,
        orders::get_order,
        health::healthz,
        health::readyz,
        metrics,
        openapi_json,
    ),
    modifiers(&BearerScheme, &CommonResponses),
    tags(
        (name = "accounts", description = "Sign-up and the caller's account"),
        (name = "catalog", description = "Products and their stock"),
        (name = "orders", description = "Checkout (stock reserved, payment charged) and the \
            caller's own orders"),
        (name = "operations", description = "Health, readiness, metrics and this document"),
    )
)]
pub struct ApiDoc;

/// The document as served: [`ApiDoc`] plus what utoipa's types cannot say (response headers
/// marked `required`).
pub fn document() -> Value {
    let mut document = serde_json::to_value(ApiDoc::openapi()).unwrap_or(Value::Null);
    require_documented_headers(&mut document);
    document
}

/// Every header the document lists on a response is always sent with it: mark it `required`
/// (utoipa 5's `Header` has no such field).
fn require_documented_headers(document: &mut Value) {
    let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    let responses = paths
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut())
        .filter_map(|operation| operation.get_mut("responses"))
        .filter_map(Value::as_object_mut)
        .flat_map(|responses| responses.values_mut());
    for response in responses {
        if let Some(headers) = response.get_mut("headers").and_then(Value::as_object_mut) {
            for header in headers.values_mut().filter_map(Value::as_object_mut) {
                header.insert("required".to_owned(), Value::Bool(true));
            }
        }
    }
}

/// `GET /openapi.json`, serving [`document`] rendered once (at router construction).
pub fn route<S: Clone + Send + Sync + 'static>() -> MethodRouter<S> {
    let rendered = Rendered(
        serde_json::to_vec(&document())
            .map(Bytes::from)
            .map_err(|error| Arc::from(error.to_string())),
    );
    get(move || openapi_json(rendered.clone()))
}

/// The rendered document, or why it could not be rendered (not expected: the document is made
/// of strings, numbers and maps with string keys).
#[derive(Debug, Clone)]
struct Rendered(Result<Bytes, Arc<str>>);

/// This document, OpenAPI 3.1.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "This document (OpenAPI 3.1)",
        content_type = "application/json", body = Object))
)]
async fn openapi_json(document: Rendered) -> Response {
    match document.0 {
        Ok(json) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            json,
        )
            .into_response(),
        Err(error) => crate::error::ApiError::Internal {
            code: "openapi.unrenderable",
            detail: format!("cannot render the OpenAPI document: {error}"),
        }
        .into_response(),
    }
}

// `/metrics` is served by `telemetry::Telemetry::observe_router`: this stub carries its
// documentation only.
/// The metrics of this instance, in Prometheus text format (or OpenMetrics with exemplars).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200,
        description = "Prometheus text exposition (`text/plain; version=0.0.4`) of every metric \
            of this instance; OpenMetrics 1.0.0 with exemplars (`trace_id`, `span_id`) when the \
            `Accept` header prefers `application/openmetrics-text`",
        content((String = "text/plain"), (String = "application/openmetrics-text"))))
)]
#[allow(dead_code)]
fn metrics() {}

/// The schema of `error.kind`: the closed set of the error taxonomy.
#[derive(Debug)]
pub struct ErrorKindName;

/// Every [`ErrorKind`]: the library's generic ones (the match makes a new one a compile error
/// here until it is listed) and the shop's own ([`crate::error::SHOP_ERROR_KINDS`]).
const ERROR_KINDS: [ErrorKind; 10] = {
    const fn listed(kind: ErrorKind) -> ErrorKind {
        match kind {
            ErrorKind::Validation
            | ErrorKind::Unauthenticated
            | ErrorKind::Forbidden
            | ErrorKind::NotFound
            | ErrorKind::Conflict
            | ErrorKind::Unavailable
            | ErrorKind::Timeout
            | ErrorKind::Internal
            | ErrorKind::Panic
            | ErrorKind::App(_) => kind,
        }
    }
    [
        listed(ErrorKind::Validation),
        listed(ErrorKind::Unauthenticated),
        listed(ErrorKind::Forbidden),
        listed(ErrorKind::NotFound),
        listed(ErrorKind::Conflict),
        listed(crate::error::SHOP_ERROR_KINDS[0]),
        listed(ErrorKind::Unavailable),
        listed(ErrorKind::Timeout),
        listed(ErrorKind::Internal),
        listed(ErrorKind::Panic),
    ]
};

impl PartialSchema for ErrorKindName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "The kind of error (`error.type`): `validation` 400/413/415/422, \
                 `unauthenticated` 401, `forbidden` 403, `not_found` 404/405, `conflict` 409, \
                 `payment_declined` 402, `unavailable` 502/503, `timeout` 504, `internal` and \
                 `panic` 500.",
            ))
            .enum_values(Some(ERROR_KINDS.map(ErrorKind::as_str)))
            .into()
    }
}

impl ToSchema for ErrorKindName {
    fn name() -> std::borrow::Cow<'static, str> {
        "ErrorKind".into()
    }
}

/// Adds the bearer-token security scheme.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// What every operation has, because the middleware gives it to every answer: a 500 (a panic
/// is answered `handler.panic`; routes using the database can also answer `db.unexpected`)
/// and the `x-request-id` and `traceparent` response headers.
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut Document) {
        let error = Ref::from_schema_name(crate::error::ErrorResponse::name());
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.options,
                &mut item.head,
                &mut item.patch,
                &mut item.trace,
            ];
            for operation in operations.into_iter().flatten() {
                let responses = &mut operation.responses.responses;
                responses.entry("500".to_owned()).or_insert_with(|| {
                    ResponseBuilder::new()
                        .description(
                            "`handler.panic` or `db.unexpected`: a bug or an unexpected failure \
                             (no internal detail is sent)",
                        )
                        .content(
                            "application/json",
                            ContentBuilder::new().schema(Some(error.clone())).build(),
                        )
                        .build()
                        .into()
                });
                for response in responses.values_mut() {
                    let RefOr::T(response) = response else {
                        continue;
                    };
                    for (name, pattern, description) in COMMON_RESPONSE_HEADERS {
                        response.headers.insert(
                            name.to_owned(),
                            HeaderBuilder::new()
                                .schema(
                                    ObjectBuilder::new()
                                        .schema_type(Type::String)
                                        .pattern(Some(pattern)),
                                )
                                .description(Some(description))
                                .build(),
                        );
                    }
                }
            }
        }
    }
}
