//! Configuration from the standard `OTEL_*` variables and the `APP_*` variables.
//!
//! Every value is parsed once, at start-up. A bad value is a [`ConfigError`] that names
//! the variable, the value and what is allowed, so a misconfigured service refuses to
//! start instead of running half-observed. The persona (`APP_ENV`) only changes
//! defaults; every default can be overridden explicitly.
//!
//! Configuration is read through a lookup function, never from hidden global state:
//! [`TelemetryConfig::from_env`] reads the process environment, and
//! [`TelemetryConfig::from_lookup`] reads anything (tests pass a map); both go through the
//! library's one reader, [`EnvReader`], which an app uses for its own variables too.
//!
//! TLS files (`OTEL_EXPORTER_OTLP_CERTIFICATE`, `…_CLIENT_CERTIFICATE`, `…_CLIENT_KEY`, and
//! their per-signal `OTEL_EXPORTER_OTLP_{TRACES,METRICS,LOGS}_…` variants) are read and parsed
//! at start-up too (`config/tls.rs`): an unreadable or invalid file is a [`ConfigError`] naming
//! its variable.

use std::time::Duration;

mod tls;

pub use crate::env::{ConfigError, EnvReader, Secret};
pub use crate::gcp_metadata::MetadataLookup;
pub use crate::layer::client_address::{ForwardedHeader, TrustedProxies};
pub use crate::sentry::SentryConfig;
use tls::read_tls;
pub(crate) use tls::tls_error;
pub use tls::{ClientIdentity, OtlpTls, OtlpTlsBySignal, PemFile};

/// The OTLP/gRPC endpoint of a local collector (the cloud persona's sidecar), the
/// OpenTelemetry default for `grpc`.
pub const DEFAULT_OTLP_GRPC_ENDPOINT: &str = "http://localhost:4317";
/// The OTLP/HTTP endpoint of a local collector, the OpenTelemetry default for `http/protobuf`.
pub const DEFAULT_OTLP_HTTP_ENDPOINT: &str = "http://localhost:4318";

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

/// Everything the telemetry library needs, resolved from the environment.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// `APP_ENV`: `local` (default) or `cloud`.
    pub persona: Persona,
    /// `OTEL_SERVICE_NAME` (default: the name the application gives to [`TelemetryConfig::from_lookup`]).
    pub service_name: String,
    /// `APP_VERSION`, default: the version compiled into the service.
    pub service_version: String,
    /// `APP_DEPLOYMENT_ENVIRONMENT` → `deployment.environment.name` (default: `local` or `production`).
    pub deployment_environment: String,
    /// `OTEL_SDK_DISABLED=true` turns every exporter off (stdout logs and `/metrics` stay).
    pub sdk_disabled: bool,
    /// `OTEL_TRACES_EXPORTER`, `OTEL_METRICS_EXPORTER`, `OTEL_LOGS_EXPORTER`: which signals
    /// go out over OTLP when an endpoint is set (`otlp`, the default, or `none`; metrics also
    /// take `prometheus`, meaning pull from `/metrics` only). `/metrics` and stdout stay either way.
    pub otlp_signals: OtlpSignals,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` (`http://` or `https://`); `None` means no OTLP export at
    /// all. Default: none in the local persona, the sidecar collector
    /// ([`DEFAULT_OTLP_GRPC_ENDPOINT`], or [`DEFAULT_OTLP_HTTP_ENDPOINT`] for `http/protobuf`)
    /// in the cloud persona.
    pub otlp_endpoint: Option<String>,
    /// `OTEL_EXPORTER_OTLP_PROTOCOL`: `grpc` (default) or `http/protobuf`.
    pub otlp_protocol: OtlpProtocol,
    /// `OTEL_EXPORTER_OTLP_HEADERS` (`k=v,k2=v2`), e.g. vendor API keys; never logged.
    pub otlp_headers: Vec<(String, Secret)>,
    /// `OTEL_EXPORTER_OTLP_TIMEOUT` in milliseconds (default 10000).
    pub otlp_timeout: Duration,
    /// TLS files of each signal's export (`OTEL_EXPORTER_OTLP_CERTIFICATE` and friends); used
    /// only for an `https://` endpoint, where the platform's root certificates are trusted
    /// unless a certificate file replaces them.
    pub otlp_tls: OtlpTlsBySignal,
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
    /// `APP_GCP_PROJECT` or `GOOGLE_CLOUD_PROJECT`, else (cloud persona) the metadata server's
    /// project id: for `logging.googleapis.com/trace` and `cloud.account.id`.
    pub gcp_project: Option<String>,
    /// The region from the metadata server (cloud persona) → `cloud.region`.
    pub gcp_region: Option<String>,
    /// The instance id from the metadata server (cloud persona) → `faas.instance`.
    pub gcp_instance_id: Option<String>,
    /// Whether the metadata server was asked at start-up (`APP_GCP_METADATA`,
    /// `GCE_METADATA_HOST`) and what could not be read; see [`crate::gcp_metadata`].
    pub gcp_metadata: MetadataLookup,
    /// `APP_TRUSTED_PROXIES` / `APP_FORWARDED_HEADER`: whose forwarding headers are believed for
    /// `client.address` (see [`crate::layer::client_address`]).
    pub trusted_proxies: TrustedProxies,
    /// `APP_TRACE_PROBES` (`off` by default) and `APP_PROBE_ROUTES` (default `/healthz,/readyz`):
    /// requests to these routes create no spans (SERVER, database, outbound, `tracing`) unless
    /// `APP_TRACE_PROBES=on`. Their metrics and access lines are unchanged.
    pub untraced_routes: Vec<String>,
    /// `SENTRY_DSN`: where 5xx errors and panics are reported (off when unset); see
    /// [`crate::sentry`].
    pub sentry: Option<SentryConfig>,
    /// `K_SERVICE` (Cloud Run service name → `faas.name`).
    pub cloud_run_service: Option<String>,
    /// `K_REVISION` (Cloud Run revision → `faas.version`).
    pub cloud_run_revision: Option<String>,
}

const DEFAULT_CARDINALITY_LIMIT: usize = 200;

/// One OTLP signal, for the settings that may differ per signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpSignal {
    /// Spans (`…_TRACES_…` variables).
    Traces,
    /// Metrics (`…_METRICS_…` variables).
    Metrics,
    /// Log records (`…_LOGS_…` variables).
    Logs,
}

/// Which signals leave over OTLP (`OTEL_TRACES_EXPORTER`, `OTEL_METRICS_EXPORTER`,
/// `OTEL_LOGS_EXPORTER`); all three by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OtlpSignals {
    /// Spans.
    pub traces: bool,
    /// Metrics (pushed; `/metrics` is served either way).
    pub metrics: bool,
    /// Log records (stdout lines are written either way).
    pub logs: bool,
}

impl Default for OtlpSignals {
    fn default() -> Self {
        Self {
            traces: true,
            metrics: true,
            logs: true,
        }
    }
}

impl OtlpSignals {
    /// Whether `signal` is on.
    pub fn is_on(self, signal: OtlpSignal) -> bool {
        match signal {
            OtlpSignal::Traces => self.traces,
            OtlpSignal::Metrics => self.metrics,
            OtlpSignal::Logs => self.logs,
        }
    }
}

impl OtlpSignal {
    /// All three, in the order the start-up line names them.
    pub const ALL: [OtlpSignal; 3] = [Self::Traces, Self::Metrics, Self::Logs];

    /// `traces`, `metrics` or `logs`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Traces => "traces",
            Self::Metrics => "metrics",
            Self::Logs => "logs",
        }
    }

    /// The OTLP/HTTP path of the signal, appended to the base endpoint (`/v1/traces`, …).
    pub fn http_path(self) -> &'static str {
        match self {
            Self::Traces => "/v1/traces",
            Self::Metrics => "/v1/metrics",
            Self::Logs => "/v1/logs",
        }
    }
}

impl TelemetryConfig {
    /// Reads the process environment. `default_service_name` and `default_version` are
    /// used when `OTEL_SERVICE_NAME` / `APP_VERSION` are not set.
    pub fn from_env(
        default_service_name: &str,
        default_version: &str,
    ) -> Result<Self, ConfigError> {
        Self::from_reader(default_service_name, default_version, &EnvReader::process())
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
        Self::from_reader(
            default_service_name,
            default_version,
            &EnvReader::new(lookup),
        )
    }

    /// Reads configuration through `env` (the reader an app shares with its own settings).
    pub fn from_reader(
        default_service_name: &str,
        default_version: &str,
        env: &EnvReader<'_>,
    ) -> Result<Self, ConfigError> {
        let persona = env
            .choice(
                "APP_ENV",
                &[("local", Persona::Local), ("cloud", Persona::Cloud)],
            )?
            .unwrap_or(Persona::Local);

        let service_name = env
            .parse(
                "OTEL_SERVICE_NAME",
                "a name of at most 128 printable characters",
                |name| {
                    (name.len() <= 128 && !name.chars().any(char::is_control))
                        .then(|| name.to_owned())
                },
            )?
            .unwrap_or_else(|| default_service_name.to_owned());
        let service_version = env
            .get("APP_VERSION")
            .unwrap_or_else(|| default_version.to_owned());
        let deployment_environment = env.get("APP_DEPLOYMENT_ENVIRONMENT").unwrap_or_else(|| {
            match persona {
                Persona::Local => "local",
                Persona::Cloud => "production",
            }
            .to_owned()
        });

        let sdk_disabled = env.flag("OTEL_SDK_DISABLED", false)?;
        let exporter = |variable: &'static str, options: &[(&str, bool)]| {
            env.choice(variable, options).map(|on| on.unwrap_or(true))
        };
        let otlp_signals = OtlpSignals {
            traces: exporter("OTEL_TRACES_EXPORTER", &[("otlp", true), ("none", false)])?,
            metrics: exporter(
                "OTEL_METRICS_EXPORTER",
                &[("otlp", true), ("prometheus", false), ("none", false)],
            )?,
            logs: exporter("OTEL_LOGS_EXPORTER", &[("otlp", true), ("none", false)])?,
        };

        let otlp_protocol = env
            .choice(
                "OTEL_EXPORTER_OTLP_PROTOCOL",
                &[
                    ("grpc", OtlpProtocol::Grpc),
                    ("http/protobuf", OtlpProtocol::HttpProtobuf),
                ],
            )
            .map_err(|mut e| {
                e.allowed.push_str(" (http/json is not supported)");
                e
            })?
            .unwrap_or(OtlpProtocol::Grpc);
        // Local: export only when asked. Cloud: the collector sidecar listens on localhost.
        let otlp_endpoint = match env.parse(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "an absolute http:// or https:// URL, e.g. http://localhost:4317",
            parse_endpoint,
        )? {
            None if persona == Persona::Cloud => Some(otlp_protocol.default_endpoint().to_owned()),
            endpoint => endpoint,
        };
        let otlp_headers = match env.get("OTEL_EXPORTER_OTLP_HEADERS") {
            None => Vec::new(),
            Some(raw) => parse_headers(&raw)?,
        };
        let otlp_timeout = env.millis(
            "OTEL_EXPORTER_OTLP_TIMEOUT",
            Duration::from_millis(10_000),
            MILLIS,
        )?;
        let otlp_tls = read_tls(env, otlp_endpoint.as_deref())?;

        let sampler = parse_sampler(env)?;
        let span_batch = parse_batch(env, BatchVars::SPANS)?;
        let log_batch = parse_batch(env, BatchVars::LOGS)?;
        let metric_export_interval = env.millis(
            "OTEL_METRIC_EXPORT_INTERVAL",
            Duration::from_millis(60_000),
            MILLIS,
        )?;

        let log_format = env
            .choice(
                "APP_LOG_FORMAT",
                &[
                    ("json", LogFormat::Json),
                    ("gcp", LogFormat::Gcp),
                    ("pretty", LogFormat::Pretty),
                ],
            )?
            .unwrap_or(match persona {
                Persona::Cloud => LogFormat::Gcp,
                Persona::Local if std::io::IsTerminal::is_terminal(&std::io::stdout()) => {
                    LogFormat::Pretty
                }
                Persona::Local => LogFormat::Json,
            });
        let log_filter = env.get("RUST_LOG").unwrap_or_else(|| "info".to_owned());
        crate::log_filter::LogFilter::parse(&log_filter)
            .map_err(|why| ConfigError::new("RUST_LOG", log_filter.clone(), why))?;

        let pii_mode = env
            .choice(
                "APP_PII_MODE",
                &[
                    ("pseudonym", PiiMode::Pseudonym),
                    ("off", PiiMode::Off),
                    ("full", PiiMode::Full),
                ],
            )?
            .unwrap_or(PiiMode::Pseudonym);
        let pii_key = env.secret(
            "APP_PII_KEY",
            "a secret of at least 16 bytes (e.g. `openssl rand -hex 32`)",
            |key| key.len() >= 16,
        )?;
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

        let incoming_trace = env
            .choice(
                "APP_TRACE_INCOMING",
                &[
                    ("continue", IncomingTrace::Continue),
                    ("link", IncomingTrace::Link),
                ],
            )?
            .unwrap_or(IncomingTrace::Continue);

        let spans_outside_requests = env
            .choice(
                "APP_SPANS_OUTSIDE_REQUESTS",
                &[
                    ("trace", SpansOutsideRequests::Trace),
                    ("drop", SpansOutsideRequests::Drop),
                ],
            )?
            .unwrap_or(SpansOutsideRequests::Trace);

        let access_log_exclude = route_list(
            env,
            "APP_ACCESS_LOG_EXCLUDE",
            &["/healthz", "/readyz", "/metrics"],
            "comma-separated route templates starting with '/', e.g. /healthz,/metrics",
        )?;

        let metric_cardinality_limit = env.integer(
            "APP_METRIC_CARDINALITY_LIMIT",
            DEFAULT_CARDINALITY_LIMIT,
            10..=10_000,
        )?;

        let mut gcp_project = match env.get("APP_GCP_PROJECT") {
            Some(project) => Some(project),
            None => env.get("GOOGLE_CLOUD_PROJECT"),
        };
        if let Some(project) = &gcp_project
            && !crate::gcp_metadata::valid_project_id(project)
        {
            let variable = if env.get("APP_GCP_PROJECT").is_some() {
                "APP_GCP_PROJECT"
            } else {
                "GOOGLE_CLOUD_PROJECT"
            };
            return Err(ConfigError::new(
                variable,
                project.clone(),
                "a Google Cloud project id: lowercase letters, digits and '-' (at most 128 bytes)",
            ));
        }

        let trusted_proxies = crate::layer::client_address::from_env(env, persona)?;
        let untraced_routes = if on_off(env, "APP_TRACE_PROBES", false)? {
            Vec::new()
        } else {
            route_list(
                env,
                "APP_PROBE_ROUTES",
                &["/healthz", "/readyz"],
                "comma-separated route templates starting with '/', e.g. /healthz,/readyz",
            )?
        };
        let sentry = crate::sentry::from_env(env)?;

        // Last, after every value was checked: the only step that may wait (at most
        // METADATA_TIMEOUT), and only in the cloud persona.
        let metadata_default = persona == Persona::Cloud;
        let metadata_host = env
            .parse(
                "GCE_METADATA_HOST",
                "host or host:port of the metadata server, e.g. metadata.google.internal (no scheme, no path)",
                |host| crate::gcp_metadata::valid_host(host).then(|| host.to_owned()),
            )?
            .unwrap_or_else(|| crate::gcp_metadata::DEFAULT_METADATA_HOST.to_owned());
        let (gcp_region, gcp_instance_id, gcp_metadata) =
            if on_off(env, "APP_GCP_METADATA", metadata_default)? {
                let found = crate::gcp_metadata::fetch(
                    &metadata_host,
                    crate::gcp_metadata::METADATA_TIMEOUT,
                );
                if gcp_project.is_none() {
                    gcp_project = found.project_id;
                }
                (
                    found.region,
                    found.instance_id,
                    MetadataLookup::Asked {
                        host: metadata_host,
                        errors: found.errors,
                    },
                )
            } else {
                (None, None, MetadataLookup::Skipped)
            };

        Ok(Self {
            persona,
            service_name,
            service_version,
            deployment_environment,
            sdk_disabled,
            otlp_signals,
            otlp_endpoint,
            otlp_protocol,
            otlp_headers,
            otlp_timeout,
            otlp_tls,
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
            gcp_region,
            gcp_instance_id,
            gcp_metadata,
            trusted_proxies,
            untraced_routes,
            sentry,
            cloud_run_service: env.get("K_SERVICE"),
            cloud_run_revision: env.get("K_REVISION"),
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

    /// Uses `tls` for every signal's export (builder style, for tests and examples).
    pub fn with_otlp_tls(mut self, tls: OtlpTls) -> Self {
        self.otlp_tls = OtlpTlsBySignal::all(tls);
        self
    }

    /// Whether OTLP export is on for at least one signal (an endpoint is set, the SDK is not
    /// disabled, and not every `OTEL_*_EXPORTER` is `none`).
    pub fn otlp_enabled(&self) -> bool {
        OtlpSignal::ALL
            .iter()
            .any(|signal| self.otlp_enabled_for(*signal))
    }

    /// Whether `signal` is exported over OTLP: an endpoint is set, the SDK is not disabled and
    /// the signal's `OTEL_*_EXPORTER` is `otlp` (the default).
    pub fn otlp_enabled_for(&self, signal: OtlpSignal) -> bool {
        self.otlp_endpoint.is_some() && !self.sdk_disabled && self.otlp_signals.is_on(signal)
    }

    /// Where `signal` is exported, safe to print (no user info, query or fragment; headers
    /// are never part of it): the gRPC endpoint, or the OTLP/HTTP URL with the signal's path.
    /// `None` when export is off.
    pub fn otlp_target(&self, signal: OtlpSignal) -> Option<String> {
        if !self.otlp_enabled_for(signal) {
            return None;
        }
        let base = safe_endpoint(self.otlp_endpoint.as_deref().unwrap_or_default());
        Some(match self.otlp_protocol {
            OtlpProtocol::Grpc => base,
            OtlpProtocol::HttpProtobuf => format!("{base}{}", signal.http_path()),
        })
    }
}

impl OtlpProtocol {
    /// `grpc` or `http/protobuf`, as in `OTEL_EXPORTER_OTLP_PROTOCOL`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Grpc => "grpc",
            Self::HttpProtobuf => "http/protobuf",
        }
    }

    /// The local collector's endpoint for this protocol ([`DEFAULT_OTLP_GRPC_ENDPOINT`] or
    /// [`DEFAULT_OTLP_HTTP_ENDPOINT`]).
    pub fn default_endpoint(self) -> &'static str {
        match self {
            Self::Grpc => DEFAULT_OTLP_GRPC_ENDPOINT,
            Self::HttpProtobuf => DEFAULT_OTLP_HTTP_ENDPOINT,
        }
    }
}

/// `on` or `off` (`default` when unset).
fn on_off(env: &EnvReader<'_>, variable: &'static str, default: bool) -> Result<bool, ConfigError> {
    Ok(env
        .choice(variable, &[("on", true), ("off", false)])?
        .unwrap_or(default))
}

/// A comma-separated list of route templates (`default` when unset). Not trimmed-to-unset: an
/// empty value means "none".
fn route_list(
    env: &EnvReader<'_>,
    variable: &'static str,
    default: &[&str],
    allowed: &str,
) -> Result<Vec<String>, ConfigError> {
    match env.raw(variable) {
        None => Ok(default.iter().map(|route| (*route).to_owned()).collect()),
        Some(raw) => raw
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|route| {
                if route.starts_with('/') {
                    Ok(route.to_owned())
                } else {
                    Err(ConfigError::new(variable, raw.clone(), allowed))
                }
            })
            .collect(),
    }
}

/// Milliseconds accepted by every duration variable of this module.
const MILLIS: std::ops::RangeInclusive<u64> = 1..=3_600_000;

/// `scheme://host:port/path` of an endpoint: no user info, no query, no fragment.
pub(crate) fn safe_endpoint(endpoint: &str) -> String {
    let endpoint = endpoint.split(['?', '#']).next().unwrap_or("");
    let (scheme, rest) = endpoint
        .split_once("://")
        .map_or(("", endpoint), |(s, r)| (s, r));
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if scheme.is_empty() {
        format!("{host}{path}")
    } else {
        format!("{scheme}://{host}{path}")
    }
}

fn parse_endpoint(endpoint: &str) -> Option<String> {
    let ok = (endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        && endpoint
            .parse::<http::Uri>()
            .is_ok_and(|uri| uri.host().is_some());
    ok.then(|| endpoint.trim_end_matches('/').to_owned())
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

fn parse_sampler(env: &EnvReader<'_>) -> Result<SamplerConfig, ConfigError> {
    let ratio = || -> Result<f64, ConfigError> {
        Ok(env
            .parse(
                "OTEL_TRACES_SAMPLER_ARG",
                "a ratio between 0 and 1",
                |raw| raw.parse::<f64>().ok().filter(|r| (0.0..=1.0).contains(r)),
            )?
            .unwrap_or(1.0))
    };
    #[derive(Clone, Copy)]
    enum Name {
        AlwaysOn,
        AlwaysOff,
        Ratio,
        ParentOn,
        ParentOff,
        ParentRatio,
    }
    let name = env
        .choice(
            "OTEL_TRACES_SAMPLER",
            &[
                ("always_on", Name::AlwaysOn),
                ("always_off", Name::AlwaysOff),
                ("traceidratio", Name::Ratio),
                ("parentbased_always_on", Name::ParentOn),
                ("parentbased_always_off", Name::ParentOff),
                ("parentbased_traceidratio", Name::ParentRatio),
            ],
        )?
        .unwrap_or(Name::ParentOn);
    Ok(match name {
        Name::AlwaysOn => SamplerConfig::AlwaysOn,
        Name::AlwaysOff => SamplerConfig::AlwaysOff,
        Name::Ratio => SamplerConfig::TraceIdRatio(ratio()?),
        Name::ParentOn => SamplerConfig::ParentBasedAlwaysOn,
        Name::ParentOff => SamplerConfig::ParentBasedAlwaysOff,
        Name::ParentRatio => SamplerConfig::ParentBasedTraceIdRatio(ratio()?),
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

fn parse_batch(env: &EnvReader<'_>, vars: BatchVars) -> Result<BatchSettings, ConfigError> {
    const COUNT: std::ops::RangeInclusive<usize> = 1..=1_000_000;
    let max_queue_size = env.integer(vars.queue, 2_048, COUNT)?;
    let max_export_batch_size = env.integer(vars.batch, 512, COUNT)?;
    if max_export_batch_size > max_queue_size {
        return Err(ConfigError::new(
            vars.batch,
            max_export_batch_size.to_string(),
            format!("at most {} ({})", max_queue_size, vars.queue),
        ));
    }
    Ok(BatchSettings {
        max_queue_size,
        schedule_delay: env.millis(
            vars.delay,
            Duration::from_millis(vars.default_delay_ms),
            MILLIS,
        )?,
        max_export_batch_size,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::HashMap;

    /// Reads `pairs`; the metadata server is not asked unless `pairs` say so (the cloud
    /// persona's lookup is tested against a fake server in the integration tests).
    fn load(pairs: &[(&str, &str)]) -> Result<TelemetryConfig, ConfigError> {
        let mut env: HashMap<String, String> =
            HashMap::from([("APP_GCP_METADATA".to_owned(), "off".to_owned())]);
        env.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        TelemetryConfig::from_lookup("shop", "1.2.3", |k| env.get(k).cloned())
    }

    #[test]
    fn cloud_defaults_for_proxies_probes_and_the_project() {
        let key = ("APP_PII_KEY", "0123456789abcdef0123");
        let cloud = load(&[("APP_ENV", "cloud"), key]).unwrap();
        assert!(matches!(
            cloud.trusted_proxies,
            TrustedProxies::Hops { count: 1, .. }
        ));
        assert_eq!(cloud.untraced_routes, ["/healthz", "/readyz"]);
        assert_eq!(cloud.gcp_metadata, MetadataLookup::Skipped);
        assert!(cloud.sentry.is_none());
        let local = load(&[]).unwrap();
        assert_eq!(local.trusted_proxies, TrustedProxies::Off);
        let traced = load(&[("APP_TRACE_PROBES", "on")]).unwrap();
        assert!(traced.untraced_routes.is_empty());
        let probes = load(&[("APP_PROBE_ROUTES", "/livez, /ready")]).unwrap();
        assert_eq!(probes.untraced_routes, ["/livez", "/ready"]);
        // The explicit project wins, APP_GCP_PROJECT first.
        let project = load(&[
            ("GOOGLE_CLOUD_PROJECT", "from-google"),
            ("APP_GCP_PROJECT", "from-app"),
        ])
        .unwrap();
        assert_eq!(project.gcp_project.as_deref(), Some("from-app"));
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
            ("APP_PROBE_ROUTES", "healthz"),
            ("APP_TRACE_PROBES", "yes"),
            ("APP_GCP_METADATA", "maybe"),
            ("GCE_METADATA_HOST", "http://metadata.google.internal/"),
            ("APP_GCP_PROJECT", "My Project"),
            ("GOOGLE_CLOUD_PROJECT", "a/b"),
            ("APP_TRUSTED_PROXIES", "everyone"),
            ("APP_FORWARDED_HEADER", "x-real-ip"),
            ("SENTRY_DSN", "not-a-dsn"),
            ("RUST_LOG", "info,hyper=loud"),
            ("RUST_LOG", "verbose"),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem"),
            (
                "OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY",
                "/nonexistent/client.key",
            ),
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

    fn fixture(name: &str) -> String {
        format!("{}/src/testkit/certs/{name}", env!("CARGO_MANIFEST_DIR"))
    }

    #[test]
    fn default_endpoints_are_the_one_constant_per_protocol() {
        let key = ("APP_PII_KEY", "0123456789abcdef0123");
        let grpc = load(&[("APP_ENV", "cloud"), key]).unwrap();
        assert_eq!(
            grpc.otlp_endpoint.as_deref(),
            Some(DEFAULT_OTLP_GRPC_ENDPOINT)
        );
        let http = load(&[
            ("APP_ENV", "cloud"),
            key,
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ])
        .unwrap();
        assert_eq!(
            http.otlp_endpoint.as_deref(),
            Some(DEFAULT_OTLP_HTTP_ENDPOINT)
        );
        assert_eq!(
            http.otlp_target(OtlpSignal::Logs).as_deref(),
            Some("http://localhost:4318/v1/logs")
        );
    }

    #[test]
    fn tls_files_are_read_per_signal_with_the_general_variable_as_fallback() {
        let c = load(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4317"),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", &fixture("ca.pem")),
            (
                "OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE",
                &fixture("other-ca.pem"),
            ),
            (
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                &fixture("client.pem"),
            ),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", &fixture("client.key")),
        ])
        .unwrap();
        let traces = c.otlp_tls.get(OtlpSignal::Traces);
        let ca = traces.certificate.as_ref().unwrap();
        assert_eq!(ca.variable, "OTEL_EXPORTER_OTLP_CERTIFICATE");
        assert!(ca.pem.starts_with(b"-----BEGIN CERTIFICATE-----"));
        let logs = c.otlp_tls.get(OtlpSignal::Logs);
        assert_eq!(
            logs.certificate.as_ref().unwrap().variable,
            "OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE"
        );
        let client = c.otlp_tls.get(OtlpSignal::Metrics).client.as_ref().unwrap();
        assert_eq!(client.key.variable, "OTEL_EXPORTER_OTLP_CLIENT_KEY");
        // The key's content never prints.
        let debug = format!("{c:?}");
        assert!(!debug.contains("PRIVATE KEY"), "{debug}");
        assert!(debug.contains("client.key"), "{debug}");
    }

    #[test]
    fn bad_tls_files_stop_start_up_naming_their_variable() {
        let https = ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4317");
        let ca = fixture("ca.pem");
        let key = fixture("client.key");
        let cases: [(&[(&str, &str)], &str); 6] = [
            // Unreadable.
            (
                &[
                    https,
                    (
                        "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
                        "/nonexistent/ca.pem",
                    ),
                ],
                "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
            ),
            // A key where certificates belong, and certificates where a key belongs.
            (
                &[https, ("OTEL_EXPORTER_OTLP_CERTIFICATE", &key)],
                "OTEL_EXPORTER_OTLP_CERTIFICATE",
            ),
            (
                &[
                    https,
                    ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", &ca),
                    ("OTEL_EXPORTER_OTLP_CLIENT_KEY", &ca),
                ],
                "OTEL_EXPORTER_OTLP_CLIENT_KEY",
            ),
            // Half a client identity.
            (
                &[https, ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", &ca)],
                "OTEL_EXPORTER_OTLP_CLIENT_KEY",
            ),
            (
                &[https, ("OTEL_EXPORTER_OTLP_CLIENT_KEY", &key)],
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
            ),
            // TLS files with a plain-text endpoint would be ignored.
            (
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
                    ("OTEL_EXPORTER_OTLP_CERTIFICATE", &ca),
                ],
                "OTEL_EXPORTER_OTLP_CERTIFICATE",
            ),
        ];
        for (env, variable) in cases {
            let err = load(env).unwrap_err();
            assert_eq!(err.variable, variable, "{env:?}");
            assert!(err.to_string().contains(variable), "{err}");
            assert!(!err.to_string().contains("BEGIN"), "{err}");
        }
        // Not a PEM file at all.
        let not_pem = format!("{}/Cargo.toml", env!("CARGO_MANIFEST_DIR"));
        let err = load(&[https, ("OTEL_EXPORTER_OTLP_CERTIFICATE", &not_pem)]).unwrap_err();
        assert_eq!(err.variable, "OTEL_EXPORTER_OTLP_CERTIFICATE");
        assert!(err.allowed.contains("CERTIFICATE"), "{err}");
    }

    #[test]
    fn the_export_target_never_shows_credentials() {
        let c = load(&[
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "https://user:pw@collector:4318/otlp?key=s",
            ),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=abc123"),
        ])
        .unwrap();
        assert_eq!(
            c.otlp_target(OtlpSignal::Traces).as_deref(),
            Some("https://collector:4318/otlp/v1/traces")
        );
        let off = load(&[]).unwrap();
        assert_eq!(off.otlp_target(OtlpSignal::Traces), None);
    }
}
