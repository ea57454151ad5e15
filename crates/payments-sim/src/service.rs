//! The simulator as a service: its name, its settings' help, and the [`Server`] that
//! [`telemetry::serve::run`] serves and shuts down (the `payments-sim` binary, and the shop
//! binary's in-process mode).

use std::future::Future;
use std::process::ExitCode;

use telemetry::serve::{Server, ShutdownBudget};
use telemetry::{Telemetry, TelemetryConfig, TelemetryGuard};
use tokio::net::TcpListener;

use crate::{Simulator, SimulatorConfig};

/// `service.name` of the simulator's telemetry instance (also when `OTEL_SERVICE_NAME` is set
/// for the shop it runs beside: one trace then shows two services).
pub const SERVICE_NAME: &str = "payments-sim";

/// One line per variable [`SimulatorConfig::from_lookup`](crate::SimulatorConfig::from_lookup)
/// reads, with its default. A test checks that every variable read is listed.
pub const SETTINGS_HELP: &str = "\
Payment simulator:
  PAYMENTS_SIM_ERROR_RATE         share of charges answered 503/500, 0..1       [default: 0]
  PAYMENTS_SIM_DECLINE_RATE       share of charges declined (402), 0..1         [default: 0]
  PAYMENTS_SIM_HANG_RATE          share of charges never answered, 0..1         [default: 0]
  PAYMENTS_SIM_LATENCY_MS         N, or p50=N,p99=M (log-normal)                [default: 0]
  PAYMENTS_SIM_ADMIN_TOKEN        bearer token for /admin, >= 16 chars (secret) [default: none, /admin loopback only]
  PAYMENTS_SIM_PORT               port of the standalone simulator              [default: 8090]
  APP_HOST                        listen address of the standalone simulator    [default: 127.0.0.1; cloud: 0.0.0.0]
";

/// `simulator` served on `listener`, observed by `telemetry` (flushed through `guard`); when
/// the shutdown reaches it, the simulator is closed first, so hangs and delays end at once.
pub fn server(
    listener: TcpListener,
    simulator: &Simulator,
    telemetry: &Telemetry,
    guard: TelemetryGuard,
) -> Server {
    let closing = simulator.clone();
    Server::new(listener, simulator.router(telemetry), guard).on_drain(move || closing.close())
}

/// The simulator alone (the `payments-sim` binary, `shop payments-sim`): starts telemetry
/// (the process's global subscriber), listens on `config`'s address, serves until `shutdown`,
/// then drains and flushes within `budget`. 0 after a clean shutdown, 1 when start-up or
/// serving failed (logged).
pub async fn run(
    telemetry_config: TelemetryConfig,
    config: SimulatorConfig,
    shutdown: impl Future<Output = ()>,
    budget: ShutdownBudget,
) -> ExitCode {
    let address = config.listen_address(telemetry_config.persona);
    let (telemetry, guard) = match Telemetry::init(telemetry_config) {
        Ok(instance) => instance,
        Err(error) => {
            eprintln!("{SERVICE_NAME}: cannot start telemetry: {error}");
            return ExitCode::FAILURE;
        }
    };
    telemetry.install_global_subscriber();
    let listener = match TcpListener::bind(address).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(server.address = %address.ip(), server.port = address.port(), error = %error, "cannot listen");
            guard.shutdown_within(budget.total).await;
            return ExitCode::FAILURE;
        }
    };
    let local = listener.local_addr().unwrap_or(address);
    let admin_access = if config.admin_token.is_some() {
        "bearer_token"
    } else {
        "loopback_only"
    };
    tracing::info!(
        server.address = %local.ip(),
        server.port = local.port(),
        payments_sim.admin_access = admin_access,
        "listening"
    );
    let server = server(listener, &Simulator::new(&config), &telemetry, guard);
    let stopped = telemetry::serve::run(vec![server], shutdown, budget).await;
    if stopped.failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::SETTINGS_HELP;
    use crate::SimulatorConfig;
    use std::cell::RefCell;

    #[test]
    fn every_variable_read_is_listed() {
        let read = RefCell::new(Vec::<String>::new());
        SimulatorConfig::from_lookup(|key| {
            read.borrow_mut().push(key.to_owned());
            None
        })
        .unwrap();
        let read = read.into_inner();
        assert!(read.len() >= 7, "{read:?}");
        for key in read {
            assert!(SETTINGS_HELP.contains(&key), "{key} is read but not listed");
        }
    }
}
