//! The catalog: `GET /v1/products` (paged listing) and `GET /v1/products/{id}`.

mod params;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::app::AppState;
use crate::error::ApiError;
use crate::store::{Product, Store};
pub use params::{DEFAULT_PAGE, DEFAULT_PER_PAGE, MAX_PAGE, MAX_PER_PAGE};
pub(crate) use params::{page_request, product_id as path_id};

/// The catalog routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/products", get(list_products))
        .route("/v1/products/{id}", get(get_product))
}

/// Body of `GET /v1/products`.
#[derive(Debug, Serialize)]
pub struct ProductList {
    /// The products of this page, in id order.
    pub items: Vec<Product>,
    /// 1-based page number.
    pub page: u32,
    /// Page size asked for (the last page may hold fewer items).
    pub per_page: u32,
    /// Products in all pages.
    pub total: u64,
}

async fn list_products(
    State(state): State<AppState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<ProductList>, ApiError> {
    let Query(pairs) = query.map_err(|_| ApiError::Validation {
        code: "request.invalid_query",
        message: "the query string is not valid URL encoding".into(),
        fields: Vec::new(),
    })?;
    let page = params::page_request(&pairs)?;
    let (items, total) = state.store.list_products(page).await?;
    tracing::debug!(
        page = page.page,
        per_page = page.per_page,
        items = items.len(),
        total,
        "products listed"
    );
    Ok(Json(ProductList {
        items,
        page: page.page,
        per_page: page.per_page,
        total,
    }))
}

async fn get_product(
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
