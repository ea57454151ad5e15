//! `shop`: reads its settings, then runs [`shop::run`] until SIGTERM or Ctrl-C, which drains
//! in-flight requests and flushes telemetry within Cloud Run's 10 s grace period.
//! `shop payments-sim` runs the payment simulator alone (as the `payments-sim` binary does);
//! `shop console` the standalone telemetry console (as the `console` binary does).
//!
//! Exit codes: 0 after a clean shutdown or `--help`, 2 for invalid configuration (one line on
//! stderr naming the variable) or an unknown argument, 1 for any other start-up or serving
//! failure.

use std::io::Write;
use std::process::ExitCode;

use payments_sim::SimulatorConfig;
use shop::cli::{self, Command};
use shop::run::{self, Settings, StartError};
use telemetry::TelemetryConfig;
use telemetry::config::ConfigError;
use telemetry::serve::{ShutdownBudget, ShutdownSignals, block_on};

const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let command = match cli::parse(std::env::args_os().skip(1)) {
        Ok(command) => command,
        Err(message) => {
            eprintln!("{message}(--help lists the settings)");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let code = match command {
        Command::Help => {
            let _ = std::io::stdout().write_all(cli::help().as_bytes());
            return ExitCode::SUCCESS;
        }
        Command::Shop => match Settings::from_env() {
            Ok(settings) => block_on(shop(settings)),
            Err(error) => return config_failure(&error),
        },
        Command::Console => return console::standalone::main("shop console", &[]),
        Command::PaymentsSimulator => {
            let name = payments_sim::service::SERVICE_NAME;
            let configs = TelemetryConfig::from_env(name, run::VERSION)
                .and_then(|telemetry| Ok((telemetry, SimulatorConfig::from_env()?)));
            match configs {
                Ok((telemetry, config)) => block_on(async {
                    let Some(signals) = signals() else {
                        return ExitCode::FAILURE;
                    };
                    let budget = ShutdownBudget::CLOUD_RUN;
                    payments_sim::service::run(telemetry, config, signals.received(), budget).await
                }),
                Err(error) => return config_failure(&error),
            }
        }
    };
    code.unwrap_or_else(|error| {
        eprintln!("shop: cannot start the async runtime: {error}");
        ExitCode::FAILURE
    })
}

async fn shop(settings: Settings) -> ExitCode {
    // Before the first request can be answered, so an early SIGTERM still drains cleanly.
    let Some(signals) = signals() else {
        return ExitCode::FAILURE;
    };
    let budget = ShutdownBudget::CLOUD_RUN;
    match run::start(settings, budget).await {
        Ok(started) => {
            if started.serve(signals.received(), budget).await.failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(StartError::Config(error)) => config_failure(&error),
        Err(error @ StartError::Failed(_)) => {
            eprintln!("shop: {error}");
            ExitCode::FAILURE
        }
    }
}

fn signals() -> Option<ShutdownSignals> {
    ShutdownSignals::install()
        .inspect_err(|error| eprintln!("shop: cannot install the signal handlers: {error}"))
        .ok()
}

/// Configuration errors are the operator's to fix: one line naming the variable, exit 2.
fn config_failure(error: &ConfigError) -> ExitCode {
    eprintln!("shop: {error}");
    ExitCode::from(EXIT_USAGE)
}
