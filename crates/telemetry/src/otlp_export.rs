//! The transport of the record queues (spans and logs): sends [`crate::otlp`]'s bytes
//! over OTLP/gRPC (a tonic channel with a pass-through codec) or OTLP/HTTP protobuf
//! ([`RuntimeHttpClient`]).
//! Metrics keep the stock `opentelemetry-otlp` exporter: they leave once per interval, not once
//! per request.

use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes};
use http::{HeaderName, HeaderValue, Request};
use opentelemetry_http::HttpClient;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

use crate::config::{OtlpProtocol, TelemetryConfig};
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

impl Transport {
    pub(crate) fn new(
        config: &TelemetryConfig,
        grpc_path: &'static str,
        http_path: &str,
    ) -> Result<Self, String> {
        let endpoint = config
            .otlp_endpoint
            .as_deref()
            .unwrap_or("http://localhost:4317");
        match config.otlp_protocol {
            OtlpProtocol::Grpc => {
                let channel = tonic::transport::Endpoint::from_shared(endpoint.to_owned())
                    .map_err(|e| format!("invalid endpoint {endpoint}: {e}"))?
                    .timeout(config.otlp_timeout)
                    .connect_timeout(config.otlp_timeout)
                    .connect_lazy();
                let metadata = grpc_metadata(config);
                Ok(Self::Grpc {
                    client: tonic::client::Grpc::new(channel),
                    metadata,
                    path: grpc_path,
                })
            }
            OtlpProtocol::HttpProtobuf => {
                let url = format!("{endpoint}{http_path}")
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
                    client: Arc::new(RuntimeHttpClient::new(config.otlp_timeout)),
                    url,
                    headers,
                })
            }
        }
    }

    pub(crate) async fn send(&self, body: Vec<u8>) -> OTelSdkResult {
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
                let mut request = tonic::Request::new(Bytes::from(body));
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
                    .body(Bytes::from(body))
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
