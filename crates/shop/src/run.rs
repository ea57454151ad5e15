//! What the `shop` binary runs: the shop and, without `PAYMENTS_URL`, the payment simulator
//! in-process on an ephemeral loopback port, with a telemetry instance of its own
//! (`service.name` `payments-sim`). [`start`] brings both up; [`Started::serve`] serves them
//! until the shutdown future completes and shuts them down through the one shutdown path of
//! [`telemetry::serve::run`]: the shop drains first (its in-flight checkouts still call the
//! simulator), then the simulator, then both instances flush, all within the budget.
//!
//! `main.rs` reads [`Settings::from_env`], installs the signal handlers and calls these; tests
//! drive the same functions in-process with [`Settings::from_lookup`] and their own shutdown
//! future.

use std::future::Future;
use std::net::SocketAddr;

use console::{Console, ConsoleConfig};
use payments_sim::{Simulator, SimulatorConfig};
use telemetry::config::ConfigError;
use telemetry::serve::{Server, ShutdownBudget, Stopped};
use telemetry::{Telemetry, TelemetryConfig, TelemetryGuard};
use tokio::net::TcpListener;

use crate::app::{self, StartupError};
use crate::config::ShopConfig;

/// `service.version` of both instances by default (`APP_VERSION` overrides).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// `service.name` of the shop's instance by default (`OTEL_SERVICE_NAME` overrides).
pub const SERVICE_NAME: &str = "shop";

/// Everything the binary reads from the environment.
#[derive(Debug)]
pub struct Settings {
    /// The shop's telemetry (`OTEL_*`, `APP_*`).
    pub telemetry: TelemetryConfig,
    /// The shop itself.
    pub shop: ShopConfig,
    /// Where payments go.
    pub payments: Payments,
    /// The embedded telemetry console (`APP_CONSOLE`, local persona only).
    pub console: ConsoleConfig,
}

/// Where the shop's payments go.
#[derive(Debug)]
pub enum Payments {
    /// `PAYMENTS_URL`: an external provider (or a simulator started elsewhere).
    External,
    /// No `PAYMENTS_URL`: the simulator in-process, configured from `PAYMENTS_SIM_*`, with the
    /// same `OTEL_*`/`APP_*` variables as the shop but always named `payments-sim`.
    InProcess(SimulatorConfig, Box<TelemetryConfig>),
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Reads the settings through `lookup` (a variable name → its value, if set).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let telemetry = TelemetryConfig::from_lookup(SERVICE_NAME, VERSION, &lookup)?;
        let shop = ShopConfig::from_lookup(telemetry.persona, &lookup)?;
        let console = ConsoleConfig::from_lookup(telemetry.persona, &lookup)?;
        let payments = if shop.payments.url.is_some() {
            Payments::External
        } else {
            let simulator = SimulatorConfig::from_lookup(&lookup)?;
            // The same variables, read once (the cloud persona asks the metadata server only
            // once); only the name differs.
            let mut simulator_telemetry = telemetry.clone();
            simulator_telemetry.service_name = payments_sim::service::SERVICE_NAME.to_owned();
            Payments::InProcess(simulator, Box::new(simulator_telemetry))
        };
        Ok(Self {
            telemetry,
            shop,
            payments,
            console,
        })
    }
}

/// Why start-up failed (everything but configuration errors already logged).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A configuration value cannot be used (the binary exits 2).
    #[error(transparent)]
    Config(ConfigError),
    /// Anything else (the binary exits 1).
    #[error("start-up failed: {0}")]
    Failed(String),
}

/// The shop (and its in-process simulator) listening, not yet serving.
#[derive(Debug)]
pub struct Started {
    /// The address the shop listens on (port `0` resolved).
    pub address: SocketAddr,
    /// The shop's telemetry instance.
    pub telemetry: Telemetry,
    servers: Vec<Server>,
}

impl Started {
    /// Serves until `shutdown` completes (or a server stops on its own), then drains and
    /// flushes within `budget`.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()>,
        budget: ShutdownBudget,
    ) -> Stopped {
        telemetry::serve::run(self.servers, shutdown, budget).await
    }
}

/// Starts telemetry (installed as the process's global subscriber), the in-process simulator
/// unless `PAYMENTS_URL` is set, opens the store, builds the app and binds the listener. On a
/// failure, whatever was started is flushed (within `budget`) before returning.
pub async fn start(settings: Settings, budget: ShutdownBudget) -> Result<Started, StartError> {
    // One console for both instances: the shop's and the simulator's spans meet in one store.
    let console = settings
        .console
        .enabled
        .then(|| Console::new(settings.console.limits));
    let mut builder = crate::observability::telemetry_builder(settings.telemetry);
    if let Some(console) = &console {
        let address = SocketAddr::new(settings.shop.host, settings.shop.port);
        builder = builder.export_tap(console.tap()).startup_field(
            "console.url",
            format!("http://{address}{}/", console::MOUNT),
        );
    }
    // Inside the runtime: the OTLP exporters need it.
    let (telemetry, guard) = builder
        .build()
        .map_err(|error| StartError::Failed(format!("cannot start telemetry: {error}")))?;
    telemetry.install_global_subscriber();
    let mut guards = vec![guard];
    match start_servers(
        settings.shop,
        settings.payments,
        &telemetry,
        console.as_ref(),
        &mut guards,
    )
    .await
    {
        Ok((address, servers)) => Ok(Started {
            address,
            telemetry,
            servers,
        }),
        Err(error) => {
            let flushes = guards
                .into_iter()
                .map(|guard| guard.shutdown_within(budget.total));
            futures_util::future::join_all(flushes).await;
            Err(error)
        }
    }
}

/// The servers in shutdown order: the shop, then the simulator. Each guard is moved into its
/// server once that exists; until then it stays in `guards` (flushed on failure).
async fn start_servers(
    mut config: ShopConfig,
    payments: Payments,
    telemetry: &Telemetry,
    console: Option<&Console>,
    guards: &mut Vec<TelemetryGuard>,
) -> Result<(SocketAddr, Vec<Server>), StartError> {
    let simulator = match payments {
        Payments::External => None,
        Payments::InProcess(simulator_config, telemetry_config) => {
            let (server, url) =
                start_simulator(&simulator_config, *telemetry_config, console, guards).await?;
            config.payments.url = Some(url);
            Some(server)
        }
    };
    let app = app::build(&config, telemetry)
        .await
        .map_err(|error| match error {
            StartupError::Config(error) => StartError::Config(error),
            error => {
                tracing::error!(error = %error, "start-up failed");
                StartError::Failed(error.to_string())
            }
        })?;
    let address = SocketAddr::new(config.host, config.port);
    let listener = TcpListener::bind(address).await.map_err(|error| {
        tracing::error!(server.address = %address.ip(), server.port = address.port(), error = %error, "cannot listen");
        StartError::Failed(format!("cannot listen on {address}: {error}"))
    })?;
    let local = listener.local_addr().unwrap_or(address);
    // The console is merged outside `observe_router`: its requests are not shop traffic.
    let app = match console {
        Some(console) => {
            let url = format!("http://{local}{}/", console::MOUNT);
            tracing::info!(server.address = %local.ip(), server.port = local.port(), console.url = %url, "listening");
            app.merge(console.router())
        }
        None => {
            tracing::info!(server.address = %local.ip(), server.port = local.port(), "listening");
            app
        }
    };
    let shop_guard = guards.remove(0);
    let mut servers = vec![Server::new(listener, app, shop_guard)];
    servers.extend(simulator);
    Ok((local, servers))
}

/// The simulator on 127.0.0.1:0 with a telemetry instance of its own (not the global
/// subscriber: its request log lines reach stdout through the instance serving them); returns
/// its server and URL.
async fn start_simulator(
    config: &SimulatorConfig,
    telemetry_config: TelemetryConfig,
    console: Option<&Console>,
    guards: &mut Vec<TelemetryGuard>,
) -> Result<(Server, String), StartError> {
    let mut builder = Telemetry::builder(telemetry_config);
    if let Some(console) = console {
        builder = builder.export_tap(console.tap());
    }
    let (telemetry, guard) = builder.build().map_err(|error| {
        tracing::error!(error = %error, "cannot start the payment simulator's telemetry");
        StartError::Failed(error.to_string())
    })?;
    let listener = match TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(error = %error, "cannot listen for the payment simulator");
            guards.push(guard);
            return Err(StartError::Failed(error.to_string()));
        }
    };
    let url = match listener.local_addr() {
        Ok(address) => format!("http://{address}"),
        Err(error) => {
            guards.push(guard);
            return Err(StartError::Failed(error.to_string()));
        }
    };
    tracing::info!(url.full = %url, "payment simulator started in-process");
    let server =
        payments_sim::service::server(listener, &Simulator::new(config), &telemetry, guard);
    Ok((server, url))
}
