//! OTLP/gRPC transport: the generated `TraceService`, `MetricsService` and `LogsService`
//! servers, served by tonic.

use std::future::Future;
use std::sync::Arc;

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
use tokio::net::TcpListener;
use tonic::codec::CompressionEncoding;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Server, ServerTlsConfig};
use tonic::{Request, Response, Status};

use super::{ExportRequest, MAX_REQUEST_BYTES, Outcome, Shared, Transport};

/// Implements the three OTLP collector services on top of [`Shared`].
#[derive(Debug, Clone)]
struct GrpcReceiver {
    shared: Arc<Shared>,
}

impl GrpcReceiver {
    /// Hands the request to [`Shared::receive`] and maps its [`Outcome`] to a gRPC answer.
    async fn receive<T: Default>(&self, request: ExportRequest) -> Result<Response<T>, Status> {
        match self.shared.receive(Transport::Grpc, request).await {
            Outcome::Accepted => Ok(Response::new(T::default())),
            Outcome::Unavailable => Err(Status::unavailable(
                "testkit receiver: collector unavailable (fault injected)",
            )),
        }
    }
}

#[tonic::async_trait]
impl TraceService for GrpcReceiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        self.receive(ExportRequest::Traces(request.into_inner()))
            .await
    }
}

#[tonic::async_trait]
impl MetricsService for GrpcReceiver {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        self.receive(ExportRequest::Metrics(request.into_inner()))
            .await
    }
}

#[tonic::async_trait]
impl LogsService for GrpcReceiver {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        self.receive(ExportRequest::Logs(request.into_inner()))
            .await
    }
}

/// Serves the OTLP/gRPC services on `listener` (over TLS with `tls`) until `shutdown`
/// completes.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<ServerTlsConfig>,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()>,
) {
    let receiver = GrpcReceiver { shared };
    let mut server = Server::builder();
    if let Some(tls) = tls {
        server = match server.tls_config(tls) {
            Ok(server) => server,
            Err(error) => {
                tracing::warn!(%error, "testkit OTLP/gRPC receiver: invalid TLS configuration");
                return;
            }
        };
    }
    let result = server
        .add_service(
            TraceServiceServer::new(receiver.clone())
                .accept_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(MAX_REQUEST_BYTES),
        )
        .add_service(
            MetricsServiceServer::new(receiver.clone())
                .accept_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(MAX_REQUEST_BYTES),
        )
        .add_service(
            LogsServiceServer::new(receiver)
                .accept_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(MAX_REQUEST_BYTES),
        )
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown)
        .await;
    if let Err(error) = result {
        tracing::warn!(%error, "testkit OTLP/gRPC receiver stopped");
    }
}
