//! `shop`: reads its configuration, starts telemetry, serves until SIGTERM or Ctrl-C, then
//! drains in-flight requests and flushes telemetry within Cloud Run's 10 s grace period.
//!
//! Without `PAYMENTS_URL`, the shop starts the payment simulator in-process on an ephemeral
//! loopback port, with a telemetry instance of its own (`service.name` `payments-sim`), and
//! stops it after the shop drained. `shop payments-sim` runs the simulator alone on
//! `PAYMENTS_SIM_PORT` (default 8090), with the same shutdown.
//!
//! Exit codes: 0 after a clean shutdown, 2 for invalid configuration (one line on stderr
//! naming the variable) or an unknown command, 1 for any other start-up or serving failure.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use shop::app::{self, StartupError};
use shop::config::ShopConfig;
use shop::payments::simulator::{self, RunningSimulator, Simulator, SimulatorConfig};
use telemetry::config::ConfigError;
use telemetry::log_sink::LogSink;
use telemetry::{Telemetry, TelemetryConfig, TelemetryGuard};
use tokio::net::TcpListener;
use tokio::time::Instant;

/// Everything after the shutdown signal must fit in Cloud Run's 10 s grace period.
const SHUTDOWN_BUDGET: Duration = Duration::from_millis(9_500);
/// In-flight requests get this long to finish; the rest of the budget flushes telemetry.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(8);
/// Blocking threads still running when `run` returns are abandoned after this long.
const RUNTIME_SHUTDOWN_TIMEOUT: Duration = Duration::from_millis(200);

const EXIT_FAILURE: u8 = 1;
const EXIT_CONFIG: u8 = 2;

const VERSION: &str = env!("CARGO_PKG_VERSION");
/// `service.name` of the payment simulator's telemetry instance.
const SIMULATOR_SERVICE_NAME: &str = "payments-sim";
const USAGE: &str = "usage: shop [payments-sim]\n  \
    (no command)   serve the shop (and the payment simulator in-process unless PAYMENTS_URL is set)\n  \
    payments-sim   serve only the payment simulator, on PAYMENTS_SIM_PORT (default 8090)";

/// What the binary was asked to run (its only argument).
enum Command {
    Shop,
    PaymentsSimulator,
}

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let command = match args.next() {
        None => Command::Shop,
        Some(arg) if arg == "payments-sim" => Command::PaymentsSimulator,
        Some(_) => return usage(),
    };
    if args.next().is_some() {
        return usage();
    }
    match command {
        Command::Shop => shop_main(),
        Command::PaymentsSimulator => simulator_main(),
    }
}

fn usage() -> ExitCode {
    eprintln!("{USAGE}");
    ExitCode::from(EXIT_CONFIG)
}

fn shop_main() -> ExitCode {
    let telemetry_config = match TelemetryConfig::from_env("shop", VERSION) {
        Ok(config) => config,
        Err(error) => return config_failure(&error),
    };
    let shop_config = match ShopConfig::from_env(telemetry_config.persona) {
        Ok(config) => config,
        Err(error) => return config_failure(&error),
    };
    let payments = match payments_from_env(&shop_config) {
        Ok(payments) => payments,
        Err(error) => return config_failure(&error),
    };
    block_on(run(telemetry_config, shop_config, payments))
}

fn simulator_main() -> ExitCode {
    let telemetry_config = match TelemetryConfig::from_env(SIMULATOR_SERVICE_NAME, VERSION) {
        Ok(config) => config,
        Err(error) => return config_failure(&error),
    };
    let config = match SimulatorConfig::from_env() {
        Ok(config) => config,
        Err(error) => return config_failure(&error),
    };
    block_on(run_simulator(telemetry_config, config))
}

/// Runs `future` on a new multi-threaded runtime, then abandons its leftover blocking threads.
fn block_on(future: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("shop: cannot start the async runtime: {error}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let code = runtime.block_on(future);
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN_TIMEOUT);
    code
}

/// Where the shop's payments go.
enum Payments {
    /// `PAYMENTS_URL`: an external provider (or a simulator started elsewhere).
    External,
    /// No `PAYMENTS_URL`: the simulator in-process, with its telemetry configuration.
    InProcess(SimulatorConfig, Box<TelemetryConfig>),
}

/// `PAYMENTS_URL` set and non-empty → external; else the in-process simulator, configured from
/// `PAYMENTS_SIM_*` and the same `OTEL_*`/`APP_*` variables as the shop, always named
/// `payments-sim` (so one trace shows two services even when `OTEL_SERVICE_NAME` is set).
fn payments_from_env(config: &ShopConfig) -> Result<Payments, ConfigError> {
    if config.payments.url.is_some() {
        return Ok(Payments::External);
    }
    let simulator = SimulatorConfig::from_env()?;
    let mut telemetry = TelemetryConfig::from_env(SIMULATOR_SERVICE_NAME, VERSION)?;
    telemetry.service_name = SIMULATOR_SERVICE_NAME.to_owned();
    Ok(Payments::InProcess(simulator, Box::new(telemetry)))
}

/// The in-process simulator: its server and its telemetry instance.
struct InProcessSimulator {
    running: RunningSimulator,
    guard: TelemetryGuard,
    log_sink: LogSink,
}

/// Starts the simulator on 127.0.0.1:0 with a telemetry instance of its own (not the global
/// subscriber: its request log lines reach stdout through the instance serving them) and
/// returns it; its URL is `running.url`.
async fn start_simulator(
    config: &SimulatorConfig,
    telemetry_config: TelemetryConfig,
) -> Result<InProcessSimulator, Failure> {
    let (telemetry, guard) = Telemetry::init(telemetry_config).map_err(|error| {
        tracing::error!(error = %error, "cannot start the payment simulator's telemetry");
        Failure::Other
    })?;
    let listener = match TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(error = %error, "cannot listen for the payment simulator");
            guard.shutdown().await;
            return Err(Failure::Other);
        }
    };
    match simulator::spawn(listener, Simulator::new(config), &telemetry).await {
        Ok(running) => {
            tracing::info!(url = %running.url, "payment simulator started in-process");
            Ok(InProcessSimulator {
                running,
                guard,
                log_sink: telemetry.log_sink().clone(),
            })
        }
        Err(error) => {
            tracing::error!(error = %error, "cannot serve the payment simulator");
            guard.shutdown().await;
            Err(Failure::Other)
        }
    }
}

impl InProcessSimulator {
    /// Stops the server (hangs and delays end at once), then flushes its telemetry, by
    /// `deadline`.
    async fn stop(self, deadline: Instant) {
        if tokio::time::timeout_at(deadline, self.running.stop())
            .await
            .is_err()
        {
            tracing::warn!("the payment simulator did not stop in time; abandoning it");
        }
        flush(self.guard, self.log_sink, deadline).await;
    }
}

/// Configuration errors are the operator's to fix: one line naming the variable, exit 2.
fn config_failure(error: &ConfigError) -> ExitCode {
    eprintln!("shop: {error}");
    ExitCode::from(EXIT_CONFIG)
}

async fn run(
    telemetry_config: TelemetryConfig,
    config: ShopConfig,
    payments: Payments,
) -> ExitCode {
    // Inside the runtime: the OTLP exporters need it.
    let (telemetry, guard) = match shop::observability::telemetry_builder(telemetry_config).build()
    {
        Ok(instance) => instance,
        Err(error) => {
            eprintln!("shop: cannot start telemetry: {error}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    telemetry.install_global_subscriber();
    let log_sink = telemetry.log_sink().clone();

    let simulator = match payments {
        Payments::External => None,
        Payments::InProcess(config, telemetry_config) => {
            match start_simulator(&config, *telemetry_config).await {
                Ok(simulator) => Some(simulator),
                Err(_) => {
                    guard.shutdown().await;
                    return ExitCode::from(EXIT_FAILURE);
                }
            }
        }
    };
    let mut config = config;
    if let Some(simulator) = &simulator {
        config.payments.url = Some(simulator.running.url.clone());
    }

    let started = start(&config, &telemetry).await;
    let (listener, app, signals) = match started {
        Ok(started) => started,
        Err(failure) => {
            let deadline = Instant::now() + SHUTDOWN_BUDGET;
            stop_all(simulator, guard, log_sink, deadline).await;
            return match failure {
                Failure::Config(error) => config_failure(&error),
                Failure::Other => ExitCode::from(EXIT_FAILURE),
            };
        }
    };

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut server = tokio::spawn(shop::serve(listener, app, async move {
        let _ = stopped.await;
    }));
    let mut code = ExitCode::SUCCESS;
    let deadline = tokio::select! {
        finished = &mut server => {
            // The server stopped without being asked to: that is a failure.
            report_server_end(finished);
            code = ExitCode::from(EXIT_FAILURE);
            Instant::now() + SHUTDOWN_BUDGET
        }
        () = signals.received() => {
            let deadline = Instant::now() + SHUTDOWN_BUDGET;
            tracing::info!(drain_timeout_ms = DRAIN_TIMEOUT.as_millis() as u64, "shutting down: draining in-flight requests");
            let _ = stop.send(());
            match tokio::time::timeout(DRAIN_TIMEOUT, &mut server).await {
                Ok(finished) => {
                    if !report_server_end(finished) {
                        code = ExitCode::from(EXIT_FAILURE);
                    }
                }
                Err(_) => {
                    tracing::warn!("in-flight requests did not finish within the drain timeout; abandoning them");
                    server.abort();
                }
            }
            deadline
        }
    };

    // The simulator outlives the shop's drain (in-flight checkouts still call it); then both
    // flush with whatever the grace period has left.
    stop_all(simulator, guard, log_sink, deadline).await;
    code
}

/// Stops the in-process simulator (if any) and flushes both telemetry instances, in parallel,
/// by `deadline`.
async fn stop_all(
    simulator: Option<InProcessSimulator>,
    guard: TelemetryGuard,
    log_sink: LogSink,
    deadline: Instant,
) {
    let simulator = async {
        if let Some(simulator) = simulator {
            simulator.stop(deadline).await;
        }
    };
    tokio::join!(simulator, flush(guard, log_sink, deadline));
}

/// Flushes traces, logs and metrics of one instance by `deadline`; if the exporters are stuck,
/// at least writes out its stdout buffer.
async fn flush(guard: TelemetryGuard, log_sink: LogSink, deadline: Instant) {
    if tokio::time::timeout_at(deadline, guard.shutdown())
        .await
        .is_err()
    {
        log_sink.close();
    }
}

/// `shop payments-sim`: the simulator alone on `PAYMENTS_SIM_PORT`, until SIGTERM or Ctrl-C.
async fn run_simulator(telemetry_config: TelemetryConfig, config: SimulatorConfig) -> ExitCode {
    let address = config.listen_address(telemetry_config.persona);
    let (telemetry, guard) = match Telemetry::init(telemetry_config) {
        Ok(instance) => instance,
        Err(error) => {
            eprintln!("shop: cannot start telemetry: {error}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    telemetry.install_global_subscriber();
    let log_sink = telemetry.log_sink().clone();

    let started = async {
        let signals = ShutdownSignals::install().map_err(|error| {
            tracing::error!(error = %error, "cannot install the signal handlers");
        })?;
        let listener = TcpListener::bind(address).await.map_err(|error| {
            tracing::error!(address = %address, error = %error, "cannot listen");
        })?;
        let local = listener.local_addr().unwrap_or(address);
        let running = simulator::spawn(listener, Simulator::new(&config), &telemetry)
            .await
            .map_err(|error| tracing::error!(error = %error, "cannot serve"))?;
        let admin_access = if config.admin_token.is_some() {
            "bearer_token"
        } else {
            "loopback_only"
        };
        tracing::info!(address = %local, admin_access, "listening");
        Ok::<_, ()>((signals, running))
    };
    let Ok((signals, running)) = started.await else {
        flush(guard, log_sink, Instant::now() + SHUTDOWN_BUDGET).await;
        return ExitCode::from(EXIT_FAILURE);
    };

    signals.received().await;
    let deadline = Instant::now() + SHUTDOWN_BUDGET;
    tracing::info!(
        drain_timeout_ms = DRAIN_TIMEOUT.as_millis() as u64,
        "shutting down: draining in-flight requests"
    );
    let mut code = ExitCode::SUCCESS;
    match tokio::time::timeout(DRAIN_TIMEOUT, running.stop()).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            tracing::error!(error = %error, "server failed");
            code = ExitCode::from(EXIT_FAILURE);
        }
        Err(_) => {
            tracing::warn!(
                "in-flight requests did not finish within the drain timeout; abandoning them"
            );
        }
    }
    flush(guard, log_sink, deadline).await;
    code
}

/// Why start-up failed (already reported, except configuration errors).
enum Failure {
    Config(ConfigError),
    Other,
}

/// Opens the store, builds the app, installs the signal handlers and binds the listener.
async fn start(
    config: &ShopConfig,
    telemetry: &Telemetry,
) -> Result<(TcpListener, axum::Router, ShutdownSignals), Failure> {
    let app = match app::build(config, telemetry).await {
        Ok(app) => app,
        Err(StartupError::Config(error)) => return Err(Failure::Config(error)),
        Err(error) => {
            tracing::error!(error = %error, "start-up failed");
            return Err(Failure::Other);
        }
    };
    // Before the first request can be answered, so an early SIGTERM still drains cleanly.
    let signals = ShutdownSignals::install().map_err(|error| {
        tracing::error!(error = %error, "cannot install the signal handlers");
        Failure::Other
    })?;
    let address = SocketAddr::new(config.host, config.port);
    let listener = TcpListener::bind(address).await.map_err(|error| {
        tracing::error!(address = %address, error = %error, "cannot listen");
        Failure::Other
    })?;
    let local = listener.local_addr().unwrap_or(address);
    tracing::info!(address = %local, "listening");
    Ok((listener, app, signals))
}

/// Logs how the server task ended; returns whether that was a clean stop.
fn report_server_end(finished: Result<std::io::Result<()>, tokio::task::JoinError>) -> bool {
    match finished {
        Ok(Ok(())) => true,
        Ok(Err(error)) => {
            tracing::error!(error = %error, "server failed");
            false
        }
        Err(error) => {
            tracing::error!(error = %error, "server task failed");
            false
        }
    }
}

/// SIGTERM (Cloud Run, Kubernetes, `docker stop`) and SIGINT (Ctrl-C), registered up front.
struct ShutdownSignals {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    #[cfg(unix)]
    fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    #[cfg(not(unix))]
    fn install() -> std::io::Result<Self> {
        Ok(Self {})
    }

    /// Completes when the first signal arrives.
    #[cfg(unix)]
    async fn received(mut self) {
        tokio::select! {
            _ = self.terminate.recv() => tracing::info!(signal = "SIGTERM", "signal received"),
            _ = self.interrupt.recv() => tracing::info!(signal = "SIGINT", "signal received"),
        }
    }

    #[cfg(not(unix))]
    async fn received(self) {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
