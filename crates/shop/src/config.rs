//! The shop's own configuration: where to listen and which database to use.
//!
//! Read once at start-up from `PORT`, `APP_HOST`, `DATABASE_URL`, `APP_DB_MAX_CONNECTIONS`,
//! `APP_DB_ACQUIRE_TIMEOUT_MS`, `APP_CONFORMANCE` and the payment provider's `PAYMENTS_*`. Telemetry has its own configuration
//! ([`telemetry::TelemetryConfig`]); the persona it resolved (`APP_ENV`) chooses the defaults
//! here too, so one variable switches the whole service between local and cloud.
//!
//! A bad value is a [`ConfigError`] naming the variable, the value and what is allowed.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use telemetry::config::{ConfigError, Persona};
use telemetry::env::EnvReader;

/// `PORT` when unset (both personas; Cloud Run always sets it).
pub const DEFAULT_PORT: u16 = 8080;
/// `DATABASE_URL` when unset: a SQLite file under `data/`, created on first start.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/shop.db?mode=rwc";
/// `APP_DB_MAX_CONNECTIONS` when unset.
pub const DEFAULT_DB_MAX_CONNECTIONS: u32 = 5;
/// `APP_DB_ACQUIRE_TIMEOUT_MS` when unset.
pub const DEFAULT_DB_ACQUIRE_TIMEOUT: Duration = Duration::from_millis(2_000);

const MAX_DB_CONNECTIONS: u32 = 100;
const MAX_ACQUIRE_TIMEOUT_MS: u64 = 60_000;

/// `PAYMENTS_TIMEOUT_MS` when unset: how long one attempt at the provider may take.
pub const DEFAULT_PAYMENTS_TIMEOUT: Duration = Duration::from_millis(2_000);
/// `PAYMENTS_MAX_ATTEMPTS` when unset: the first attempt and up to two retries.
pub const DEFAULT_PAYMENTS_MAX_ATTEMPTS: u32 = 3;
/// `PAYMENTS_BREAKER_THRESHOLD` when unset: consecutive failed attempts that open the circuit.
pub const DEFAULT_PAYMENTS_BREAKER_THRESHOLD: u32 = 5;
/// `PAYMENTS_BREAKER_COOLDOWN_MS` when unset: how long an open circuit fails fast.
pub const DEFAULT_PAYMENTS_BREAKER_COOLDOWN: Duration = Duration::from_millis(10_000);

/// Everything the shop needs besides telemetry.
#[derive(Clone, PartialEq, Eq)]
pub struct ShopConfig {
    /// `APP_HOST`: the address to listen on (`127.0.0.1` locally, `0.0.0.0` in the cloud).
    pub host: IpAddr,
    /// `PORT`: the TCP port to listen on (`0` picks a free one).
    pub port: u16,
    /// `DATABASE_URL`: `sqlite:…` or `postgres://…`. May hold a password: never print it
    /// (the `Debug` output hides it).
    pub database_url: String,
    /// `APP_DB_MAX_CONNECTIONS`: size of the connection pool.
    pub db_max_connections: u32,
    /// `APP_DB_ACQUIRE_TIMEOUT_MS`: how long a request waits for a pooled connection before it
    /// is answered 503.
    pub db_acquire_timeout: Duration,
    /// `APP_CONFORMANCE`: a conformance test-service protocol to expose (`w3c`), or none.
    /// Refused in the cloud persona.
    pub conformance: Option<Conformance>,
    /// How the payment provider is called (`PAYMENTS_*`).
    pub payments: PaymentsConfig,
}

/// How the shop calls its payment provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentsConfig {
    /// `PAYMENTS_URL`: base URL of the provider (`http://` or `https://`, no credentials).
    /// Unset: the binary starts the payment simulator in-process and uses its URL.
    pub url: Option<String>,
    /// `PAYMENTS_TIMEOUT_MS`: the deadline of one attempt (connect + answer).
    pub attempt_timeout: Duration,
    /// `PAYMENTS_MAX_ATTEMPTS`: attempts per charge, retries included (1 = no retry).
    pub max_attempts: u32,
    /// `PAYMENTS_BREAKER_THRESHOLD`: consecutive failed attempts that open the circuit.
    pub breaker_threshold: u32,
    /// `PAYMENTS_BREAKER_COOLDOWN_MS`: how long the open circuit fails calls fast before it
    /// lets one trial call through.
    pub breaker_cooldown: Duration,
}

impl Default for PaymentsConfig {
    fn default() -> Self {
        Self {
            url: None,
            attempt_timeout: DEFAULT_PAYMENTS_TIMEOUT,
            max_attempts: DEFAULT_PAYMENTS_MAX_ATTEMPTS,
            breaker_threshold: DEFAULT_PAYMENTS_BREAKER_THRESHOLD,
            breaker_cooldown: DEFAULT_PAYMENTS_BREAKER_COOLDOWN,
        }
    }
}

/// A conformance test-service protocol the shop can expose for a test suite to drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conformance {
    /// `APP_CONFORMANCE=w3c`: `POST /_test/w3c`, the test service of the W3C Trace Context
    /// test suite (loopback clients only; see [`crate::conformance`]).
    W3c,
}

impl fmt::Debug for ShopConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShopConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database_url", &redact_url(&self.database_url))
            .field("db_max_connections", &self.db_max_connections)
            .field("db_acquire_timeout", &self.db_acquire_timeout)
            .field("conformance", &self.conformance)
            .field("payments", &self.payments)
            .finish()
    }
}

impl ShopConfig {
    /// Reads the process environment, with the defaults of `persona`.
    pub fn from_env(persona: Persona) -> Result<Self, ConfigError> {
        Self::from_lookup(persona, |key| std::env::var(key).ok())
    }

    /// Reads configuration through `lookup` (a variable name → its value, if set), with the
    /// defaults of `persona`. Empty values count as unset.
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use telemetry::config::Persona;
    /// use shop::config::ShopConfig;
    ///
    /// let env = HashMap::from([("PORT", "3000")]);
    /// let config = ShopConfig::from_lookup(Persona::Cloud, |k| env.get(k).map(|v| v.to_string())).unwrap();
    /// assert_eq!(config.port, 3000);
    /// assert_eq!(config.host.to_string(), "0.0.0.0");
    ///
    /// let env = HashMap::from([("PORT", "http")]);
    /// let err = ShopConfig::from_lookup(Persona::Local, |k| env.get(k).map(|v| v.to_string())).unwrap_err();
    /// assert_eq!(err.variable, "PORT");
    /// ```
    pub fn from_lookup(
        persona: Persona,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        Self::from_reader(persona, &EnvReader::new(lookup))
    }

    /// Reads configuration through `env` (the reader shared with the telemetry configuration),
    /// with the defaults of `persona`.
    pub fn from_reader(persona: Persona, env: &EnvReader<'_>) -> Result<Self, ConfigError> {
        let port = env.quantity("PORT", DEFAULT_PORT, 0..=u16::MAX, "a TCP port")?;

        let host = env
            .parse(
                "APP_HOST",
                "an IP address to listen on, e.g. 127.0.0.1, 0.0.0.0 or ::",
                |raw| raw.parse::<IpAddr>().ok(),
            )?
            .unwrap_or(match persona {
                Persona::Local => IpAddr::V4(Ipv4Addr::LOCALHOST),
                Persona::Cloud => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            });

        let database_url = env
            .get("DATABASE_URL")
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        if !is_supported_url(&database_url) {
            return Err(ConfigError::new(
                "DATABASE_URL",
                redact_url(&database_url),
                "a sqlite: URL (e.g. sqlite://data/shop.db?mode=rwc) or a postgres:// URL",
            ));
        }

        let db_max_connections = env.integer(
            "APP_DB_MAX_CONNECTIONS",
            DEFAULT_DB_MAX_CONNECTIONS,
            1..=MAX_DB_CONNECTIONS,
        )?;
        let db_acquire_timeout = env.millis(
            "APP_DB_ACQUIRE_TIMEOUT_MS",
            DEFAULT_DB_ACQUIRE_TIMEOUT,
            1..=MAX_ACQUIRE_TIMEOUT_MS,
        )?;

        let conformance = match (env.get("APP_CONFORMANCE"), persona) {
            (None, _) => None,
            (Some(raw), Persona::Cloud) => {
                return Err(ConfigError::new(
                    "APP_CONFORMANCE",
                    raw,
                    "unset in the cloud persona (conformance test services are for local test runs only)",
                ));
            }
            (Some(_), Persona::Local) => env
                .choice("APP_CONFORMANCE", &[("w3c", Conformance::W3c)])
                .map_err(|mut e| {
                    e.allowed = "`w3c` (the W3C Trace Context test service) or unset".to_owned();
                    e
                })?,
        };

        let payments = PaymentsConfig {
            url: env
                .get("PAYMENTS_URL")
                .map(|raw| parse_payments_url(&raw))
                .transpose()?,
            attempt_timeout: env.millis(
                "PAYMENTS_TIMEOUT_MS",
                DEFAULT_PAYMENTS_TIMEOUT,
                1..=60_000,
            )?,
            max_attempts: env.quantity(
                "PAYMENTS_MAX_ATTEMPTS",
                DEFAULT_PAYMENTS_MAX_ATTEMPTS,
                1..=10,
                "attempts",
            )?,
            breaker_threshold: env.quantity(
                "PAYMENTS_BREAKER_THRESHOLD",
                DEFAULT_PAYMENTS_BREAKER_THRESHOLD,
                1..=1_000,
                "consecutive failures",
            )?,
            breaker_cooldown: env.millis(
                "PAYMENTS_BREAKER_COOLDOWN_MS",
                DEFAULT_PAYMENTS_BREAKER_COOLDOWN,
                1..=600_000,
            )?,
        };

        Ok(Self {
            host,
            port,
            database_url,
            db_max_connections,
            db_acquire_timeout,
            conformance,
            payments,
        })
    }
}

/// `PAYMENTS_URL`: an `http://` or `https://` base URL with a host and without credentials,
/// query or fragment; a trailing `/` is dropped. An `https://` provider is verified against
/// the platform's root certificates (`SSL_CERT_FILE` / `SSL_CERT_DIR` add a private CA).
fn parse_payments_url(raw: &str) -> Result<String, ConfigError> {
    let refuse = || {
        ConfigError::new(
            "PAYMENTS_URL",
            redact_url(raw),
            "an http:// or https:// base URL without credentials, query or fragment, e.g. \
             https://payments.example.com or http://payments:8090",
        )
    };
    let url = reqwest::Url::parse(raw).map_err(|_| refuse())?;
    let valid = matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some_and(|host| !host.is_empty())
        && url.username().is_empty()
        && url.password().is_none()
        && url.query().is_none()
        && url.fragment().is_none();
    if !valid {
        return Err(refuse());
    }
    Ok(raw.trim_end_matches('/').to_owned())
}

/// Whether `url` names a database backend the shop knows (implemented or not yet).
fn is_supported_url(url: &str) -> bool {
    url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// `url` with any credentials replaced by `[REDACTED]`, safe to print: the user info
/// (`user:password@`) and a query string carrying a password (`?password=…`).
pub(crate) fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) if query.to_ascii_lowercase().contains("password") => {
            (base, Some("[REDACTED]"))
        }
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut out = match base.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find(['/', '#']).unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                Some(at) => format!("{scheme}://[REDACTED]{}", &rest[at..]),
                None => base.to_owned(),
            }
        }
        None => base.to_owned(),
    };
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::HashMap;

    fn load(persona: Persona, pairs: &[(&str, &str)]) -> Result<ShopConfig, ConfigError> {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ShopConfig::from_lookup(persona, |k| env.get(k).cloned())
    }

    #[test]
    fn defaults_listen_on_loopback_port_8080_with_a_sqlite_file() {
        let config = load(Persona::Local, &[]).unwrap();
        assert_eq!(config.host, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(config.port, 8080);
        assert_eq!(config.database_url, "sqlite://data/shop.db?mode=rwc");
        assert_eq!(config.db_max_connections, 5);
        assert_eq!(config.db_acquire_timeout, Duration::from_secs(2));
    }

    #[test]
    fn conformance_is_off_by_default_and_w3c_is_accepted_locally() {
        assert_eq!(load(Persona::Local, &[]).unwrap().conformance, None);
        let config = load(Persona::Local, &[("APP_CONFORMANCE", "w3c")]).unwrap();
        assert_eq!(config.conformance, Some(Conformance::W3c));
        let error = load(Persona::Local, &[("APP_CONFORMANCE", "tck")]).unwrap_err();
        assert_eq!(error.variable, "APP_CONFORMANCE");
    }

    #[test]
    fn conformance_is_refused_in_the_cloud_persona() {
        let error = load(Persona::Cloud, &[("APP_CONFORMANCE", "w3c")]).unwrap_err();
        assert_eq!(error.variable, "APP_CONFORMANCE");
        assert!(error.to_string().contains("APP_CONFORMANCE"), "{error}");
        assert!(error.allowed.contains("cloud"));
    }

    #[test]
    fn cloud_persona_listens_on_every_interface() {
        let config = load(Persona::Cloud, &[]).unwrap();
        assert_eq!(config.host, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    }

    #[test]
    fn explicit_values_override_persona_defaults() {
        let config = load(
            Persona::Cloud,
            &[
                ("APP_HOST", "::1"),
                ("PORT", "0"),
                ("DATABASE_URL", "postgres://shop@db/shop"),
                ("APP_DB_MAX_CONNECTIONS", "20"),
                ("APP_DB_ACQUIRE_TIMEOUT_MS", "250"),
            ],
        )
        .unwrap();
        assert_eq!(config.host.to_string(), "::1");
        assert_eq!(config.port, 0);
        assert_eq!(config.database_url, "postgres://shop@db/shop");
        assert_eq!(config.db_max_connections, 20);
        assert_eq!(config.db_acquire_timeout, Duration::from_millis(250));
    }

    #[test]
    fn empty_values_count_as_unset() {
        let config = load(Persona::Local, &[("PORT", ""), ("DATABASE_URL", "  ")]).unwrap();
        assert_eq!(config.port, DEFAULT_PORT);
        assert_eq!(config.database_url, DEFAULT_DATABASE_URL);
    }

    #[test]
    fn every_bad_value_names_its_variable_value_and_what_is_allowed() {
        let cases = [
            ("PORT", "http"),
            ("PORT", "65536"),
            ("PORT", "-1"),
            ("APP_HOST", "localhost"),
            ("APP_HOST", "300.1.1.1"),
            ("DATABASE_URL", "mysql://db/shop"),
            ("DATABASE_URL", "data/shop.db"),
            ("APP_DB_MAX_CONNECTIONS", "0"),
            ("APP_DB_MAX_CONNECTIONS", "101"),
            ("APP_DB_MAX_CONNECTIONS", "many"),
            ("APP_DB_ACQUIRE_TIMEOUT_MS", "0"),
            ("APP_DB_ACQUIRE_TIMEOUT_MS", "2s"),
            ("APP_DB_ACQUIRE_TIMEOUT_MS", "60001"),
            ("PAYMENTS_URL", "ftp://payments"),
            ("PAYMENTS_URL", "https://payments#fragment"),
            ("PAYMENTS_URL", "payments:8090"),
            ("PAYMENTS_URL", "http://payments:8090/?key=1"),
            ("PAYMENTS_TIMEOUT_MS", "0"),
            ("PAYMENTS_TIMEOUT_MS", "2s"),
            ("PAYMENTS_MAX_ATTEMPTS", "0"),
            ("PAYMENTS_MAX_ATTEMPTS", "11"),
            ("PAYMENTS_BREAKER_THRESHOLD", "0"),
            ("PAYMENTS_BREAKER_COOLDOWN_MS", "-5"),
        ];
        for (variable, value) in cases {
            let err = load(Persona::Local, &[(variable, value)]).unwrap_err();
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
    fn payments_default_to_the_in_process_simulator_with_bounded_retries() {
        let config = load(Persona::Local, &[]).unwrap();
        assert_eq!(config.payments, PaymentsConfig::default());
        assert_eq!(config.payments.url, None);
        assert_eq!(config.payments.max_attempts, 3);
        let config = load(
            Persona::Local,
            &[
                ("PAYMENTS_URL", "http://pay.example.com/api/"),
                ("PAYMENTS_TIMEOUT_MS", "750"),
                ("PAYMENTS_MAX_ATTEMPTS", "1"),
                ("PAYMENTS_BREAKER_THRESHOLD", "2"),
                ("PAYMENTS_BREAKER_COOLDOWN_MS", "500"),
            ],
        )
        .unwrap();
        assert_eq!(
            config.payments.url.as_deref(),
            Some("http://pay.example.com/api")
        );
        assert_eq!(config.payments.attempt_timeout, Duration::from_millis(750));
        assert_eq!(config.payments.max_attempts, 1);
        assert_eq!(config.payments.breaker_threshold, 2);
        assert_eq!(config.payments.breaker_cooldown, Duration::from_millis(500));
        let https = load(
            Persona::Local,
            &[("PAYMENTS_URL", "https://pay.example.com/")],
        )
        .unwrap();
        assert_eq!(
            https.payments.url.as_deref(),
            Some("https://pay.example.com")
        );
    }

    #[test]
    fn payment_provider_credentials_never_print() {
        let err = load(
            Persona::Local,
            &[("PAYMENTS_URL", "https://shop:sk_live_123@pay.example.com")],
        )
        .unwrap_err();
        assert_eq!(err.variable, "PAYMENTS_URL");
        assert!(!err.to_string().contains("sk_live_123"), "{err}");
    }

    #[test]
    fn database_passwords_never_print() {
        let err = load(
            Persona::Local,
            &[("DATABASE_URL", "mysql://shop:hunter2@db:3306/shop")],
        )
        .unwrap_err();
        assert_eq!(err.value, "mysql://[REDACTED]@db:3306/shop");
        assert!(!err.to_string().contains("hunter2"));

        let config = load(
            Persona::Local,
            &[("DATABASE_URL", "postgres://shop:hunter2@db/shop")],
        )
        .unwrap();
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn urls_without_credentials_are_kept_as_they_are() {
        assert_eq!(
            redact_url("sqlite://data/shop.db?mode=rwc"),
            "sqlite://data/shop.db?mode=rwc"
        );
        assert_eq!(
            redact_url("postgres://db/shop?user=a@b"),
            "postgres://db/shop?user=a@b"
        );
        assert_eq!(redact_url("sqlite::memory:"), "sqlite::memory:");
        assert_eq!(
            redact_url("postgres://db/shop?password=hunter2"),
            "postgres://db/shop?[REDACTED]"
        );
    }
}
