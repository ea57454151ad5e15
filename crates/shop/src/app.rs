//! Composes the service: opens the store, mounts each domain's router and the operational
//! routes, and instruments the whole thing with telemetry.

use axum::Router;
use axum::routing::get;
use telemetry::Telemetry;
use telemetry::config::ConfigError;

use crate::config::ShopConfig;
use crate::store::{Backend, OpenError};
use crate::{accounts, catalog, health};

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The database.
    pub store: Backend,
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// A configuration value cannot be used (the binary exits with code 2).
    #[error(transparent)]
    Config(ConfigError),
    /// The database could not be opened, migrated or seeded.
    #[error(transparent)]
    Store(OpenError),
}

impl From<OpenError> for StartupError {
    fn from(error: OpenError) -> Self {
        match error {
            OpenError::Config(error) => Self::Config(error),
            other => Self::Store(other),
        }
    }
}

/// Opens (migrates, seeds) the store of `config` and builds the instrumented router.
pub async fn build(config: &ShopConfig, telemetry: &Telemetry) -> Result<Router, StartupError> {
    let store = Backend::open(config, telemetry).await?;
    Ok(router(AppState { store }, telemetry))
}

/// The instrumented router over an already opened store: `/healthz`, `/readyz`, accounts, the
/// catalog, the JSON 404 fallback and `/metrics`. Instrumenting is the last step, so every
/// route, the fallback and `/metrics` are observed.
pub fn router(state: AppState, telemetry: &Telemetry) -> Router {
    let routes = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .merge(accounts::router())
        .merge(catalog::router())
        .fallback(telemetry::layer::not_found_fallback)
        .method_not_allowed_fallback(telemetry::layer::method_not_allowed_fallback)
        .with_state(state);
    telemetry.instrument(routes)
}
