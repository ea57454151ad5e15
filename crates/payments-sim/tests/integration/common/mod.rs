//! The harness of the simulator's tests: a simulator served on 127.0.0.1:0 with a telemetry
//! instance of its own (OTLP to an in-process receiver, log lines in memory).

#![allow(clippy::unwrap_used, unreachable_pub, dead_code)]

pub mod process;

use payments_sim::{Faults, RunningSimulator, Simulator, SimulatorConfig};
use telemetry::config::{OtlpProtocol, TelemetryConfig};
use telemetry::log_sink::LogSink;
use telemetry::testkit::{OtlpReceiver, install_test_subscriber};
use telemetry::{Telemetry, TelemetryGuard};
use tokio::net::TcpListener;

/// A payment simulator served on 127.0.0.1:0 with its own telemetry instance (`service.name`
/// `payments-sim`, OTLP to the given receiver, log lines in memory).
pub struct TestSimulator {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// Its knobs and counters.
    pub simulator: Simulator,
    /// The simulator's own instance (`telemetry.log_sink().captured()` has its log lines).
    pub telemetry: Telemetry,
    /// Call `guard.shutdown().await` to flush every exporter before reading the receiver.
    pub guard: TelemetryGuard,
    /// The server; `server.stop().await` closes it (hangs end), dropping it too.
    pub server: RunningSimulator,
}

impl TestSimulator {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Every JSON log line the simulator wrote so far.
    pub fn log_lines(&self) -> Vec<serde_json::Value> {
        parse_json_lines(&self.telemetry.log_sink().captured())
    }
}

/// A `payments-sim` telemetry instance for a test: OTLP to a fresh receiver, logs in memory.
pub async fn test_telemetry() -> (Telemetry, TelemetryGuard, OtlpReceiver) {
    let receiver = OtlpReceiver::start().await.unwrap();
    let (telemetry, guard) = instance(&receiver);
    (telemetry, guard, receiver)
}

fn instance(receiver: &OtlpReceiver) -> (Telemetry, TelemetryGuard) {
    install_test_subscriber();
    let config = TelemetryConfig::for_tests("payments-sim")
        .with_otlp(receiver.grpc_endpoint(), OtlpProtocol::Grpc);
    Telemetry::builder(config)
        .log_sink(LogSink::memory())
        .build()
        .unwrap()
}

/// Starts a payment simulator with `faults` (and no admin token), exporting to `receiver`.
pub async fn spawn_simulator(receiver: &OtlpReceiver, faults: Faults) -> TestSimulator {
    let config = SimulatorConfig {
        faults,
        ..SimulatorConfig::no_faults()
    };
    spawn_simulator_with(receiver, &config).await
}

/// Starts a payment simulator configured by `config`, exporting to `receiver`.
pub async fn spawn_simulator_with(
    receiver: &OtlpReceiver,
    config: &SimulatorConfig,
) -> TestSimulator {
    let (telemetry, guard) = instance(receiver);
    let simulator = Simulator::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = payments_sim::spawn(listener, simulator.clone(), &telemetry)
        .await
        .unwrap();
    TestSimulator {
        url: server.url.clone(),
        simulator,
        telemetry,
        guard,
        server,
    }
}

pub fn parse_json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"))
        })
        .collect()
}
