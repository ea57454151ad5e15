//! The transport of OTLP export: sends [`crate::otlp`]'s bytes of the record queues
//! (spans and logs) over OTLP/gRPC (a tonic channel with a pass-through codec) or OTLP/HTTP
//! protobuf ([`RuntimeHttpClient`]), and builds the stock `opentelemetry-otlp` metric exporter
//! on the same channel settings (metrics leave once per interval, not once per request).
//!
//! TLS: an `https://` endpoint is reached over rustls (aws-lc-rs provider). The collector's
//! certificate is verified against the platform's root certificates (the OS store, e.g.
//! `/etc/ssl/certs`; `SSL_CERT_FILE` / `SSL_CERT_DIR` override it), or against
//! `OTEL_EXPORTER_OTLP_[SIGNAL_]CERTIFICATE` alone when that is set; a client certificate and
//! key (`…_CLIENT_CERTIFICATE`, `…_CLIENT_KEY`) make it mutual TLS. Everything is checked while
//! the instance is built: a TLS setting that cannot work stops start-up naming its variable.
//!
//! [`announce`] writes the one start-up line saying whether export is on and where it goes.

use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes};
use http::{HeaderName, HeaderValue, Request};
use opentelemetry_http::HttpClient;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

use crate::config::{OtlpProtocol, OtlpSignal, OtlpTls, TelemetryConfig, tls_error};
use crate::log_filter::LogFilter;
use crate::log_format::{FieldValue, own_line};
use crate::log_sink::LogSink;
use crate::otlp_http::RuntimeHttpClient;

/// Where encoded export requests go.
#[derive(Debug, Clone)]
pub(crate) enum Transport {
    Grpc {
        client: tonic::client::Grpc<tonic::transport::Channel>,
        metadata: tonic::metadata::MetadataMap,
        path: &'static str,
    },
    Http {
        client: Arc<RuntimeHttpClient>,
        url: http::Uri,
        headers: Vec<(HeaderName, HeaderValue)>,
    },
}

/// The configured endpoint (the protocol's local default when none is set).
fn endpoint(config: &TelemetryConfig) -> &str {
    config
        .otlp_endpoint
        .as_deref()
        .unwrap_or(config.otlp_protocol.default_endpoint())
}

/// The gRPC method of a signal's export service.
fn grpc_path(signal: OtlpSignal) -> &'static str {
    match signal {
        OtlpSignal::Traces => "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        OtlpSignal::Metrics => "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
        OtlpSignal::Logs => "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
    }
}

/// A lazily connecting channel to the configured endpoint, with TLS for `https://`.
pub(crate) fn grpc_channel(
    config: &TelemetryConfig,
    signal: OtlpSignal,
) -> Result<tonic::transport::Channel, String> {
    let endpoint = endpoint(config);
    let mut channel = tonic::transport::Endpoint::from_shared(endpoint.to_owned())
        .map_err(|e| format!("invalid endpoint {endpoint}: {e}"))?
        .timeout(config.otlp_timeout)
        .connect_timeout(config.otlp_timeout);
    if endpoint.starts_with("https://") {
        channel = channel
            .tls_config(grpc_tls(config.otlp_tls.get(signal)))
            .map_err(|e| tls_error(config.otlp_tls.get(signal), signal, &e))?;
    }
    Ok(channel.connect_lazy())
}

fn grpc_tls(tls: &OtlpTls) -> tonic::transport::ClientTlsConfig {
    let mut config = tonic::transport::ClientTlsConfig::new();
    config = match &tls.certificate {
        Some(ca) => config.ca_certificate(tonic::transport::Certificate::from_pem(&ca.pem)),
        None => config.with_native_roots(),
    };
    if let Some(client) = &tls.client {
        config = config.identity(tonic::transport::Identity::from_pem(
            &client.certificate.pem,
            &client.key.pem,
        ));
    }
    config
}

impl Transport {
    pub(crate) fn new(config: &TelemetryConfig, signal: OtlpSignal) -> Result<Self, String> {
        let endpoint = endpoint(config);
        match config.otlp_protocol {
            OtlpProtocol::Grpc => Ok(Self::Grpc {
                client: tonic::client::Grpc::new(grpc_channel(config, signal)?),
                metadata: grpc_metadata(config),
                path: grpc_path(signal),
            }),
            OtlpProtocol::HttpProtobuf => {
                let url = format!("{endpoint}{}", signal.http_path())
                    .parse()
                    .map_err(|e| format!("invalid endpoint {endpoint}: {e}"))?;
                let headers = config
                    .otlp_headers
                    .iter()
                    .filter_map(|(k, v)| {
                        Some((
                            HeaderName::from_bytes(k.as_bytes()).ok()?,
                            HeaderValue::from_str(v.expose()).ok()?,
                        ))
                    })
                    .collect();
                Ok(Self::Http {
                    client: Arc::new(RuntimeHttpClient::new(config, signal)?),
                    url,
                    headers,
                })
            }
        }
    }

    pub(crate) async fn send(&self, body: Bytes) -> OTelSdkResult {
        match self {
            Self::Grpc {
                client,
                metadata,
                path,
            } => {
                let mut client = client.clone();
                client.ready().await.map_err(|e| {
                    OTelSdkError::InternalFailure(format!("OTLP/gRPC channel not ready: {e}"))
                })?;
                let mut request = tonic::Request::new(body);
                *request.metadata_mut() = metadata.clone();
                client
                    .unary(
                        request,
                        http::uri::PathAndQuery::from_static(path),
                        RawCodec,
                    )
                    .await
                    .map(|_| ())
                    .map_err(|status| {
                        OTelSdkError::InternalFailure(format!(
                            "OTLP/gRPC export failed: {:?} {}",
                            status.code(),
                            status.message()
                        ))
                    })
            }
            Self::Http {
                client,
                url,
                headers,
            } => {
                let mut request = Request::post(url.clone())
                    .header(http::header::CONTENT_TYPE, "application/x-protobuf")
                    .body(body)
                    .map_err(|e| OTelSdkError::InternalFailure(e.to_string()))?;
                for (name, value) in headers {
                    request.headers_mut().insert(name.clone(), value.clone());
                }
                let response = client.send_bytes(request).await.map_err(|e| {
                    OTelSdkError::InternalFailure(format!("OTLP/HTTP export failed: {e}"))
                })?;
                if response.status().is_success() {
                    Ok(())
                } else {
                    Err(OTelSdkError::InternalFailure(format!(
                        "OTLP/HTTP export answered {}",
                        response.status()
                    )))
                }
            }
        }
    }
}

/// `OTEL_EXPORTER_OTLP_HEADERS` as gRPC metadata (entries that are not valid ASCII metadata
/// are skipped).
pub(crate) fn grpc_metadata(config: &TelemetryConfig) -> tonic::metadata::MetadataMap {
    let mut metadata = tonic::metadata::MetadataMap::new();
    for (key, value) in &config.otlp_headers {
        if let (Ok(k), Ok(v)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            value
                .expose()
                .parse::<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>(),
        ) {
            metadata.insert(k, v);
        }
    }
    metadata
}

/// The stock OTLP metric exporter on the same transport settings (endpoint, TLS, headers,
/// timeout) as the span and log queues.
pub(crate) fn metric_exporter(
    config: &TelemetryConfig,
) -> Result<opentelemetry_otlp::MetricExporter, String> {
    let signal = OtlpSignal::Metrics;
    let built = match config.otlp_protocol {
        OtlpProtocol::Grpc => opentelemetry_otlp::MetricExporter::builder()
            .with_tonic()
            .with_channel(grpc_channel(config, signal)?)
            .with_timeout(config.otlp_timeout)
            .with_metadata(grpc_metadata(config))
            .build(),
        OtlpProtocol::HttpProtobuf => opentelemetry_otlp::MetricExporter::builder()
            .with_http()
            .with_endpoint(format!("{}{}", endpoint(config), signal.http_path()))
            .with_timeout(config.otlp_timeout)
            .with_headers(
                config
                    .otlp_headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.expose().to_owned()))
                    .collect(),
            )
            .with_http_client(RuntimeHttpClient::new(config, signal)?)
            .build(),
    };
    built.map_err(|e| format!("cannot build the OTLP metrics exporter: {e}"))
}

/// Target of the start-up line.
const ANNOUNCE_TARGET: &str = "telemetry::startup";

/// Writes the one start-up line (INFO, stdout only) saying whether OTLP export is on, and
/// where each signal goes over which protocol and security. Never credentials: the endpoint
/// loses its user info and query, headers appear as a count, TLS files by variable only.
pub(crate) fn announce(
    config: &TelemetryConfig,
    filter: &LogFilter,
    sink: &LogSink,
    extra: &[(&'static str, String)],
) {
    if !filter.enabled(ANNOUNCE_TARGET, &tracing::Level::INFO) {
        return;
    }
    let (message, export) = if config.otlp_enabled() {
        ("OTLP export is on", "on")
    } else if config.otlp_endpoint.is_some() && config.sdk_disabled {
        (
            "OTLP export is off: OTEL_SDK_DISABLED=true (stdout logs and /metrics stay on)",
            "disabled",
        )
    } else if config.otlp_endpoint.is_some() {
        (
            "OTLP export is off: OTEL_TRACES_EXPORTER, OTEL_METRICS_EXPORTER and OTEL_LOGS_EXPORTER are none (stdout logs and /metrics stay on)",
            "disabled",
        )
    } else {
        (
            "OTLP export is off: OTEL_EXPORTER_OTLP_ENDPOINT is not set (stdout logs and /metrics stay on)",
            "off",
        )
    };
    let targets: Vec<(OtlpSignal, String)> = OtlpSignal::ALL
        .iter()
        .filter_map(|signal| Some((*signal, config.otlp_target(*signal)?)))
        .collect();
    let security: Vec<(OtlpSignal, String)> = targets
        .iter()
        .map(|(signal, target)| (*signal, transport_security(config, *signal, target)))
        .collect();
    let mut fields: Vec<(&str, FieldValue<'_>)> = vec![("otlp.export", FieldValue::Static(export))];
    if !targets.is_empty() {
        fields.push((
            "otlp.protocol",
            FieldValue::Static(config.otlp_protocol.name()),
        ));
        for ((signal, target), (_, tls)) in targets.iter().zip(&security) {
            let (target_key, tls_key) = match signal {
                OtlpSignal::Traces => ("otlp.traces", "otlp.traces.tls"),
                OtlpSignal::Metrics => ("otlp.metrics", "otlp.metrics.tls"),
                OtlpSignal::Logs => ("otlp.logs", "otlp.logs.tls"),
            };
            fields.push((target_key, FieldValue::Str(target)));
            fields.push((tls_key, FieldValue::Str(tls)));
        }
        fields.push((
            "otlp.headers",
            FieldValue::U64(config.otlp_headers.len() as u64),
        ));
    }
    for (key, value) in extra {
        fields.push((key, FieldValue::Str(value)));
    }
    sink.write(&own_line(
        config.log_format,
        config.gcp_project.as_deref(),
        &config.service_name,
        tracing::Level::INFO,
        ANNOUNCE_TARGET,
        message,
        &fields,
    ));
}

/// `plaintext`, `platform roots`, or the certificate variables in use (never their content).
fn transport_security(config: &TelemetryConfig, signal: OtlpSignal, target: &str) -> String {
    if !target.starts_with("https://") {
        return "plaintext".to_owned();
    }
    let tls = config.otlp_tls.get(signal);
    let mut out = match &tls.certificate {
        Some(ca) => format!("CA from {}", ca.variable),
        None => "platform roots".to_owned(),
    };
    if let Some(client) = &tls.client {
        out.push_str(", client certificate from ");
        out.push_str(client.certificate.variable);
    }
    out
}

/// Sends request bodies that are already encoded; ignores the (empty) response message.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = ();
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = ();
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<()>, Self::Error> {
        let remaining = src.remaining();
        src.advance(remaining);
        Ok(Some(()))
    }
}
