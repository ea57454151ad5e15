//! The state every handler shares: the store, the payment client and the domain metrics.
//! Built once by [`crate::app`]; the domain modules read it, and depend on nothing above them.

use telemetry::Telemetry;
use telemetry::config::ConfigError;

use crate::config::ShopConfig;
use crate::events::ShopMetrics;
use crate::payments::PaymentClient;
use crate::store::Backend;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The database.
    pub store: Backend,
    /// The payment provider.
    pub payments: PaymentClient,
    /// The domain instruments (`shop.*`).
    pub metrics: ShopMetrics,
}

impl AppState {
    /// The state of a shop over `store`, paying through the provider of `config.payments`
    /// (`PAYMENTS_URL`, which must be set: the binary sets it to its in-process simulator).
    pub fn new(
        store: Backend,
        config: &ShopConfig,
        telemetry: &Telemetry,
    ) -> Result<Self, ConfigError> {
        let url = config.payments.url.as_deref().ok_or_else(|| {
            ConfigError::new(
                "PAYMENTS_URL",
                "",
                "the payment provider's base URL (the shop binary starts its simulator and \
                 sets it when the variable is unset)",
            )
        })?;
        let metrics = ShopMetrics::new(telemetry);
        let payments = PaymentClient::new(url, &config.payments, telemetry, metrics.clone());
        Ok(Self {
            store,
            payments,
            metrics,
        })
    }
}
