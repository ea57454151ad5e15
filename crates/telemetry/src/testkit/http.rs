//! OTLP/HTTP transport (binary protobuf encoding only): `POST /v1/traces`, `/v1/metrics`
//! and `/v1/logs`, served by axum.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, StatusCode};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;

use super::{ExportRequest, MAX_REQUEST_BYTES, Outcome, Shared, Transport};

const PROTOBUF: &str = "application/x-protobuf";

/// Serves the OTLP/HTTP routes on `listener` (plain TCP or [`super::TlsListener`]) until
/// `shutdown` completes.
pub(crate) async fn serve<L>(
    listener: L,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let result = axum::serve(listener, router(shared))
        .with_graceful_shutdown(shutdown)
        .await;
    if let Err(error) = result {
        tracing::warn!(%error, "testkit OTLP/HTTP receiver stopped");
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/traces", post(traces))
        .route("/v1/metrics", post(metrics))
        .route("/v1/logs", post(logs))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(shared)
}

async fn traces(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    receive::<ExportTraceServiceRequest, ExportTraceServiceResponse>(
        &shared,
        &headers,
        &body,
        ExportRequest::Traces,
    )
    .await
}

async fn metrics(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    receive::<ExportMetricsServiceRequest, ExportMetricsServiceResponse>(
        &shared,
        &headers,
        &body,
        ExportRequest::Metrics,
    )
    .await
}

async fn logs(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    receive::<ExportLogsServiceRequest, ExportLogsServiceResponse>(
        &shared,
        &headers,
        &body,
        ExportRequest::Logs,
    )
    .await
}

/// Validates the encoding headers, decodes the body as `Req`, hands it to
/// [`Shared::receive`] and maps the [`Outcome`] to an HTTP answer whose success body is an
/// empty encoded `Resp`.
async fn receive<Req, Resp>(
    shared: &Shared,
    headers: &HeaderMap,
    body: &[u8],
    wrap: fn(Req) -> ExportRequest,
) -> Response
where
    Req: Message + Default,
    Resp: Message + Default,
{
    let gzip = match check_encoding(headers) {
        Ok(gzip) => gzip,
        Err(message) => return (StatusCode::UNSUPPORTED_MEDIA_TYPE, message).into_response(),
    };
    let inflated;
    let body = if gzip {
        let mut out = Vec::new();
        let limit = MAX_REQUEST_BYTES as u64 + 1;
        let read = std::io::Read::read_to_end(
            &mut std::io::Read::take(flate2::read::GzDecoder::new(body), limit),
            &mut out,
        );
        match read {
            Ok(n) if n as u64 >= limit => {
                return (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "decompressed request too large",
                )
                    .into_response();
            }
            Ok(_) => {}
            Err(error) => {
                return (
                    StatusCode::BAD_REQUEST,
                    format!("invalid gzip body: {error}"),
                )
                    .into_response();
            }
        }
        inflated = out;
        &inflated[..]
    } else {
        body
    };
    let request = match Req::decode(body) {
        Ok(request) => request,
        Err(error) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("invalid protobuf export request: {error}"),
            )
                .into_response();
        }
    };
    match shared.receive(Transport::Http, wrap(request)).await {
        Outcome::Accepted => (
            [(CONTENT_TYPE, HeaderValue::from_static(PROTOBUF))],
            Resp::default().encode_to_vec(),
        )
            .into_response(),
        Outcome::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "testkit receiver: collector unavailable (fault injected)",
        )
            .into_response(),
    }
}

/// Accepts only binary protobuf bodies, uncompressed or gzip (`Ok(true)`); for anything else
/// returns the message of the `415 Unsupported Media Type` answer.
fn check_encoding(headers: &HeaderMap) -> Result<bool, String> {
    let mut gzip = false;
    if let Some(encoding) = headers.get(CONTENT_ENCODING) {
        let encoding = encoding.to_str().unwrap_or_default().trim();
        gzip = encoding.eq_ignore_ascii_case("gzip");
        if !gzip && !encoding.eq_ignore_ascii_case("identity") {
            return Err(format!(
                "content-encoding {encoding:?} is not supported by the testkit receiver"
            ));
        }
    }

    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if essence.eq_ignore_ascii_case(PROTOBUF)
        || essence.eq_ignore_ascii_case("application/protobuf")
    {
        Ok(gzip)
    } else {
        Err(format!(
            "content-type {content_type:?} is not supported by the testkit receiver \
             (only {PROTOBUF})"
        ))
    }
}
