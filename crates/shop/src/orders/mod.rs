//! Orders: checkout (`POST /v1/orders`) and the caller's own orders (`GET /v1/orders`,
//! `GET /v1/orders/{id}`).
//!
//! A checkout validates the items, reserves their stock and writes the order `pending` in one
//! transaction, asks the payment provider to charge, then marks the order `paid` (201) or
//! `failed` and gives the stock back (402 declined, 502 provider failing, 504 provider too
//! slow). See [`checkout`] for the idempotency rules. Orders of other users do not exist as
//! far as a caller can tell (404, never 403).

mod checkout;
pub mod request;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::accounts::AuthUser;
use crate::error::{ApiError, ErrorResponse};
use crate::payments::CURRENCY;
use crate::state::AppState;
use crate::store::{Order, OrderFailure, OrderItem, OrderStatus, Store};

/// Response header marking an answer replayed for a retried `Idempotency-Key`.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// The order routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/orders", get(list_orders).post(place_order))
        .route("/v1/orders/{id}", get(get_order))
}

/// An order as the API shows it (`201` of a checkout, items of `GET /v1/orders`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrderView {
    /// Order id.
    #[schema(minimum = 1)]
    pub id: i64,
    /// `pending`, `paid` or `failed`.
    pub status: OrderStatus,
    /// Sum of the lines, in cents of `currency`.
    pub total_cents: i64,
    /// Always `EUR`.
    #[schema(value_type = String, pattern = "^EUR$")]
    pub currency: &'static str,
    /// Why a failed order failed: `declined`, `unavailable` or `timeout`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<OrderFailure>,
    /// The lines, by product id, at the prices of the checkout.
    pub items: Vec<OrderItem>,
}

impl From<Order> for OrderView {
    fn from(order: Order) -> Self {
        Self {
            id: order.id,
            status: order.status,
            total_cents: order.total_cents,
            currency: CURRENCY,
            failure_reason: order.failure_reason,
            items: order.items,
        }
    }
}

/// Body of `GET /v1/orders`.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderList {
    /// This page of the caller's orders, newest first.
    pub items: Vec<OrderView>,
    /// 1-based page number.
    pub page: u32,
    /// Page size asked for.
    pub per_page: u32,
    /// The caller's orders in all pages.
    pub total: u64,
}

/// The query parameters of `GET /v1/orders` (the same bounds as the catalog's).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrderListParams {
    /// 1-based page number.
    #[param(minimum = 1, maximum = 1_000_000, default = 1)]
    pub page: Option<u32>,
    /// Orders per page.
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub per_page: Option<u32>,
}

/// `POST /v1/orders`: 201 with the paid order (`Location` names it); replays of an
/// `Idempotency-Key` carry `Idempotent-Replayed: true`.
#[utoipa::path(
    post,
    path = "/v1/orders",
    tag = "orders",
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 64,
        pattern = "^[A-Za-z0-9._:-]{1,64}$",
        description = "Names this checkout: a retry with the same key and the same items never \
            orders or charges twice (the first answer is replayed with \
            `Idempotent-Replayed: true`; an order whose payment failed for a transient reason is \
            tried again)")),
    request_body = request::CheckoutBody,
    responses(
        (status = 201, description = "The order, paid (replayed for a known key, with \
            `Idempotent-Replayed: true`)", body = OrderView,
            headers(("Location" = String, description = "`/v1/orders/{id}` of the order"))),
        (status = 400, description = "`request.malformed_json`: the body is not valid JSON; \
            `request.unreadable_body`: it could not be read", body = ErrorResponse),
        (status = 401, description = "`auth.token_invalid`: the bearer token is missing, \
            malformed or unknown", body = ErrorResponse,
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 402, description = "`payment.declined`: the provider declined the charge; \
            the stock was given back (replayed for the same key)", body = ErrorResponse),
        (status = 409, description = "`order.out_of_stock` (`fields` names the item's \
            quantity), `idempotency.key_reused` (the key was used for other items), \
            `idempotency.in_progress` (a checkout with this key is still running)",
            body = ErrorResponse),
        (status = 413, description = "`request.body_too_large`", body = ErrorResponse),
        (status = 415, description = "`request.unsupported_media_type`: the body is not sent \
            as `application/json`", body = ErrorResponse),
        (status = 422, description = "`order.invalid_items` (each invalid field named, e.g. \
            `items[2].quantity`), `order.unknown_product` (`items[i].product_id`), \
            `request.invalid_header` (`Idempotency-Key`)", body = ErrorResponse),
        (status = 502, description = "`payment.unavailable`: the provider failed every \
            attempt; `payment.circuit_open`: not attempted, the provider is failing (retry \
            later with the same key)", body = ErrorResponse),
        (status = 503, description = "`db.unavailable` or `db.pool_exhausted`: retry later",
            body = ErrorResponse),
        (status = 504, description = "`payment.timeout`: the provider did not answer in time \
            (retry with the same key: it is never charged twice)", body = ErrorResponse),
    )
)]
pub(crate) async fn place_order(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Response {
    let result = async {
        let key = request::idempotency_key(&headers)?;
        let Json(body) = body.map_err(ApiError::from)?;
        let checkout = request::checkout_request(&body)?;
        checkout::run(&state, user.id, key.as_deref(), &checkout).await
    }
    .await;
    match result {
        Ok(checkout::Placed { order, replayed }) => {
            let mut response =
                (StatusCode::CREATED, Json(OrderView::from(order.clone()))).into_response();
            if let Ok(location) = HeaderValue::from_str(&format!("/v1/orders/{}", order.id)) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            if replayed {
                response
                    .headers_mut()
                    .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
            }
            response
        }
        Err(checkout::Refused { error, replayed }) => {
            let mut response = error.into_response();
            if replayed {
                response
                    .headers_mut()
                    .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
            }
            response
        }
    }
}

/// `GET /v1/orders?page=&per_page=`: the caller's orders, newest first.
#[utoipa::path(
    get,
    path = "/v1/orders",
    tag = "orders",
    security(("bearer" = [])),
    params(OrderListParams),
    responses(
        (status = 200, description = "One page of the caller's orders, newest first, and how \
            many they have in all", body = OrderList),
        (status = 401, description = "`auth.token_invalid`: the bearer token is missing, \
            malformed or unknown", body = ErrorResponse,
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 422, description = "`request.invalid_query`: `page` or `per_page` is invalid \
            (named in `fields`)", body = ErrorResponse),
        (status = 503, description = "`db.unavailable` or `db.pool_exhausted`: retry later",
            body = ErrorResponse),
    )
)]
pub(crate) async fn list_orders(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<OrderList>, ApiError> {
    let Query(pairs) = query.map_err(|_| ApiError::Validation {
        code: "request.invalid_query",
        message: "the query string is not valid URL encoding".into(),
        fields: Vec::new(),
    })?;
    let page = crate::catalog::page_request(&pairs)?;
    let (orders, total) = state.store.list_orders(user.id, page).await?;
    Ok(Json(OrderList {
        items: orders.into_iter().map(OrderView::from).collect(),
        page: page.page,
        per_page: page.per_page,
        total,
    }))
}

/// `GET /v1/orders/{id}`: the order if the caller placed it, 404 otherwise.
#[utoipa::path(
    get,
    path = "/v1/orders/{id}",
    tag = "orders",
    security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "The order id (a positive integer)")),
    responses(
        (status = 200, description = "The order (the caller's own)", body = OrderView),
        (status = 401, description = "`auth.token_invalid`: the bearer token is missing, \
            malformed or unknown", body = ErrorResponse,
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 404, description = "`order.not_found`: the caller has no order with this id \
            (another user's order is not found either)", body = ErrorResponse),
        (status = 422, description = "`request.invalid_path`: the id is not a positive \
            integer (`fields` names `id`)", body = ErrorResponse),
        (status = 503, description = "`db.unavailable` or `db.pool_exhausted`: retry later",
            body = ErrorResponse),
    )
)]
pub(crate) async fn get_order(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<OrderView>, ApiError> {
    let raw = match &id {
        Ok(Path(raw)) => raw.as_str(),
        Err(_) => "",
    };
    let id = crate::catalog::path_id(raw)?;
    match state.store.get_order(user.id, id).await? {
        Some(order) => Ok(Json(order.into())),
        None => Err(ApiError::NotFound {
            code: "order.not_found",
            message: "no order with this id".into(),
        }),
    }
}
