//! An in-process receiver of exactly what the instance exports: [`ExportTap`], installed with
//! [`TelemetryBuilder::export_tap`](crate::TelemetryBuilder::export_tap), gets every encoded
//! `ExportTraceServiceRequest`, `ExportLogsServiceRequest` and `ExportMetricsServiceRequest`
//! (OTLP protobuf bytes, after the PII rules and bounds), the same bytes the OTLP transport
//! sends. The embedded telemetry console (`crates/console`) is one.
//!
//! - Spans and log records: the export threads of the record queues hand each batch to the tap
//!   before (and whether or not) it is sent to a Collector. With a tap and no
//!   `OTEL_EXPORTER_OTLP_ENDPOINT`, the queues run for the tap alone; without a tap nothing is
//!   encoded that was not before.
//! - Metrics: a periodic reader of its own (interval [`ExportTap::metric_interval`]) encodes
//!   the SDK's collection with `opentelemetry-proto` and hands it to the tap.
//!
//! The tap runs on an export thread: it must not block (queue and return; drop and count when
//! full).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use opentelemetry_sdk::error::OTelSdkResult;
use prost::Message as _;

/// Which export request a tap receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TapSignal {
    /// An encoded `ExportTraceServiceRequest`.
    Traces,
    /// An encoded `ExportLogsServiceRequest`.
    Logs,
    /// An encoded `ExportMetricsServiceRequest`.
    Metrics,
}

/// Receives each encoded OTLP export request of an instance. Called from export threads; must
/// return at once (never block, never wait for I/O).
pub trait ExportTap: Send + Sync + std::fmt::Debug + 'static {
    /// One export request of `signal`, as OTLP protobuf bytes.
    fn export(&self, signal: TapSignal, request: Bytes);

    /// How often the tap gets the instance's metrics (default 10 s).
    fn metric_interval(&self) -> Duration {
        Duration::from_secs(10)
    }

    /// The longest a span or log record may wait for its batch while the tap is installed:
    /// the record queues export at least this often (`OTEL_BSP_SCHEDULE_DELAY` /
    /// `OTEL_BLRP_SCHEDULE_DELAY` when shorter). `None` (the default) keeps the configured delays.
    fn max_schedule_delay(&self) -> Option<Duration> {
        None
    }
}

/// The metric exporter feeding a tap: the SDK's collection, encoded as the OTLP exporter would.
#[derive(Debug)]
pub(crate) struct TapMetricExporter(pub(crate) Arc<dyn ExportTap>);

impl opentelemetry_sdk::metrics::exporter::PushMetricExporter for TapMetricExporter {
    async fn export(
        &self,
        metrics: &opentelemetry_sdk::metrics::data::ResourceMetrics,
    ) -> OTelSdkResult {
        let request =
            opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest::from(
                metrics,
            );
        self.0
            .export(TapSignal::Metrics, Bytes::from(request.encode_to_vec()));
        Ok(())
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }

    fn temporality(&self) -> opentelemetry_sdk::metrics::Temporality {
        opentelemetry_sdk::metrics::Temporality::Cumulative
    }
}
