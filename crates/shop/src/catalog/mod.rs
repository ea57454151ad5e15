//! The catalog: `GET /v1/products` (a page of the catalog, optionally of one category, in a
//! chosen order) and `GET /v1/products/{id}`.

mod category;
mod params;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorResponse};
use crate::state::AppState;
use crate::store::{Product, Store};
pub use category::{CATEGORY_PATTERN, Category, InvalidCategory, MAX_CATEGORY_CHARS};
pub use params::{DEFAULT_PAGE, DEFAULT_PER_PAGE, MAX_PAGE, MAX_PER_PAGE, ProductListParams};
pub(crate) use params::{page_request, product_id as path_id};

/// The catalog routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/products", get(list_products))
        .route("/v1/products/{id}", get(get_product))
}

/// Body of `GET /v1/products`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductList {
    /// The products of this page, in the order asked for (`sort`, default id).
    #[schema(max_items = 100)]
    pub items: Vec<Product>,
    /// 1-based page number.
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub page: u32,
    /// Page size asked for (the last page may hold fewer items).
    #[schema(minimum = 1, maximum = 100)]
    pub per_page: u32,
    /// Products in all pages (of the category, when one was asked for).
    pub total: u64,
}

/// `GET /v1/products`: one page of the catalog, optionally of one category, in one order.
#[utoipa::path(
    get,
    path = "/v1/products",
    tag = "catalog",
    params(ProductListParams),
    responses(
        (status = 200, description = "One page of products and the number of products in all \
            pages (of the category, when one was given); an unknown category gives an empty \
            page with total 0", body = ProductList),
        (status = 422, description = "`request.invalid_query`: a parameter is invalid (each \
            one is named in `fields`), or the query string is not valid URL encoding",
            body = ErrorResponse),
        (status = 503, description = "`db.unavailable` or `db.pool_exhausted`: retry later",
            body = ErrorResponse),
    )
)]
pub(crate) async fn list_products(
    State(state): State<AppState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<ProductList>, ApiError> {
    let Query(pairs) = query.map_err(|_| ApiError::Validation {
        code: "request.invalid_query",
        message: "the query string is not valid URL encoding".into(),
        fields: Vec::new(),
    })?;
    let query = params::product_query(&pairs)?;
    let (items, total) = state.store.list_products(&query).await?;
    tracing::debug!(
        page = query.page.page,
        per_page = query.page.per_page,
        sort = query.sort.as_str(),
        filtered = query.category.is_some(),
        items = items.len(),
        total,
        "products listed"
    );
    Ok(Json(ProductList {
        items,
        page: query.page.page,
        per_page: query.page.per_page,
        total,
    }))
}

/// `GET /v1/products/{id}`: one product with its stock.
#[utoipa::path(
    get,
    path = "/v1/products/{id}",
    tag = "catalog",
    params(("id" = i64, Path, minimum = 1, description = "The product id (a positive integer)")),
    responses(
        (status = 200, description = "The product, with its current stock", body = Product),
        (status = 404, description = "`product.not_found`: no product has this id; \
            `route.not_found` when the id segment is empty", body = ErrorResponse),
        (status = 422, description = "`request.invalid_path`: the id is not a positive \
            integer (`fields` names `id`)", body = ErrorResponse),
        (status = 503, description = "`db.unavailable` or `db.pool_exhausted`: retry later",
            body = ErrorResponse),
    )
)]
pub(crate) async fn get_product(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Product>, ApiError> {
    let raw = match &id {
        Ok(Path(raw)) => raw.as_str(),
        Err(_) => "",
    };
    let id = params::product_id(raw)?;
    match state.store.get_product(id).await? {
        Some(product) => Ok(Json(product)),
        None => Err(ApiError::NotFound {
            code: "product.not_found",
            message: "no product with this id".into(),
        }),
    }
}
