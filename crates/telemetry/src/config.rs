//! Configuration from the standard `OTEL_*` variables and the `APP_*` variables.
//!
//! Every value is parsed once, at start-up. A bad value is a [`ConfigError`] that names
//! the variable, the value and what is allowed, so a misconfigured service refuses to
//! start instead of running half-observed. The persona (`APP_ENV`) only changes
//! defaults; every default can be overridden explicitly.
//!
//! Configuration is read through a lookup function, never from hidden global state:
//! [`TelemetryConfig::from_env`] reads the process environment, and
//! [`TelemetryConfig::from_lookup`] reads anything (tests pass a map).

use std::fmt;
use std::time::Duration;

/// Where the service runs; changes defaults only (`APP_ENV`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persona {
    /// A developer machine: pretty logs on a terminal, JSON otherwise, `full` PII allowed.
    Local,
    /// Google Cloud Run behind a sidecar collector: GCP log format, pseudonym key required.
    Cloud,
}

/// Format of the log lines written to stdout (`APP_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// One JSON object per line with Google Cloud Logging's special fields.
    Gcp,
    /// Human-readable single lines for a terminal.
    Pretty,
}

/// How user identity may appear in telemetry (`APP_PII_MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PiiMode {
    /// Identity only as a keyed pseudonym (`enduser.pseudo.id`), client address truncated.
    Pseudonym,
    /// No identity and no client address at all.
    Off,
    /// Raw `enduser.id`; local debugging only, refused in the cloud persona.
    Full,
}

/// OTLP transport (`OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// `grpc`
    Grpc,
    /// `http/protobuf`
    HttpProtobuf,
}

/// What to do with an incoming `traceparent` (`APP_TRACE_INCOMING`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncomingTrace {
    /// Continue the caller's trace (the default, right behind a trusted edge).
    Continue,
    /// Start a new trace and link it to the caller's span context (public edge).
    Link,
}

/// What becomes of a `tracing` span started outside any request (`APP_SPANS_OUTSIDE_REQUESTS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpansOutsideRequests {
    /// The span starts a new trace of its own (the default: background jobs get traced too).
    Trace,
    /// The span is not exported (log lines inside it carry no trace context).
    Drop,
}

/// Trace sampler (`OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SamplerConfig {
    /// `always_on`
    AlwaysOn,
    /// `always_off`
    AlwaysOff,
    /// `traceidratio` with a ratio in `[0, 1]`
    TraceIdRatio(f64),
    /// `parentbased_always_on` (the default)
    ParentBasedAlwaysOn,
    /// `parentbased_always_off`
    ParentBasedAlwaysOff,
    /// `parentbased_traceidratio`
    ParentBasedTraceIdRatio(f64),
}

/// Batch processor settings for one signal (`OTEL_BSP_*` for spans, `OTEL_BLRP_*` for logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSettings {
    /// Records held in memory while waiting for export; beyond it new records are dropped.
    pub max_queue_size: usize,
    /// Delay between two exports.
    pub schedule_delay: Duration,
    /// Records per export request. (The deadline of one export is `OTEL_EXPORTER_OTLP_TIMEOUT`:
    /// the SDK's thread-based processors do not apply `OTEL_BSP_EXPORT_TIMEOUT`.)
    pub max_export_batch_size: usize,
}

/// A secret string that never prints (`Debug` shows `[REDACTED]`).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; call only where it is used.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// Everything the telemetry library needs, resolved from the environment.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// `APP_ENV`: `local` (default) or `cloud`.
    pub persona: Persona,
    /// `OTEL_SERVICE_NAME` (default `shop`, or the name given to [`TelemetryConfig::from_lookup`]).
    pub service_name: String,
    /// `APP_VERSION`, default: the version compiled into the service.
    pub service_version: String,
    /// `APP_DEPLOYMENT_ENVIRONMENT` → `deployment.environment.name` (default: `local` or `production`).
    pub deployment_environment: String,
    /// `OTEL_SDK_DISABLED=true` turns every exporter off (stdout logs and `/metrics` stay).
    pub sdk_disabled: bool,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`; `None` means no OTLP export at all. Default: none in the
    /// local persona, the sidecar collector (`http://localhost:4317`, or `:4318` for
    /// `http/protobuf`) in the cloud persona.
    pub otlp_endpoint: Option<String>,
    /// `OTEL_EXPORTER_OTLP_PROTOCOL`: `grpc` (default) or `http/protobuf`.
    pub otlp_protocol: OtlpProtocol,
    /// `OTEL_EXPORTER_OTLP_HEADERS` (`k=v,k2=v2`), e.g. vendor API keys; never logged.
    pub otlp_headers: Vec<(String, Secret)>,
    /// `OTEL_EXPORTER_OTLP_TIMEOUT` in milliseconds (default 10000).
    pub otlp_timeout: Duration,
    /// `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`.
    pub sampler: SamplerConfig,
    /// `OTEL_BSP_MAX_QUEUE_SIZE`, `OTEL_BSP_SCHEDULE_DELAY`, `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`.
    pub span_batch: BatchSettings,
    /// `OTEL_BLRP_MAX_QUEUE_SIZE`, `OTEL_BLRP_SCHEDULE_DELAY`, `OTEL_BLRP_MAX_EXPORT_BATCH_SIZE`.
    pub log_batch: BatchSettings,
    /// `OTEL_METRIC_EXPORT_INTERVAL` in milliseconds (default 60000).
    pub metric_export_interval: Duration,
    /// `APP_LOG_FORMAT`: `json`, `gcp` or `pretty` (persona default).
    pub log_format: LogFormat,
    /// `RUST_LOG` (default `info`): level filter, `target=level` directives allowed.
    pub log_filter: String,
    /// `APP_PII_MODE`: `pseudonym` (default), `off`, `full`.
    pub pii_mode: PiiMode,
    /// `APP_PII_KEY`: HMAC key for pseudonyms (at least 16 bytes; required in the cloud persona).
    pub pii_key: Option<Secret>,
    /// `APP_TRACE_INCOMING`: `continue` (default) or `link`.
    pub incoming_trace: IncomingTrace,
    /// `APP_SPANS_OUTSIDE_REQUESTS`: `trace` (default) or `drop`, for `tracing` spans started
    /// outside any request (see [`crate::tracing_spans`]).
    pub spans_outside_requests: SpansOutsideRequests,
    /// `APP_ACCESS_LOG_EXCLUDE`: comma-separated route templates without access-log line
    /// (default `/healthz,/readyz,/metrics`; empty string logs everything).
    pub access_log_exclude: Vec<String>,
    /// `APP_METRIC_CARDINALITY_LIMIT`: attribute sets per instrument before overflow (default 200).
    pub metric_cardinality_limit: usize,
    /// `APP_GCP_PROJECT` or `GOOGLE_CLOUD_PROJECT`: project id for `logging.googleapis.com/trace`.
    pub gcp_project: Option<String>,
    /// `K_SERVICE` (Cloud Run service name → `faas.name`).
    pub cloud_run_service: Option<String>,
    /// `K_REVISION` (Cloud Run revision → `faas.version`).
    pub cloud_run_revision: Option<String>,
}

/// A configuration value that stops start-up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {variable}={value:?}: {allowed}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub variable: &'static str,
    /// The value it had (secrets are shown as `[REDACTED]`).
    pub value: String,
    /// What would have been accepted.
    pub allowed: String,
}

impl ConfigError {
    /// Builds the error for `variable` having `value`, with what is `allowed`.
    pub fn new(
        variable: &'static str,
        value: impl Into<String>,
        allowed: impl Into<String>,
    ) -> Self {
        Self {
            variable,
            value: value.into(),
            allowed: allowed.into(),
        }
    }
}

const DEFAULT_CARDINALITY_LIMIT: usize = 200;

impl TelemetryConfig {
    /// Reads the process environment. `default_service_name` and `default_version` are
    /// used when `OTEL_SERVICE_NAME` / `APP_VERSION` are not set.
    pub fn from_env(
        default_service_name: &str,
        default_version: &str,
    ) -> Result<Self, ConfigError> {
        Self::from_lookup(default_service_name, default_version, |key| {
            std::env::var(key).ok()
        })
    }

    /// Reads configuration through `lookup` (a variable name → its value, if set).
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use telemetry::config::{TelemetryConfig, LogFormat};
    ///
    /// let env = HashMap::from([("APP_LOG_FORMAT", "gcp")]);
    /// let config = TelemetryConfig::from_lookup("shop", "1.0.0", |k| env.get(k).map(|v| v.to_string())).unwrap();
    /// assert_eq!(config.log_format, LogFormat::Gcp);
    ///
    /// let env = HashMap::from([("APP_PII_MODE", "everything")]);
    /// let err = TelemetryConfig::from_lookup("shop", "1.0.0", |k| env.get(k).map(|v| v.to_string())).unwrap_err();
    /// assert_eq!(err.variable, "APP_PII_MODE");
    /// ```
    pub fn from_lookup(
        default_service_name: &str,
        default_version: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let get = |key: &str| {
            lookup(key)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };

        let persona = match get("APP_ENV").as_deref() {
            None | Some("local") => Persona::Local,
            Some("cloud") => Persona::Cloud,
            Some(other) => return Err(ConfigError::new("APP_ENV", other, "one of: local, cloud")),
        };

        let service_name =
            get("OTEL_SERVICE_NAME").unwrap_or_else(|| default_service_name.to_owned());
        if service_name.len() > 128 || service_name.chars().any(char::is_control) {
            return Err(ConfigError::new(
                "OTEL_SERVICE_NAME",
                service_name,
                "a name of at most 128 printable characters",
            ));
        }
        let service_version = get("APP_VERSION").unwrap_or_else(|| default_version.to_owned());
        let deployment_environment = get("APP_DEPLOYMENT_ENVIRONMENT").unwrap_or_else(|| {
            match persona {
                Persona::Local => "local",
                Persona::Cloud => "production",
            }
            .to_owned()
        });

        let sdk_disabled = parse_bool("OTEL_SDK_DISABLED", get("OTEL_SDK_DISABLED"), false)?;

        let otlp_protocol = match get("OTEL_EXPORTER_OTLP_PROTOCOL").as_deref() {
            None | Some("grpc") => OtlpProtocol::Grpc,
            Some("http/protobuf") => OtlpProtocol::HttpProtobuf,
            Some(other) => {
                return Err(ConfigError::new(
                    "OTEL_EXPORTER_OTLP_PROTOCOL",
                    other,
                    "one of: grpc, http/protobuf (http/json is not supported)",
                ));
            }
        };
        // Local: export only when asked. Cloud: the collector sidecar listens on localhost.
        let otlp_endpoint = match get("OTEL_EXPORTER_OTLP_ENDPOINT") {
            None if persona == Persona::Cloud => Some(match otlp_protocol {
                OtlpProtocol::Grpc => "http://localhost:4317".to_owned(),
                OtlpProtocol::HttpProtobuf => "http://localhost:4318".to_owned(),
            }),
            None => None,
            Some(endpoint) => Some(parse_endpoint(&endpoint)?),
        };
        let otlp_headers = match get("OTEL_EXPORTER_OTLP_HEADERS") {
            None => Vec::new(),
            Some(raw) => parse_headers(&raw)?,
        };
        let otlp_timeout = parse_millis(
            "OTEL_EXPORTER_OTLP_TIMEOUT",
            get("OTEL_EXPORTER_OTLP_TIMEOUT"),
            10_000,
        )?;

        let sampler = parse_sampler(get("OTEL_TRACES_SAMPLER"), get("OTEL_TRACES_SAMPLER_ARG"))?;
        let span_batch = parse_batch(&get, BatchVars::SPANS)?;
        let log_batch = parse_batch(&get, BatchVars::LOGS)?;
        let metric_export_interval = parse_millis(
            "OTEL_METRIC_EXPORT_INTERVAL",
            get("OTEL_METRIC_EXPORT_INTERVAL"),
            60_000,
        )?;

        let log_format = match get("APP_LOG_FORMAT").as_deref() {
            Some("json") => LogFormat::Json,
            Some("gcp") => LogFormat::Gcp,
            Some("pretty") => LogFormat::Pretty,
            None => match persona {
                Persona::Cloud => LogFormat::Gcp,
                Persona::Local if std::io::IsTerminal::is_terminal(&std::io::stdout()) => {
                    LogFormat::Pretty
                }
                Persona::Local => LogFormat::Json,
            },
            Some(other) => {
                return Err(ConfigError::new(
                    "APP_LOG_FORMAT",
                    other,
                    "one of: json, gcp, pretty",
                ));
            }
        };
        let log_filter = get("RUST_LOG").unwrap_or_else(|| "info".to_owned());
        crate::log_filter::LogFilter::parse(&log_filter)
            .map_err(|why| ConfigError::new("RUST_LOG", log_filter.clone(), why))?;

        let pii_mode = match get("APP_PII_MODE").as_deref() {
            None | Some("pseudonym") => PiiMode::Pseudonym,
            Some("off") => PiiMode::Off,
            Some("full") => PiiMode::Full,
            Some(other) => {
                return Err(ConfigError::new(
                    "APP_PII_MODE",
                    other,
                    "one of: pseudonym, off, full",
                ));
            }
        };
        let pii_key = get("APP_PII_KEY").map(Secret::new);
        if let Some(key) = &pii_key
            && key.expose().len() < 16
        {
            return Err(ConfigError::new(
                "APP_PII_KEY",
                "[REDACTED]",
                "a secret of at least 16 bytes (e.g. `openssl rand -hex 32`)",
            ));
        }
        if persona == Persona::Cloud {
            if pii_mode == PiiMode::Full {
                return Err(ConfigError::new(
                    "APP_PII_MODE",
                    "full",
                    "pseudonym or off in the cloud persona (APP_ENV=cloud); full is for local debugging only",
                ));
            }
            if pii_mode == PiiMode::Pseudonym && pii_key.is_none() {
                return Err(ConfigError::new(
                    "APP_PII_KEY",
                    "",
                    "a secret of at least 16 bytes: the cloud persona needs a stable pseudonym key (or APP_PII_MODE=off)",
                ));
            }
        }

        let incoming_trace = match get("APP_TRACE_INCOMING").as_deref() {
            None | Some("continue") => IncomingTrace::Continue,
            Some("link") => IncomingTrace::Link,
            Some(other) => {
                return Err(ConfigError::new(
                    "APP_TRACE_INCOMING",
                    other,
                    "one of: continue, link",
                ));
            }
        };

        let spans_outside_requests = match get("APP_SPANS_OUTSIDE_REQUESTS").as_deref() {
            None | Some("trace") => SpansOutsideRequests::Trace,
            Some("drop") => SpansOutsideRequests::Drop,
            Some(other) => {
                return Err(ConfigError::new(
                    "APP_SPANS_OUTSIDE_REQUESTS",
                    other,
                    "one of: trace, drop",
                ));
            }
        };

        let access_log_exclude = match lookup("APP_ACCESS_LOG_EXCLUDE") {
            None => vec!["/healthz".to_owned(), "/readyz".to_owned(), "/metrics".to_owned()],
            Some(raw) => raw
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|route| {
                    if route.starts_with('/') {
                        Ok(route.to_owned())
                    } else {
                        Err(ConfigError::new(
                            "APP_ACCESS_LOG_EXCLUDE",
                            raw.clone(),
                            "comma-separated route templates starting with '/', e.g. /healthz,/metrics",
                        ))
                    }
                })
                .collect::<Result<_, _>>()?,
        };

        let metric_cardinality_limit = match get("APP_METRIC_CARDINALITY_LIMIT") {
            None => DEFAULT_CARDINALITY_LIMIT,
            Some(raw) => match raw.parse::<usize>() {
                Ok(n) if (10..=10_000).contains(&n) => n,
                _ => {
                    return Err(ConfigError::new(
                        "APP_METRIC_CARDINALITY_LIMIT",
                        raw,
                        "an integer between 10 and 10000",
                    ));
                }
            },
        };

        let gcp_project = get("APP_GCP_PROJECT").or_else(|| get("GOOGLE_CLOUD_PROJECT"));

        Ok(Self {
            persona,
            service_name,
            service_version,
            deployment_environment,
            sdk_disabled,
            otlp_endpoint,
            otlp_protocol,
            otlp_headers,
            otlp_timeout,
            sampler,
            span_batch,
            log_batch,
            metric_export_interval,
            log_format,
            log_filter,
            pii_mode,
            pii_key,
            incoming_trace,
            spans_outside_requests,
            access_log_exclude,
            metric_cardinality_limit,
            gcp_project,
            cloud_run_service: get("K_SERVICE"),
            cloud_run_revision: get("K_REVISION"),
        })
    }

    /// A configuration for tests and examples: JSON logs, pseudonym PII with a fixed key,
    /// no OTLP export unless [`TelemetryConfig::with_otlp`] is called.
    pub fn for_tests(service_name: &str) -> Self {
        let mut config = Self::from_lookup(service_name, "0.0.0-test", |key| match key {
            "APP_LOG_FORMAT" => Some("json".to_owned()),
            "APP_PII_KEY" => Some("test-pseudonym-key-0123456789".to_owned()),
            _ => None,
        })
        .unwrap_or_else(|e| unreachable!("built-in test configuration is valid: {e}"));
        config.metric_export_interval = Duration::from_millis(200);
        config.span_batch.schedule_delay = Duration::from_millis(100);
        config.log_batch.schedule_delay = Duration::from_millis(100);
        config
    }

    /// Sends OTLP to `endpoint` with `protocol` (builder style, for tests and examples).
    pub fn with_otlp(mut self, endpoint: impl Into<String>, protocol: OtlpProtocol) -> Self {
        self.otlp_endpoint = Some(endpoint.into());
        self.otlp_protocol = protocol;
        self
    }

    /// Whether OTLP export is on (an endpoint is set and the SDK is not disabled).
    pub fn otlp_enabled(&self) -> bool {
        self.otlp_endpoint.is_some() && !self.sdk_disabled
    }
}

fn parse_bool(
    variable: &'static str,
    value: Option<String>,
    default: bool,
) -> Result<bool, ConfigError> {
    match value.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None => Ok(default),
        Some("true" | "1") => Ok(true),
        Some("false" | "0") => Ok(false),
        Some(_) => Err(ConfigError::new(
            variable,
            value.unwrap_or_default(),
            "true or false",
        )),
    }
}

fn parse_millis(
    variable: &'static str,
    value: Option<String>,
    default_ms: u64,
) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(Duration::from_millis(default_ms)),
        Some(raw) => match raw.parse::<u64>() {
            Ok(ms) if (1..=3_600_000).contains(&ms) => Ok(Duration::from_millis(ms)),
            _ => Err(ConfigError::new(
                variable,
                raw,
                "milliseconds, an integer between 1 and 3600000",
            )),
        },
    }
}

fn parse_count(
    variable: &'static str,
    value: Option<String>,
    default: usize,
) -> Result<usize, ConfigError> {
    match value {
        None => Ok(default),
        Some(raw) => match raw.parse::<usize>() {
            Ok(n) if (1..=1_000_000).contains(&n) => Ok(n),
            _ => Err(ConfigError::new(
                variable,
                raw,
                "an integer between 1 and 1000000",
            )),
        },
    }
}

fn parse_endpoint(endpoint: &str) -> Result<String, ConfigError> {
    let ok = (endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        && endpoint
            .parse::<http::Uri>()
            .is_ok_and(|uri| uri.host().is_some());
    if ok {
        Ok(endpoint.trim_end_matches('/').to_owned())
    } else {
        Err(ConfigError::new(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            endpoint,
            "an absolute http:// or https:// URL, e.g. http://localhost:4317",
        ))
    }
}

fn parse_headers(raw: &str) -> Result<Vec<(String, Secret)>, ConfigError> {
    raw.split(',')
        .filter(|pair| !pair.trim().is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').ok_or_else(|| {
                ConfigError::new(
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    "[REDACTED]",
                    "comma-separated key=value pairs",
                )
            })?;
            let key = key.trim().to_ascii_lowercase();
            if key.is_empty() || http::HeaderName::from_bytes(key.as_bytes()).is_err() {
                return Err(ConfigError::new(
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    "[REDACTED]",
                    "comma-separated key=value pairs with valid header names",
                ));
            }
            Ok((key, Secret::new(value.trim())))
        })
        .collect()
}

fn parse_sampler(name: Option<String>, arg: Option<String>) -> Result<SamplerConfig, ConfigError> {
    let ratio = || -> Result<f64, ConfigError> {
        match &arg {
            None => Ok(1.0),
            Some(raw) => match raw.parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
                _ => Err(ConfigError::new(
                    "OTEL_TRACES_SAMPLER_ARG",
                    raw.clone(),
                    "a ratio between 0 and 1",
                )),
            },
        }
    };
    Ok(match name.as_deref() {
        None | Some("parentbased_always_on") => SamplerConfig::ParentBasedAlwaysOn,
        Some("always_on") => SamplerConfig::AlwaysOn,
        Some("always_off") => SamplerConfig::AlwaysOff,
        Some("parentbased_always_off") => SamplerConfig::ParentBasedAlwaysOff,
        Some("traceidratio") => SamplerConfig::TraceIdRatio(ratio()?),
        Some("parentbased_traceidratio") => SamplerConfig::ParentBasedTraceIdRatio(ratio()?),
        Some(other) => {
            return Err(ConfigError::new(
                "OTEL_TRACES_SAMPLER",
                other,
                "one of: always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio",
            ));
        }
    })
}

struct BatchVars {
    queue: &'static str,
    delay: &'static str,
    batch: &'static str,
    default_delay_ms: u64,
}

impl BatchVars {
    const SPANS: Self = Self {
        queue: "OTEL_BSP_MAX_QUEUE_SIZE",
        delay: "OTEL_BSP_SCHEDULE_DELAY",
        batch: "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
        default_delay_ms: 5_000,
    };
    const LOGS: Self = Self {
        queue: "OTEL_BLRP_MAX_QUEUE_SIZE",
        delay: "OTEL_BLRP_SCHEDULE_DELAY",
        batch: "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE",
        default_delay_ms: 1_000,
    };
}

fn parse_batch(
    get: &impl Fn(&str) -> Option<String>,
    vars: BatchVars,
) -> Result<BatchSettings, ConfigError> {
    let max_queue_size = parse_count(vars.queue, get(vars.queue), 2_048)?;
    let max_export_batch_size = parse_count(vars.batch, get(vars.batch), 512)?;
    if max_export_batch_size > max_queue_size {
        return Err(ConfigError::new(
            vars.batch,
            max_export_batch_size.to_string(),
            format!("at most {} ({})", max_queue_size, vars.queue),
        ));
    }
    Ok(BatchSettings {
        max_queue_size,
        schedule_delay: parse_millis(vars.delay, get(vars.delay), vars.default_delay_ms)?,
        max_export_batch_size,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::HashMap;

    fn load(pairs: &[(&str, &str)]) -> Result<TelemetryConfig, ConfigError> {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TelemetryConfig::from_lookup("shop", "1.2.3", |k| env.get(k).cloned())
    }

    #[test]
    fn defaults_are_local_pseudonym_and_no_export() {
        let c = load(&[]).unwrap();
        assert_eq!(c.persona, Persona::Local);
        assert_eq!(c.pii_mode, PiiMode::Pseudonym);
        assert!(!c.otlp_enabled());
        assert_eq!(c.service_name, "shop");
        assert_eq!(c.sampler, SamplerConfig::ParentBasedAlwaysOn);
        assert_eq!(c.access_log_exclude, ["/healthz", "/readyz", "/metrics"]);
    }

    #[test]
    fn cloud_persona_defaults_to_gcp_logs_and_requires_a_key() {
        let err = load(&[("APP_ENV", "cloud")]).unwrap_err();
        assert_eq!(err.variable, "APP_PII_KEY");
        let c = load(&[
            ("APP_ENV", "cloud"),
            ("APP_PII_KEY", "0123456789abcdef0123"),
        ])
        .unwrap();
        assert_eq!(c.log_format, LogFormat::Gcp);
        assert_eq!(c.deployment_environment, "production");
    }

    #[test]
    fn full_pii_is_refused_in_the_cloud() {
        let err = load(&[
            ("APP_ENV", "cloud"),
            ("APP_PII_MODE", "full"),
            ("APP_PII_KEY", "0123456789abcdef"),
        ])
        .unwrap_err();
        assert_eq!(err.variable, "APP_PII_MODE");
    }

    #[test]
    fn every_bad_value_names_its_variable() {
        let cases = [
            ("APP_ENV", "prod"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4317"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon"),
            ("OTEL_TRACES_SAMPLER", "sometimes"),
            ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "-1"),
            ("OTEL_BLRP_SCHEDULE_DELAY", "0"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "abc"),
            ("OTEL_SDK_DISABLED", "maybe"),
            ("APP_LOG_FORMAT", "xml"),
            ("APP_PII_MODE", "all"),
            ("APP_PII_KEY", "short"),
            ("APP_TRACE_INCOMING", "trust"),
            ("APP_SPANS_OUTSIDE_REQUESTS", "keep"),
            ("APP_METRIC_CARDINALITY_LIMIT", "5"),
            ("APP_ACCESS_LOG_EXCLUDE", "healthz"),
            ("RUST_LOG", "info,hyper=loud"),
        ];
        for (variable, value) in cases {
            let mut env = vec![(variable, value)];
            if variable == "OTEL_TRACES_SAMPLER_ARG" {
                env.push(("OTEL_TRACES_SAMPLER", "traceidratio"));
            }
            let err = load(&env).unwrap_err();
            assert_eq!(err.variable, variable, "{value}");
            let message = err.to_string();
            assert!(message.contains(variable), "{message}");
        }
    }

    #[test]
    fn secrets_never_print() {
        let c = load(&[
            ("APP_PII_KEY", "super-secret-key-123456"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=abc123"),
        ])
        .unwrap();
        let debug = format!("{c:?}");
        assert!(!debug.contains("super-secret"));
        assert!(!debug.contains("abc123"));
        let err = load(&[("APP_PII_KEY", "tiny")]).unwrap_err();
        assert!(!err.to_string().contains("tiny"));
    }
}
