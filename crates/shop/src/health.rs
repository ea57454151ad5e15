//! Liveness (`/healthz`: the process answers) and readiness (`/readyz`: the database answers).

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::error::ApiError;
use crate::store::Store;

/// `GET /healthz`: 200 `{"status":"ok"}` while the process serves requests.
pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: 200 `{"status":"ok"}` when the database answers, else 503 with the JSON
/// error (`db.unavailable` or `db.pool_exhausted`).
pub(crate) async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state.store.ping().await?;
    Ok(Json(json!({ "status": "ok" })))
}
