//! `payments-sim`: the payment simulator alone, on `PAYMENTS_SIM_PORT` (default 8090), until
//! SIGTERM or Ctrl-C, then drained and flushed within Cloud Run's 10 s grace period.
//!
//! Exit codes: 0 after a clean shutdown or `--help`, 2 for invalid configuration (one line on
//! stderr naming the variable) or an unknown argument, 1 for any other failure.

use std::io::Write;
use std::process::ExitCode;

use payments_sim::SimulatorConfig;
use payments_sim::service::{self, SERVICE_NAME};
use telemetry::TelemetryConfig;
use telemetry::serve::{ShutdownBudget, ShutdownSignals, block_on};

const EXIT_USAGE: u8 = 2;
const USAGE: &str = "usage: payments-sim [--help]\n\n\
    Serves the payment simulator (POST /v1/charges, /admin/*, /healthz, /metrics) until SIGTERM or Ctrl-C.\n\
    Settings are environment variables; empty counts as unset.\n";

fn main() -> ExitCode {
    match std::env::args_os().nth(1) {
        None => {}
        Some(arg) if arg == "--help" || arg == "-h" => {
            let help = format!(
                "{USAGE}\n{}\n{}",
                service::SETTINGS_HELP,
                telemetry::settings_help::SETTINGS_HELP
            );
            let _ = std::io::stdout().write_all(help.as_bytes());
            return ExitCode::SUCCESS;
        }
        Some(arg) => {
            eprintln!(
                "{SERVICE_NAME}: unknown argument {:?}\n{USAGE}(--help lists the settings)",
                arg.to_string_lossy()
            );
            return ExitCode::from(EXIT_USAGE);
        }
    }
    let configs = TelemetryConfig::from_env(SERVICE_NAME, env!("CARGO_PKG_VERSION"))
        .and_then(|telemetry| Ok((telemetry, SimulatorConfig::from_env()?)));
    let (telemetry_config, config) = match configs {
        Ok(configs) => configs,
        Err(error) => {
            eprintln!("{SERVICE_NAME}: {error}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let run = async {
        let signals = match ShutdownSignals::install() {
            Ok(signals) => signals,
            Err(error) => {
                eprintln!("{SERVICE_NAME}: cannot install the signal handlers: {error}");
                return ExitCode::FAILURE;
            }
        };
        service::run(
            telemetry_config,
            config,
            signals.received(),
            ShutdownBudget::CLOUD_RUN,
        )
        .await
    };
    block_on(run).unwrap_or_else(|error| {
        eprintln!("{SERVICE_NAME}: cannot start the async runtime: {error}");
        ExitCode::FAILURE
    })
}
