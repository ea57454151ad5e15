//! The telemetry console: the last requests, traces, log records and RED metrics of one or more
//! services, shown from exactly what they export over OTLP (the encoded export requests, after
//! the PII rules and bounds), in a bounded in-memory store.
//!
//! - Embedded: [`Console::tap`] is an [`ExportTap`] for
//!   [`TelemetryBuilder::export_tap`](telemetry::TelemetryBuilder::export_tap); give the same
//!   tap to every instance of the process (the shop and its in-process payment simulator) and
//!   mount [`Console::router`] outside the instrumented router (`observe_router`), so the
//!   console's own requests are never recorded. It answers only loopback clients (403 JSON
//!   otherwise), so serve it with `ConnectInfo<SocketAddr>` (as `telemetry::serve` does).
//! - Standalone: the `console` binary receives OTLP/gRPC and OTLP/HTTP ([`receiver`]) from
//!   any service and serves the same UI.
//!
//! The JSON API and its limits: docs/console.md.

#![warn(missing_docs)]

pub mod config;
mod model;
pub mod receiver;
mod red;
mod routes;
pub mod standalone;
mod store;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::Duration;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;
use telemetry::export_tap::{ExportTap, TapSignal};

pub use config::{ConsoleConfig, Limits};

use store::Store;

/// Where the console is mounted (in the shop and in the standalone viewer alike).
pub const MOUNT: &str = "/_console";

/// Export batches waiting to be decoded; beyond this the tap drops a batch (and counts it)
/// rather than hold up an export thread.
const INGEST_QUEUE: usize = 256;

/// How long a span or log record waits at most before the console gets it.
pub const MAX_SCHEDULE_DELAY: Duration = Duration::from_millis(500);

/// One console: its store and the queue feeding it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Console {
    store: Arc<Store>,
    ingest: SyncSender<(TapSignal, Bytes)>,
}

impl Console {
    /// A console with the store bounds `limits`; starts its decoding thread (`console-ingest`),
    /// which stops when the console and every tap of it are dropped.
    pub fn new(limits: Limits) -> Self {
        let store = Arc::new(Store::new(limits));
        let (ingest, queue) = std::sync::mpsc::sync_channel(INGEST_QUEUE);
        let worker = Arc::clone(&store);
        // Decoding happens here, never on the export thread that handed the batch over.
        let spawned = std::thread::Builder::new()
            .name("console-ingest".into())
            .spawn(move || ingest_loop(&worker, &queue));
        if spawned.is_err() {
            // Without the thread every batch is counted as dropped by the tap.
            store
                .counters
                .dropped_batches
                .fetch_add(1, Ordering::Relaxed);
        }
        Self { store, ingest }
    }

    /// The tap to install on every telemetry instance that should show up here.
    pub fn tap(&self) -> Arc<dyn ExportTap> {
        Arc::new(ConsoleTap {
            ingest: self.ingest.clone(),
            store: Arc::clone(&self.store),
            metric_interval: self.store.limits().metric_interval,
        })
    }

    /// The console's routes under [`MOUNT`] (`/_console/…`), loopback clients only; not
    /// instrumented. Merge it into the app *outside* `observe_router`.
    pub fn router(&self) -> axum::Router {
        routes::router(Arc::clone(&self.store))
    }

    /// Spans and log records stored since the start (kept or evicted since), and export
    /// requests dropped before decoding: what `/_console/api/metrics` reports, for benchmarks.
    pub fn received(&self) -> Received {
        let c = &self.store.counters;
        let usage = self.store.usage();
        Received {
            spans: usage.spans as u64 + c.evicted_spans.load(Ordering::Relaxed),
            logs: usage.logs as u64 + c.evicted_logs.load(Ordering::Relaxed),
            batches_dropped: c.dropped_batches.load(Ordering::Relaxed),
        }
    }

    /// Stores a decoded trace export request (the standalone receivers call this).
    pub fn ingest_traces(&self, request: ExportTraceServiceRequest) {
        self.store.insert_traces(request);
    }

    /// Stores a decoded logs export request.
    pub fn ingest_logs(&self, request: ExportLogsServiceRequest) {
        self.store.insert_logs(request);
    }

    /// Stores a decoded metrics export request.
    pub fn ingest_metrics(&self, request: &ExportMetricsServiceRequest) {
        self.store.insert_metrics(request);
    }
}

/// What a console has received ([`Console::received`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Spans stored (some may be evicted since).
    pub spans: u64,
    /// Log records stored (some may be evicted since).
    pub logs: u64,
    /// Export requests the tap dropped because the ingest queue was full.
    pub batches_dropped: u64,
}

/// The [`ExportTap`] of a [`Console`]: queues each encoded batch for the decoding thread, or
/// drops and counts it when that queue is full. Never blocks.
#[derive(Debug)]
struct ConsoleTap {
    ingest: SyncSender<(TapSignal, Bytes)>,
    store: Arc<Store>,
    metric_interval: Duration,
}

impl ExportTap for ConsoleTap {
    fn export(&self, signal: TapSignal, request: Bytes) {
        match self.ingest.try_send((signal, request)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.store
                    .counters
                    .dropped_batches
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn metric_interval(&self) -> Duration {
        self.metric_interval
    }

    /// Requests show up within half a second, whatever `OTEL_BSP_SCHEDULE_DELAY` says.
    fn max_schedule_delay(&self) -> Option<Duration> {
        Some(MAX_SCHEDULE_DELAY)
    }
}

fn ingest_loop(store: &Store, queue: &Receiver<(TapSignal, Bytes)>) {
    while let Ok((signal, bytes)) = queue.recv() {
        let decoded =
            match signal {
                TapSignal::Traces => ExportTraceServiceRequest::decode(bytes)
                    .map(|request| store.insert_traces(request)),
                TapSignal::Logs => ExportLogsServiceRequest::decode(bytes)
                    .map(|request| store.insert_logs(request)),
                TapSignal::Metrics => ExportMetricsServiceRequest::decode(bytes)
                    .map(|request| store.insert_metrics(&request)),
            };
        if decoded.is_err() {
            store.counters.undecodable.fetch_add(1, Ordering::Relaxed);
        }
    }
}
