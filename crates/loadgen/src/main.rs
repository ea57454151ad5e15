//! `loadgen`: a load generator for the shop (and any HTTP/1.1 service). Weighted user
//! journeys from a scenario, an open (arrival-rate) or closed (users) model without
//! coordinated omission, one W3C trace per journey, live progress, per-route HDR percentiles,
//! JSON output and CI thresholds. See docs/loadgen.md.

mod cli;
mod duration;
mod http1;
mod journey;
mod progress;
mod report;
mod runner;
mod scenario;
mod schedule;
mod stats;
mod target;
mod threshold;
mod trace;

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use telemetry::log_sink::LogSink;
use telemetry::{Telemetry, TelemetryConfig, TelemetryGuard};

use crate::cli::{Command, Options};
use crate::report::Summary;
use crate::runner::{Plan, Run};
use crate::scenario::Scenario;
use crate::target::Target;
use crate::threshold::Threshold;

/// How long the first connection to the target may take before it counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Exit statuses (documented in `--help` and docs/loadgen.md).
const EXIT_BREACHED: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_UNREACHABLE: u8 = 3;
const EXIT_INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    let command = match cli::parse(std::env::args().skip(1)) {
        Ok(command) => command,
        Err(error) => return fail(EXIT_USAGE, &error),
    };
    let options = match command {
        Command::Help => return print(cli::USAGE),
        Command::Version => return print(&format!("loadgen {}\n", env!("CARGO_PKG_VERSION"))),
        Command::PrintScenario => return print(scenario::DEFAULT_TOML),
        Command::Run(options) => *options,
    };
    // Everything that can be wrong with the input is checked before the runtime starts.
    let scenario = match &options.scenario {
        None => Scenario::default_scenario(),
        Some(path) => match std::fs::read_to_string(path) {
            Err(error) => {
                return fail(
                    EXIT_USAGE,
                    &format!("cannot read scenario file {path}: {error}"),
                );
            }
            Ok(text) => match Scenario::parse(&text) {
                Ok(scenario) => scenario,
                Err(error) => {
                    let error = error.replace('\n', " ");
                    return fail(
                        EXIT_USAGE,
                        &format!("invalid scenario file {path}: {error}"),
                    );
                }
            },
        },
    };
    let thresholds: Vec<Threshold> = match options
        .thresholds
        .iter()
        .map(|raw| Threshold::parse(raw, &scenario.routes))
        .collect()
    {
        Ok(thresholds) => thresholds,
        Err(error) => return fail(EXIT_USAGE, &error),
    };
    let target = match Target::parse(&options.target) {
        Ok(target) => target,
        Err(error) => return fail(EXIT_USAGE, &error),
    };
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(threads) = options.threads {
        runtime.worker_threads(threads);
    }
    let runtime = match runtime.build() {
        Ok(runtime) => runtime,
        Err(error) => return fail(EXIT_USAGE, &format!("cannot start the runtime: {error}")),
    };
    runtime.block_on(run(options, scenario, thresholds, target))
}

async fn run(
    options: Options,
    scenario: Scenario,
    thresholds: Vec<Threshold>,
    target: Target,
) -> ExitCode {
    let address = match target.resolve().await {
        Ok(address) => address,
        Err(error) => return fail(EXIT_UNREACHABLE, &error),
    };
    let mut probe = http1::Connection::new(address);
    if let Err(error) = probe.connect(CONNECT_TIMEOUT).await {
        return fail(
            EXIT_UNREACHABLE,
            &format!("cannot connect to {} ({address}): {error}", target.url),
        );
    }
    drop(probe);
    let (exporter, guard) = match export(&target) {
        Ok(export) => export,
        Err(error) => return fail(EXIT_USAGE, &error),
    };
    let think = options.think.unwrap_or(scenario.think);
    let run = Run::new(Plan {
        target,
        address,
        scenario,
        model: options.model,
        limit: options.limit,
        think,
        timeout: options.timeout,
        exporter,
    });
    let progress = (!options.json && std::io::stdout().is_terminal())
        .then(|| progress::Progress::start(Arc::clone(&run)));
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let finished = run.execute(interrupt).await;
    if let Some(progress) = progress {
        progress.finish();
    }
    if let Some(guard) = guard {
        guard.shutdown().await;
    }
    let summary = Summary::build(
        &run,
        &finished,
        &thresholds,
        options.trace_url_template.as_deref(),
    );
    let output = if options.json {
        match serde_json::to_string_pretty(&summary) {
            Ok(json) => json + "\n",
            Err(error) => {
                return fail(
                    EXIT_USAGE,
                    &format!("cannot write the JSON summary: {error}"),
                );
            }
        }
    } else {
        summary.to_text()
    };
    let _ = print(&output);
    let breaches = summary.breaches();
    let mut stderr = std::io::stderr().lock();
    for breach in &breaches {
        let _ = writeln!(stderr, "loadgen: {breach}");
    }
    if finished.interrupted {
        ExitCode::from(EXIT_INTERRUPTED)
    } else if !breaches.is_empty() {
        ExitCode::from(EXIT_BREACHED)
    } else {
        ExitCode::SUCCESS
    }
}

/// The span exporter when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (the telemetry crate's
/// pipeline; its log lines go to stderr so stdout stays the report's).
fn export(target: &Target) -> Result<(Option<trace::Exporter>, Option<TelemetryGuard>), String> {
    let config = TelemetryConfig::from_env("loadgen", env!("CARGO_PKG_VERSION"))
        .map_err(|error| error.to_string())?;
    if !config.otlp_enabled() {
        return Ok((None, None));
    }
    let (telemetry, guard) = Telemetry::builder(config)
        .log_sink(LogSink::writer(std::io::stderr()))
        .build()
        .map_err(|error| error.to_string())?;
    let exporter = trace::Exporter::new(telemetry, &target.authority, &target.url);
    Ok((Some(exporter), Some(guard)))
}

fn print(text: &str) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
    ExitCode::SUCCESS
}

fn fail(code: u8, message: &str) -> ExitCode {
    let _ = writeln!(std::io::stderr().lock(), "loadgen: {message}");
    ExitCode::from(code)
}
