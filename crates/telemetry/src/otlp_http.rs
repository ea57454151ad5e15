//! The HTTP client behind OTLP/HTTP export: async reqwest driven by the app's tokio runtime.
//!
//! The SDK's batch processors export from their own threads with a plain `block_on`. An async
//! client cannot run there (no reactor), and the default blocking client starts a hidden
//! runtime per exporter. Instead each request is spawned onto the runtime captured at start-up
//! and the export thread just waits for its result.

use bytes::Bytes;
use http::{Request, Response};
use opentelemetry_http::{HttpClient, HttpError};
use std::time::Duration;

/// Sends OTLP/HTTP requests on the tokio runtime that built the telemetry instance.
#[derive(Debug, Clone)]
pub(crate) struct RuntimeHttpClient {
    client: reqwest::Client,
    runtime: Option<tokio::runtime::Handle>,
}

impl RuntimeHttpClient {
    pub(crate) fn new(timeout: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .pool_max_idle_per_host(2)
            .build()
            .unwrap_or_default();
        Self {
            client,
            runtime: tokio::runtime::Handle::try_current().ok(),
        }
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
