//! The standalone console's OTLP receivers: OTLP/HTTP with binary protobuf bodies
//! (`POST /v1/traces`, `/v1/logs`, `/v1/metrics`) and OTLP/gRPC (the `TraceService`,
//! `LogsService` and `MetricsService` of `opentelemetry-proto`), both feeding a [`Console`].
//!
//! Not supported (answered, not silently dropped): OTLP/HTTP JSON (`415`) and compressed
//! bodies (`415` for a `content-encoding` other than `identity`; gRPC compression is refused
//! by tonic with `UNIMPLEMENTED`).

use std::future::Future;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tokio::net::TcpListener;

use crate::Console;

/// The largest export request accepted (HTTP body or gRPC message).
pub const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;

/// The OTLP/HTTP receiver's routes.
pub fn http_router(console: Console) -> Router {
    Router::new()
        .route("/v1/traces", post(traces))
        .route("/v1/logs", post(logs))
        .route("/v1/metrics", post(metrics))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(console)
}

fn protobuf(response: impl Message) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf"),
        )],
        response.encode_to_vec(),
    )
        .into_response()
}

/// Refuses what this receiver cannot read; `None` when the body is binary protobuf.
fn unsupported(headers: &HeaderMap) -> Option<Response> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/x-protobuf");
    if !content_type.starts_with("application/x-protobuf") {
        return Some(
            (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the console receives OTLP/HTTP as binary protobuf (application/x-protobuf) only",
            )
                .into_response(),
        );
    }
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity");
    if encoding != "identity" {
        return Some(
            (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the console does not decompress OTLP/HTTP bodies; export without compression",
            )
                .into_response(),
        );
    }
    None
}

fn bad_request(error: &prost::DecodeError) -> Response {
    (
        StatusCode::BAD_REQUEST,
        format!("not a valid OTLP protobuf export request: {error}"),
    )
        .into_response()
}

async fn traces(State(console): State<Console>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(refused) = unsupported(&headers) {
        return refused;
    }
    match ExportTraceServiceRequest::decode(body) {
        Ok(request) => {
            console.ingest_traces(request);
            protobuf(ExportTraceServiceResponse::default())
        }
        Err(error) => bad_request(&error),
    }
}

async fn logs(State(console): State<Console>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(refused) = unsupported(&headers) {
        return refused;
    }
    match ExportLogsServiceRequest::decode(body) {
        Ok(request) => {
            console.ingest_logs(request);
            protobuf(ExportLogsServiceResponse::default())
        }
        Err(error) => bad_request(&error),
    }
}

async fn metrics(State(console): State<Console>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(refused) = unsupported(&headers) {
        return refused;
    }
    match ExportMetricsServiceRequest::decode(body) {
        Ok(request) => {
            console.ingest_metrics(&request);
            protobuf(ExportMetricsServiceResponse::default())
        }
        Err(error) => bad_request(&error),
    }
}

#[derive(Debug, Clone)]
struct Grpc(Console);

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.ingest_traces(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl LogsService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        self.0.ingest_logs(request.into_inner());
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.0.ingest_metrics(request.get_ref());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

/// Serves OTLP/gRPC on `listener` into `console` until `shutdown` completes.
pub async fn serve_grpc(
    listener: TcpListener,
    console: Console,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let service = Grpc(console);
    tonic::transport::Server::builder()
        .add_service(
            TraceServiceServer::new(service.clone()).max_decoding_message_size(MAX_REQUEST_BYTES),
        )
        .add_service(
            LogsServiceServer::new(service.clone()).max_decoding_message_size(MAX_REQUEST_BYTES),
        )
        .add_service(
            MetricsServiceServer::new(service).max_decoding_message_size(MAX_REQUEST_BYTES),
        )
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener),
            shutdown,
        )
        .await
}
