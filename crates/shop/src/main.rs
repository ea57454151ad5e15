//! `shop`: reads its configuration, starts telemetry, serves until SIGTERM or Ctrl-C, then
//! drains in-flight requests and flushes telemetry within Cloud Run's 10 s grace period.
//!
//! Exit codes: 0 after a clean shutdown, 2 for invalid configuration (one line on stderr
//! naming the variable), 1 for any other start-up or serving failure.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use shop::app::{self, StartupError};
use shop::config::ShopConfig;
use telemetry::config::ConfigError;
use telemetry::{Telemetry, TelemetryConfig};
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

fn main() -> ExitCode {
    let telemetry_config = match TelemetryConfig::from_env("shop", env!("CARGO_PKG_VERSION")) {
        Ok(config) => config,
        Err(error) => return config_failure(&error),
    };
    let shop_config = match ShopConfig::from_env(telemetry_config.persona) {
        Ok(config) => config,
        Err(error) => return config_failure(&error),
    };
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
    let code = runtime.block_on(run(telemetry_config, shop_config));
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN_TIMEOUT);
    code
}

/// Configuration errors are the operator's to fix: one line naming the variable, exit 2.
fn config_failure(error: &ConfigError) -> ExitCode {
    eprintln!("shop: {error}");
    ExitCode::from(EXIT_CONFIG)
}

async fn run(telemetry_config: TelemetryConfig, config: ShopConfig) -> ExitCode {
    // Inside the runtime: the OTLP exporters need it.
    let (telemetry, guard) = match Telemetry::init(telemetry_config) {
        Ok(instance) => instance,
        Err(error) => {
            eprintln!("shop: cannot start telemetry: {error}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    telemetry.install_global_subscriber();

    let started = start(&config, &telemetry).await;
    let (listener, app, signals) = match started {
        Ok(started) => started,
        Err(Failure::Config(error)) => {
            guard.shutdown().await;
            return config_failure(&error);
        }
        Err(Failure::Other) => {
            guard.shutdown().await;
            return ExitCode::from(EXIT_FAILURE);
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

    // Flush traces, logs and metrics with whatever the grace period has left.
    let log_sink = telemetry.log_sink().clone();
    if tokio::time::timeout_at(deadline, guard.shutdown())
        .await
        .is_err()
    {
        // The exporters are stuck; at least write out the stdout buffer.
        log_sink.close();
    }
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
