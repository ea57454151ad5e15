//! The console's settings (`APP_CONSOLE*`), read through the library's [`EnvReader`].

use std::net::SocketAddr;
use std::time::Duration;

use telemetry::config::{ConfigError, Persona};
use telemetry::env::EnvReader;

/// Default `APP_CONSOLE_MAX_SPANS`.
pub const DEFAULT_MAX_SPANS: usize = 20_000;
/// Default `APP_CONSOLE_MAX_LOGS`.
pub const DEFAULT_MAX_LOGS: usize = 20_000;
/// Default `APP_CONSOLE_MAX_BYTES` (64 MiB, spans and log records together).
pub const DEFAULT_MAX_BYTES: usize = 64 * 1024 * 1024;
/// Default `APP_CONSOLE_METRIC_INTERVAL` (how often the console gets the metrics).
pub const DEFAULT_METRIC_INTERVAL: Duration = Duration::from_secs(5);
/// The active-series budget per instance (docs/telemetry.md: at most 1,000).
pub const SERIES_BUDGET: usize = 1_000;

/// Bounds of the console's in-memory store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// At most this many spans are kept (`APP_CONSOLE_MAX_SPANS`); the oldest go first.
    pub max_spans: usize,
    /// At most this many log records (`APP_CONSOLE_MAX_LOGS`); the oldest go first.
    pub max_logs: usize,
    /// At most this many bytes (an estimate of the stored records' memory) for spans and logs
    /// together (`APP_CONSOLE_MAX_BYTES`); beyond it the oldest record of either goes first.
    pub max_bytes: usize,
    /// How often the instance hands its metrics to the console (`APP_CONSOLE_METRIC_INTERVAL`, ms).
    pub metric_interval: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_spans: DEFAULT_MAX_SPANS,
            max_logs: DEFAULT_MAX_LOGS,
            max_bytes: DEFAULT_MAX_BYTES,
            metric_interval: DEFAULT_METRIC_INTERVAL,
        }
    }
}

impl Limits {
    /// Reads `APP_CONSOLE_MAX_SPANS`, `APP_CONSOLE_MAX_LOGS`, `APP_CONSOLE_MAX_BYTES` and
    /// `APP_CONSOLE_METRIC_INTERVAL`.
    pub fn from_reader(env: &EnvReader<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            max_spans: env.quantity(
                "APP_CONSOLE_MAX_SPANS",
                DEFAULT_MAX_SPANS,
                1..=10_000_000,
                "spans",
            )?,
            max_logs: env.quantity(
                "APP_CONSOLE_MAX_LOGS",
                DEFAULT_MAX_LOGS,
                1..=10_000_000,
                "log records",
            )?,
            max_bytes: env.quantity(
                "APP_CONSOLE_MAX_BYTES",
                DEFAULT_MAX_BYTES,
                64 * 1024..=16 * 1024 * 1024 * 1024,
                "bytes",
            )?,
            metric_interval: env.millis(
                "APP_CONSOLE_METRIC_INTERVAL",
                DEFAULT_METRIC_INTERVAL,
                100..=600_000,
            )?,
        })
    }
}

/// The embedded console of a service (`APP_CONSOLE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleConfig {
    /// `APP_CONSOLE=on|off`: on by default in the local persona; never in the cloud persona.
    pub enabled: bool,
    /// The store's bounds.
    pub limits: Limits,
}

impl ConsoleConfig {
    /// Reads `APP_CONSOLE` and the limits, with the defaults of `persona`. `APP_CONSOLE=on` in
    /// the cloud persona stops start-up (the console is a local debugging surface).
    pub fn from_reader(persona: Persona, env: &EnvReader<'_>) -> Result<Self, ConfigError> {
        let requested = env.choice("APP_CONSOLE", &[("on", true), ("off", false)])?;
        let enabled = match (persona, requested) {
            (Persona::Cloud, Some(true)) => {
                return Err(ConfigError::new(
                    "APP_CONSOLE",
                    "on",
                    "off or unset in the cloud persona (the console is for local runs only)",
                ));
            }
            (Persona::Cloud, _) => false,
            (Persona::Local, requested) => requested.unwrap_or(true),
        };
        Ok(Self {
            enabled,
            limits: Limits::from_reader(env)?,
        })
    }

    /// [`ConsoleConfig::from_reader`] over a lookup function (tests pass a map).
    pub fn from_lookup(
        persona: Persona,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        Self::from_reader(persona, &EnvReader::new(lookup))
    }
}

/// Addresses of the standalone console (`console` binary).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandaloneConfig {
    /// The UI and JSON API (`APP_CONSOLE_ADDR`, default `127.0.0.1:18888`).
    pub ui: SocketAddr,
    /// OTLP/gRPC (`APP_CONSOLE_OTLP_GRPC_ADDR`, default `127.0.0.1:4317`).
    pub otlp_grpc: SocketAddr,
    /// OTLP/HTTP (`APP_CONSOLE_OTLP_HTTP_ADDR`, default `127.0.0.1:4318`).
    pub otlp_http: SocketAddr,
    /// The store's bounds.
    pub limits: Limits,
}

/// Default `APP_CONSOLE_ADDR` of the standalone console.
pub const DEFAULT_UI_ADDR: &str = "127.0.0.1:18888";
/// Default `APP_CONSOLE_OTLP_GRPC_ADDR`.
pub const DEFAULT_OTLP_GRPC_ADDR: &str = "127.0.0.1:4317";
/// Default `APP_CONSOLE_OTLP_HTTP_ADDR`.
pub const DEFAULT_OTLP_HTTP_ADDR: &str = "127.0.0.1:4318";

impl StandaloneConfig {
    /// Reads `APP_CONSOLE_ADDR`, `APP_CONSOLE_OTLP_GRPC_ADDR`, `APP_CONSOLE_OTLP_HTTP_ADDR` and
    /// the limits.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = EnvReader::new(lookup);
        let address = |variable: &'static str, default: &str| -> Result<SocketAddr, ConfigError> {
            Ok(env
                .parse(
                    variable,
                    "an IP address and port, e.g. 127.0.0.1:4318 (port 0 picks a free one)",
                    |raw| raw.parse::<SocketAddr>().ok(),
                )?
                .unwrap_or_else(|| default.parse().unwrap_or_else(|e| unreachable!("{e}"))))
        };
        Ok(Self {
            ui: address("APP_CONSOLE_ADDR", DEFAULT_UI_ADDR)?,
            otlp_grpc: address("APP_CONSOLE_OTLP_GRPC_ADDR", DEFAULT_OTLP_GRPC_ADDR)?,
            otlp_http: address("APP_CONSOLE_OTLP_HTTP_ADDR", DEFAULT_OTLP_HTTP_ADDR)?,
            limits: Limits::from_reader(&env)?,
        })
    }
}

/// `--help` text of the console's variables.
pub const SETTINGS_HELP: &str = "\
Embedded console (the shop, local persona):
  APP_CONSOLE=on|off                 serve /_console/ to loopback clients (default on locally; never in the cloud persona)
Store bounds (embedded and standalone):
  APP_CONSOLE_MAX_SPANS              spans kept, oldest evicted first (default 20000)
  APP_CONSOLE_MAX_LOGS               log records kept (default 20000)
  APP_CONSOLE_MAX_BYTES              estimated bytes of spans + logs kept (default 67108864 = 64 MiB)
  APP_CONSOLE_METRIC_INTERVAL        how often an instance hands its metrics to the console, ms (default 5000)
Standalone (`console` binary):
  APP_CONSOLE_ADDR                   UI and JSON API (default 127.0.0.1:18888; only loopback clients are served)
  APP_CONSOLE_OTLP_GRPC_ADDR         OTLP/gRPC receiver (default 127.0.0.1:4317)
  APP_CONSOLE_OTLP_HTTP_ADDR         OTLP/HTTP protobuf receiver (default 127.0.0.1:4318)
";

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn read(persona: Persona, pairs: &[(&str, &str)]) -> Result<ConsoleConfig, ConfigError> {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        ConsoleConfig::from_lookup(persona, |k| map.get(k).cloned())
    }

    #[test]
    fn on_by_default_locally_off_in_the_cloud() {
        assert!(read(Persona::Local, &[]).unwrap().enabled);
        assert!(
            !read(Persona::Local, &[("APP_CONSOLE", "off")])
                .unwrap()
                .enabled
        );
        assert!(!read(Persona::Cloud, &[]).unwrap().enabled);
        assert!(
            !read(Persona::Cloud, &[("APP_CONSOLE", "off")])
                .unwrap()
                .enabled
        );
        let error = read(Persona::Cloud, &[("APP_CONSOLE", "on")]).unwrap_err();
        assert_eq!(error.variable, "APP_CONSOLE");
    }

    #[test]
    fn bad_values_name_their_variable() {
        assert_eq!(
            read(Persona::Local, &[("APP_CONSOLE", "yes")])
                .unwrap_err()
                .variable,
            "APP_CONSOLE"
        );
        assert_eq!(
            read(Persona::Local, &[("APP_CONSOLE_MAX_SPANS", "0")])
                .unwrap_err()
                .variable,
            "APP_CONSOLE_MAX_SPANS"
        );
        assert_eq!(
            read(Persona::Local, &[("APP_CONSOLE_MAX_BYTES", "lots")])
                .unwrap_err()
                .variable,
            "APP_CONSOLE_MAX_BYTES"
        );
        let limits = read(Persona::Local, &[("APP_CONSOLE_MAX_LOGS", "5")])
            .unwrap()
            .limits;
        assert_eq!(limits.max_logs, 5);
        let standalone = StandaloneConfig::from_lookup(|k| {
            (k == "APP_CONSOLE_OTLP_HTTP_ADDR").then(|| "0.0.0.0:9".to_owned())
        })
        .unwrap();
        assert_eq!(standalone.otlp_http.port(), 9);
        let error = StandaloneConfig::from_lookup(|k| {
            (k == "APP_CONSOLE_ADDR").then(|| "localhost".to_owned())
        })
        .unwrap_err();
        assert_eq!(error.variable, "APP_CONSOLE_ADDR");
    }
}
