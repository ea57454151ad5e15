//! The HTTP client behind OTLP/HTTP export: async reqwest driven by a tokio runtime.
//!
//! Export threads wait with a plain `block_on`. An async client cannot run there (no reactor),
//! and the default blocking client starts a hidden runtime per exporter. Instead each request is
//! spawned onto the runtime current when the client was built — the span and log queues' own
//! export runtime (`otlp::queue`), or the app's runtime for the SDK's metric exporter — and the
//! export thread just waits for its result.
//!
//! An `https://` endpoint uses reqwest's rustls: the platform's root certificates
//! (rustls-platform-verifier), or only `OTEL_EXPORTER_OTLP_[SIGNAL_]CERTIFICATE` when set, and
//! the client identity of `…_CLIENT_CERTIFICATE` / `…_CLIENT_KEY` (see [`crate::otlp_export`]).

use bytes::Bytes;
use http::{Request, Response};
use opentelemetry_http::{HttpClient, HttpError};

use crate::config::{OtlpSignal, TelemetryConfig};

/// Sends OTLP/HTTP requests on the tokio runtime current when it was built.
#[derive(Debug, Clone)]
pub(crate) struct RuntimeHttpClient {
    client: reqwest::Client,
    runtime: Option<tokio::runtime::Handle>,
}

impl RuntimeHttpClient {
    /// The client of `signal`'s export: its timeout and TLS files. Fails (naming the
    /// variables) when the TLS files cannot be used.
    pub(crate) fn new(config: &TelemetryConfig, signal: OtlpSignal) -> Result<Self, String> {
        let tls = config.otlp_tls.get(signal);
        let fail = |e: reqwest::Error| crate::config::tls_error(tls, signal, &e);
        // A queue keeps up to `MAX_EXPORTS_IN_FLIGHT` requests going, each on a connection of
        // its own: keep that many open between exports instead of reconnecting.
        let mut builder = reqwest::Client::builder()
            .timeout(config.otlp_timeout)
            .pool_max_idle_per_host(crate::otlp::queue::MAX_EXPORTS_IN_FLIGHT);
        if let Some(ca) = &tls.certificate {
            // Only this CA: the specification's "trusted certificate" replaces the roots.
            builder = builder
                .tls_certs_only(reqwest::Certificate::from_pem_bundle(&ca.pem).map_err(fail)?);
        }
        if let Some(client) = &tls.client {
            let mut pem = client.certificate.pem.clone();
            pem.push(b'\n');
            pem.extend_from_slice(&client.key.pem);
            builder = builder.identity(reqwest::Identity::from_pem(&pem).map_err(fail)?);
        }
        Ok(Self {
            client: builder.build().map_err(fail)?,
            runtime: tokio::runtime::Handle::try_current().ok(),
        })
    }
}

#[async_trait::async_trait]
impl HttpClient for RuntimeHttpClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let runtime = self
            .runtime
            .clone()
            .ok_or("no tokio runtime for OTLP/HTTP export")?;
        let client = self.client.clone();
        let request = reqwest::Request::try_from(request)?;
        let response = runtime
            .spawn(async move {
                let response = client.execute(request).await?;
                let status = response.status();
                let headers = response.headers().clone();
                let body = response.bytes().await?;
                Ok::<_, reqwest::Error>((status, headers, body))
            })
            .await??;
        let (status, headers, body) = response;
        let mut out = Response::new(body);
        *out.status_mut() = status;
        *out.headers_mut() = headers;
        Ok(out)
    }
}
