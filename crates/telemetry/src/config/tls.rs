//! The OTLP exporter's TLS files: which variables name them (the general one and the
//! per-signal ones, the per-signal one winning), reading and checking them at start-up, and
//! the error text of a TLS set-up that fails later, naming those variables.

use std::fmt;
use std::path::PathBuf;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::{OtlpSignal, safe_endpoint};
use crate::env::{ConfigError, EnvReader};

/// A PEM file named by a configuration variable, read and checked at start-up.
#[derive(Clone, PartialEq, Eq)]
pub struct PemFile {
    /// The variable that named the file (for error messages).
    pub variable: &'static str,
    /// The path as given.
    pub path: PathBuf,
    /// The file's content.
    pub pem: Vec<u8>,
}

impl fmt::Debug for PemFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The content may be a private key: only the variable and the path are shown.
        f.debug_struct("PemFile")
            .field("variable", &self.variable)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// TLS files of one signal's OTLP export, per the OpenTelemetry exporter specification.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OtlpTls {
    /// `OTEL_EXPORTER_OTLP_[SIGNAL_]CERTIFICATE`: the trusted CA certificate(s) that verify
    /// the collector; when set they replace the platform's root certificates.
    pub certificate: Option<PemFile>,
    /// `OTEL_EXPORTER_OTLP_[SIGNAL_]CLIENT_CERTIFICATE` and `…_CLIENT_KEY`: the client
    /// certificate chain and its private key for mutual TLS (both or neither).
    pub client: Option<ClientIdentity>,
}

/// A client certificate chain with its private key (mutual TLS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// The certificate chain (PEM).
    pub certificate: PemFile,
    /// The private key (PEM; `Debug` shows only its path).
    pub key: PemFile,
}

/// [`OtlpTls`] of each signal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OtlpTlsBySignal {
    /// Spans.
    pub traces: OtlpTls,
    /// Metrics.
    pub metrics: OtlpTls,
    /// Log records.
    pub logs: OtlpTls,
}

impl OtlpTlsBySignal {
    /// The files of `signal`.
    pub fn get(&self, signal: OtlpSignal) -> &OtlpTls {
        match signal {
            OtlpSignal::Traces => &self.traces,
            OtlpSignal::Metrics => &self.metrics,
            OtlpSignal::Logs => &self.logs,
        }
    }

    /// The same files for every signal (builder style, for tests).
    pub fn all(tls: OtlpTls) -> Self {
        Self {
            traces: tls.clone(),
            metrics: tls.clone(),
            logs: tls,
        }
    }
}

/// The TLS variables of one kind: the general one and its per-signal variants.
struct TlsVars {
    general: &'static str,
    traces: &'static str,
    metrics: &'static str,
    logs: &'static str,
}

impl TlsVars {
    const CERTIFICATE: Self = Self {
        general: "OTEL_EXPORTER_OTLP_CERTIFICATE",
        traces: "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
        metrics: "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE",
        logs: "OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE",
    };
    const CLIENT_CERTIFICATE: Self = Self {
        general: "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
        traces: "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
        metrics: "OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE",
        logs: "OTEL_EXPORTER_OTLP_LOGS_CLIENT_CERTIFICATE",
    };
    const CLIENT_KEY: Self = Self {
        general: "OTEL_EXPORTER_OTLP_CLIENT_KEY",
        traces: "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
        metrics: "OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY",
        logs: "OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY",
    };

    fn signal(&self, signal: OtlpSignal) -> &'static str {
        match signal {
            OtlpSignal::Traces => self.traces,
            OtlpSignal::Metrics => self.metrics,
            OtlpSignal::Logs => self.logs,
        }
    }
}

/// What a PEM file must hold.
#[derive(Clone, Copy)]
enum PemKind {
    Certificates,
    PrivateKey,
}

/// Reads and checks the TLS files of every signal. The per-signal variable wins over the
/// general one (the OpenTelemetry specification's precedence).
pub(super) fn read_tls(
    env: &EnvReader<'_>,
    endpoint: Option<&str>,
) -> Result<OtlpTlsBySignal, ConfigError> {
    let read = |vars: &TlsVars, kind: PemKind| -> Result<[Option<PemFile>; 3], ConfigError> {
        let general = read_pem(env, vars.general, kind)?;
        let mut out: [Option<PemFile>; 3] = [None, None, None];
        for (slot, signal) in out.iter_mut().zip(OtlpSignal::ALL) {
            *slot = match read_pem(env, vars.signal(signal), kind)? {
                Some(file) => Some(file),
                None => general.clone(),
            };
        }
        Ok(out)
    };
    let certificates = read(&TlsVars::CERTIFICATE, PemKind::Certificates)?;
    let client_certificates = read(&TlsVars::CLIENT_CERTIFICATE, PemKind::Certificates)?;
    let client_keys = read(&TlsVars::CLIENT_KEY, PemKind::PrivateKey)?;

    let mut tls = Vec::with_capacity(3);
    for ((certificate, client_certificate), client_key) in certificates
        .into_iter()
        .zip(client_certificates)
        .zip(client_keys)
    {
        let client = match (client_certificate, client_key) {
            (None, None) => None,
            (Some(certificate), Some(key)) => Some(ClientIdentity { certificate, key }),
            (Some(certificate), None) => {
                return Err(ConfigError::new(
                    TlsVars::CLIENT_KEY.general,
                    "",
                    format!(
                        "the client's private key (PEM file) to go with {}: mutual TLS needs both",
                        certificate.variable
                    ),
                ));
            }
            (None, Some(key)) => {
                return Err(ConfigError::new(
                    TlsVars::CLIENT_CERTIFICATE.general,
                    "",
                    format!(
                        "the client's certificate (PEM file) to go with {}: mutual TLS needs both",
                        key.variable
                    ),
                ));
            }
        };
        tls.push(OtlpTls {
            certificate,
            client,
        });
    }
    let [traces, metrics, logs]: [OtlpTls; 3] = tls
        .try_into()
        .unwrap_or_else(|_| unreachable!("one entry per signal"));
    let tls = OtlpTlsBySignal {
        traces,
        metrics,
        logs,
    };

    // TLS files with a plain-text endpoint would be silently ignored: refuse instead.
    if let Some(endpoint) = endpoint
        && endpoint.starts_with("http://")
        && let Some(file) = OtlpSignal::ALL.iter().find_map(|s| {
            let tls = tls.get(*s);
            tls.certificate
                .as_ref()
                .or(tls.client.as_ref().map(|c| &c.certificate))
        })
    {
        return Err(ConfigError::new(
            file.variable,
            file.path.display().to_string(),
            format!(
                "unset with a plain-text endpoint (OTEL_EXPORTER_OTLP_ENDPOINT={}): TLS files apply only to an https:// endpoint",
                safe_endpoint(endpoint)
            ),
        ));
    }
    Ok(tls)
}

/// Reads the PEM file named by `variable` and checks it holds `kind`.
fn read_pem(
    env: &EnvReader<'_>,
    variable: &'static str,
    kind: PemKind,
) -> Result<Option<PemFile>, ConfigError> {
    let Some(path) = env.get(variable) else {
        return Ok(None);
    };
    let what = match kind {
        PemKind::Certificates => "a PEM file of one or more CERTIFICATE blocks",
        PemKind::PrivateKey => "a PEM file of one PRIVATE KEY (PKCS#8, PKCS#1 or SEC1)",
    };
    let pem = std::fs::read(&path).map_err(|error| {
        ConfigError::new(
            variable,
            path.clone(),
            format!("{what}, readable by the service (reading it failed: {error})"),
        )
    })?;
    let valid = match kind {
        PemKind::Certificates => {
            let certificates: Result<Vec<CertificateDer<'_>>, _> =
                CertificateDer::pem_slice_iter(&pem).collect();
            certificates.is_ok_and(|c| !c.is_empty())
        }
        PemKind::PrivateKey => PrivateKeyDer::from_pem_slice(&pem).is_ok(),
    };
    if !valid {
        return Err(ConfigError::new(
            variable,
            path,
            format!("{what} (this file is not)"),
        ));
    }
    Ok(Some(PemFile {
        variable,
        path: PathBuf::from(path),
        pem,
    }))
}

/// A TLS set-up error, naming the variables it came from (or the platform's roots).
pub(crate) fn tls_error(
    tls: &OtlpTls,
    signal: OtlpSignal,
    error: &dyn std::error::Error,
) -> String {
    let mut error_text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        error_text.push_str(": ");
        error_text.push_str(&cause.to_string());
        source = cause.source();
    }
    let mut variables: Vec<&str> = Vec::new();
    if let Some(ca) = &tls.certificate {
        variables.push(ca.variable);
    }
    if let Some(client) = &tls.client {
        variables.push(client.certificate.variable);
        variables.push(client.key.variable);
    }
    if variables.is_empty() {
        format!(
            "TLS for the {} export failed with the platform's root certificates (set SSL_CERT_FILE or OTEL_EXPORTER_OTLP_CERTIFICATE): {error_text}",
            signal.name()
        )
    } else {
        format!(
            "TLS for the {} export cannot use {}: {error_text}",
            signal.name(),
            variables.join(", ")
        )
    }
}
