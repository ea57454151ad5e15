//! The simulator's configuration: its fault knobs at start, the admin token, where it listens.
//!
//! | variable | default | syntax |
//! |---|---|---|
//! | `PAYMENTS_SIM_ERROR_RATE` | `0` | a number between 0 and 1 |
//! | `PAYMENTS_SIM_DECLINE_RATE` | `0` | a number between 0 and 1 |
//! | `PAYMENTS_SIM_HANG_RATE` | `0` | a number between 0 and 1 |
//! | `PAYMENTS_SIM_LATENCY_MS` | `0` | `N` (always N ms) or `p50=N,p99=M` (log-normal) |
//! | `PAYMENTS_SIM_ADMIN_TOKEN` | — | ≥ 16 characters; `/admin` then requires `Authorization: Bearer …` |
//! | `PAYMENTS_SIM_PORT` | `8090` | TCP port of `shop payments-sim` |
//! | `APP_HOST` | persona's | listen address of `shop payments-sim` (as for the shop) |
//!
//! A bad value is a [`ConfigError`] naming the variable, the value and what is allowed.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use telemetry::config::{ConfigError, Persona, Secret};
use telemetry::env::EnvReader;

use super::faults::{Faults, Latency, MAX_LATENCY_MS};

/// `PAYMENTS_SIM_PORT` when unset.
pub const DEFAULT_PORT: u16 = 8090;
/// Idempotency keys (charges) kept in memory; the oldest is evicted beyond this.
pub const DEFAULT_MAX_CHARGES: usize = 100_000;
/// Shortest accepted `PAYMENTS_SIM_ADMIN_TOKEN`.
pub const MIN_ADMIN_TOKEN_LEN: usize = 16;

/// Everything the simulator needs. `Debug` never shows the admin token.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulatorConfig {
    /// The fault knobs at start (`PAYMENTS_SIM_*_RATE`, `PAYMENTS_SIM_LATENCY_MS`).
    pub faults: Faults,
    /// `PAYMENTS_SIM_ADMIN_TOKEN`: when set, `/admin/*` requires it as a bearer token from any
    /// peer; when unset, `/admin/*` answers loopback peers only.
    pub admin_token: Option<Secret>,
    /// `PAYMENTS_SIM_PORT`: the port of the standalone simulator (`shop payments-sim`).
    pub port: u16,
    /// `APP_HOST`: the address of the standalone simulator; `None` is the persona's default.
    pub host: Option<IpAddr>,
    /// How many charges (idempotency keys) are kept; the oldest is forgotten beyond this.
    pub max_charges: usize,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        Self::no_faults()
    }
}

impl SimulatorConfig {
    /// No faults, no admin token, the default port and capacity.
    pub fn no_faults() -> Self {
        Self {
            faults: Faults::none(),
            admin_token: None,
            port: DEFAULT_PORT,
            host: None,
            max_charges: DEFAULT_MAX_CHARGES,
        }
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Reads configuration through `lookup` (a variable name → its value, if set). Empty values
    /// count as unset.
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use payments_sim::SimulatorConfig;
    ///
    /// let env = HashMap::from([("PAYMENTS_SIM_DECLINE_RATE", "0.1"), ("PAYMENTS_SIM_LATENCY_MS", "p50=20,p99=250")]);
    /// let config = SimulatorConfig::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap();
    /// assert_eq!(config.faults.decline_rate, 0.1);
    /// assert_eq!(config.faults.latency_ms.p99, 250);
    ///
    /// let env = HashMap::from([("PAYMENTS_SIM_ERROR_RATE", "5%")]);
    /// let err = SimulatorConfig::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap_err();
    /// assert_eq!(err.variable, "PAYMENTS_SIM_ERROR_RATE");
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::from_reader(&EnvReader::new(lookup))
    }

    /// Reads configuration through `env` (the library's reader, shared with the telemetry
    /// configuration).
    pub fn from_reader(env: &EnvReader<'_>) -> Result<Self, ConfigError> {
        let rate = |variable: &'static str| -> Result<f64, ConfigError> {
            env.parse(
                variable,
                "a probability, a number between 0 and 1 (e.g. 0.05)",
                |raw| {
                    raw.parse::<f64>()
                        .ok()
                        .filter(|rate| (0.0..=1.0).contains(rate))
                },
            )
            .map(|rate| rate.unwrap_or(0.0))
        };

        let faults = Faults {
            error_rate: rate("PAYMENTS_SIM_ERROR_RATE")?,
            decline_rate: rate("PAYMENTS_SIM_DECLINE_RATE")?,
            hang_rate: rate("PAYMENTS_SIM_HANG_RATE")?,
            latency_ms: env
                .parse(
                    "PAYMENTS_SIM_LATENCY_MS",
                    format!(
                        "milliseconds: `N` (always N ms) or `p50=N,p99=M` (log-normal, \
                         1 <= N <= M <= {MAX_LATENCY_MS}), e.g. `20` or `p50=20,p99=250`"
                    ),
                    parse_latency,
                )?
                .unwrap_or_default(),
        };

        let admin_token = env.secret(
            "PAYMENTS_SIM_ADMIN_TOKEN",
            format!("at least {MIN_ADMIN_TOKEN_LEN} characters, or unset"),
            |token| token.chars().count() >= MIN_ADMIN_TOKEN_LEN,
        )?;
        let port = env.quantity(
            "PAYMENTS_SIM_PORT",
            DEFAULT_PORT,
            0..=u16::MAX,
            "a TCP port",
        )?;
        let host = env.parse(
            "APP_HOST",
            "an IP address to listen on, e.g. 127.0.0.1, 0.0.0.0 or ::",
            |raw| raw.parse::<IpAddr>().ok(),
        )?;

        Ok(Self {
            faults,
            admin_token,
            port,
            host,
            ..Self::no_faults()
        })
    }

    /// Where the standalone simulator listens: `APP_HOST`, else `127.0.0.1` (local persona) or
    /// `0.0.0.0` (cloud), on `PAYMENTS_SIM_PORT`.
    pub fn listen_address(&self, persona: Persona) -> SocketAddr {
        let host = self.host.unwrap_or(match persona {
            Persona::Local => IpAddr::V4(Ipv4Addr::LOCALHOST),
            Persona::Cloud => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        });
        SocketAddr::new(host, self.port)
    }
}

/// `N` or `p50=N,p99=M` (any order), validated.
fn parse_latency(raw: &str) -> Option<Latency> {
    let latency = match raw.parse::<u64>() {
        Ok(ms) => Latency::constant(ms),
        Err(_) => {
            let (mut p50, mut p99) = (None, None);
            for part in raw.split(',') {
                let (key, value) = part.split_once('=')?;
                let value = value.trim().parse::<u64>().ok()?;
                let slot = match key.trim() {
                    "p50" => &mut p50,
                    "p99" => &mut p99,
                    _ => return None,
                };
                if slot.replace(value).is_some() {
                    return None;
                }
            }
            Latency {
                p50: p50?,
                p99: p99?,
            }
        }
    };
    Faults {
        latency_ms: latency,
        ..Faults::none()
    }
    .validate()
    .ok()?;
    Some(latency)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::HashMap;

    fn load(pairs: &[(&str, &str)]) -> Result<SimulatorConfig, ConfigError> {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        SimulatorConfig::from_lookup(|k| env.get(k).cloned())
    }

    #[test]
    fn defaults_have_no_faults_no_token_and_port_8090() {
        let config = load(&[]).unwrap();
        assert_eq!(config, SimulatorConfig::no_faults());
        assert_eq!(config.faults, Faults::none());
        assert_eq!(config.port, 8090);
        assert_eq!(
            config.listen_address(Persona::Local).to_string(),
            "127.0.0.1:8090"
        );
        assert_eq!(
            config.listen_address(Persona::Cloud).to_string(),
            "0.0.0.0:8090"
        );
    }

    #[test]
    fn every_knob_is_read() {
        let config = load(&[
            ("PAYMENTS_SIM_ERROR_RATE", "0.1"),
            ("PAYMENTS_SIM_DECLINE_RATE", "1"),
            ("PAYMENTS_SIM_HANG_RATE", "0"),
            ("PAYMENTS_SIM_LATENCY_MS", " p99=300, p50=30 "),
            ("PAYMENTS_SIM_ADMIN_TOKEN", "0123456789abcdef"),
            ("PAYMENTS_SIM_PORT", "0"),
            ("APP_HOST", "::1"),
        ])
        .unwrap();
        assert_eq!(config.faults.error_rate, 0.1);
        assert_eq!(config.faults.decline_rate, 1.0);
        assert_eq!(config.faults.latency_ms, Latency { p50: 30, p99: 300 });
        assert_eq!(
            config.admin_token.as_ref().map(Secret::expose),
            Some("0123456789abcdef")
        );
        assert_eq!(config.port, 0);
        assert_eq!(config.listen_address(Persona::Cloud).to_string(), "[::1]:0");
        assert_eq!(
            load(&[("PAYMENTS_SIM_LATENCY_MS", "20")])
                .unwrap()
                .faults
                .latency_ms,
            Latency::constant(20)
        );
    }

    #[test]
    fn every_bad_value_names_its_variable_value_and_what_is_allowed() {
        let cases = [
            ("PAYMENTS_SIM_ERROR_RATE", "1.5"),
            ("PAYMENTS_SIM_ERROR_RATE", "5%"),
            ("PAYMENTS_SIM_DECLINE_RATE", "-0.1"),
            ("PAYMENTS_SIM_DECLINE_RATE", "NaN"),
            ("PAYMENTS_SIM_HANG_RATE", "often"),
            ("PAYMENTS_SIM_LATENCY_MS", "10..200"),
            ("PAYMENTS_SIM_LATENCY_MS", "60001"),
            ("PAYMENTS_SIM_LATENCY_MS", "p50=200,p99=10"),
            ("PAYMENTS_SIM_LATENCY_MS", "p50=20"),
            ("PAYMENTS_SIM_LATENCY_MS", "p50=0,p99=10"),
            ("PAYMENTS_SIM_LATENCY_MS", "p50=1,p50=2,p99=3"),
            ("PAYMENTS_SIM_LATENCY_MS", "p90=1,p99=3"),
            ("PAYMENTS_SIM_PORT", "65536"),
            ("PAYMENTS_SIM_PORT", "http"),
            ("APP_HOST", "localhost"),
        ];
        for (variable, value) in cases {
            let err = load(&[(variable, value)]).unwrap_err();
            assert_eq!(err.variable, variable, "{value}");
            assert_eq!(err.value, value);
            assert!(!err.allowed.is_empty());
            let message = err.to_string();
            assert!(
                message.contains(variable) && message.contains(value),
                "{message}"
            );
        }
    }

    #[test]
    fn a_short_admin_token_is_refused_without_printing_it() {
        let err = load(&[("PAYMENTS_SIM_ADMIN_TOKEN", "hunter2")]).unwrap_err();
        assert_eq!(err.variable, "PAYMENTS_SIM_ADMIN_TOKEN");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let config = load(&[("PAYMENTS_SIM_ADMIN_TOKEN", "hunter2-hunter2-hunter2")]).unwrap();
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
