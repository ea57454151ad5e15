//! Liveness (`/healthz`: the process answers) and readiness (`/readyz`: the database answers).

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorResponse};
use crate::state::AppState;
use crate::store::Store;

/// Body of `/healthz` and `/readyz` when the answer is yes: `{"status":"ok"}`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Health {
    /// Always `ok` (a failure is an error answer instead).
    pub(crate) status: HealthStatus,
}

/// The one healthy status.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum HealthStatus {
    /// Serving.
    Ok,
}

const OK: Health = Health {
    status: HealthStatus::Ok,
};

/// `GET /healthz`: 200 `{"status":"ok"}` while the process serves requests.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "The process serves requests", body = Health))
)]
pub(crate) async fn healthz() -> Json<Health> {
    Json(OK)
}

/// `GET /readyz`: 200 `{"status":"ok"}` when the database answers, else 503 with the JSON
/// error (`db.unavailable` or `db.pool_exhausted`).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "The database answers", body = Health),
        (status = 503, description = "`db.unavailable` or `db.pool_exhausted`: the database \
            does not answer", body = ErrorResponse),
    )
)]
pub(crate) async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    state.store.ping().await?;
    Ok(Json(OK))
}
