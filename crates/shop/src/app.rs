//! Composes the service: opens the store, builds the [`AppState`] the handlers share, mounts
//! each domain's router and the operational routes, and instruments the whole thing with
//! telemetry. Handlers import the state from [`crate::state`], never this module.

use axum::Router;
use axum::routing::get;
use telemetry::Telemetry;
use telemetry::config::ConfigError;

use crate::config::{Conformance, ShopConfig};
use crate::state::AppState;
use crate::store::{Backend, OpenError};
use crate::{accounts, catalog, conformance, health, openapi, orders};

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
    let state = AppState::new(store, config, telemetry).map_err(StartupError::Config)?;
    Ok(router_with(state, telemetry, config.conformance))
}

/// The instrumented router over an already opened store: `/healthz`, `/readyz`, accounts, the
/// catalog, orders, `/openapi.json`, the JSON 404 and 405 fallbacks and `/metrics`.
/// Instrumenting is the last step, so every route, the fallbacks and `/metrics` are observed.
pub fn router(state: AppState, telemetry: &Telemetry) -> Router {
    router_with(state, telemetry, None)
}

/// [`router`], plus the conformance test service of `conformance` (`APP_CONFORMANCE`) when set.
pub fn router_with(
    state: AppState,
    telemetry: &Telemetry,
    conformance: Option<Conformance>,
) -> Router {
    let mut routes = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .merge(accounts::router())
        .merge(catalog::router())
        .merge(orders::router())
        .route(openapi::PATH, openapi::route())
        .fallback(telemetry::layer::not_found_fallback)
        .method_not_allowed_fallback(telemetry::layer::method_not_allowed_fallback)
        .with_state(state);
    if let Some(Conformance::W3c) = conformance {
        routes = routes.merge(conformance::w3c_router(telemetry));
    }
    telemetry.observe_router(routes)
}
