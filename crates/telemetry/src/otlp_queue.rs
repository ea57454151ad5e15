//! The hot-path OTLP pipeline for log records and SERVER spans: each record is encoded to
//! protobuf on the thread that produces it, appended to a bounded in-memory batch, and sent
//! by one export thread per signal.
//!
//! This replaces the SDK's record → clone → channel → proto structs → prost path, which cost
//! about 9,000 instructions per log record and 6,000 per span here (benchmarks.md); encoding
//! once, directly, costs a fraction of that. `ResourceLogs`/`ResourceSpans` and
//! `ScopeLogs`/`ScopeSpans` have the same wire shape (resource = 1, scopes = 2; scope = 1,
//! records = 2), so one queue serves both. Behaviour follows the SDK's batch processors:
//! - at most `max_queue_size` records (`OTEL_BLRP_MAX_QUEUE_SIZE`, `OTEL_BSP_MAX_QUEUE_SIZE`)
//!   wait for export; beyond it new records are dropped and counted ([`RecordQueue::dropped`]),
//!   never waited for;
//! - an export starts every schedule delay, or as soon as a batch's worth of records wait;
//! - each export is bounded by `OTEL_EXPORTER_OTLP_TIMEOUT`; a failed export is counted
//!   ([`RecordQueue::failed_exports`]) and its records are dropped (retries and backpressure
//!   belong to the Collector);
//! - while records are being lost (failed exports or a full queue), the export thread writes
//!   one WARN line to the instance's own log sink, at most once per [`EXPORT_WARN_INTERVAL`]
//!   per signal, carrying the counts and the endpoint ([`ExportWarnings`]); never a line per
//!   failure.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crate::config::safe_endpoint;
use crate::config::{BatchSettings, LogFormat, TelemetryConfig};
use crate::log_format::{FieldValue, LogLine, write_line};
use crate::log_sink::LogSink;
use crate::otlp_encode::Writer;
use crate::otlp_export::Transport;

/// Which OTLP signal a queue carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// `LogsService/Export`, `/v1/logs`
    Logs,
    /// `TraceService/Export`, `/v1/traces`
    Spans,
}

/// One log record, borrowed, as the emitters hand it over.
#[derive(Debug)]
pub(crate) struct LogRecordView<'a> {
    pub(crate) time: SystemTime,
    pub(crate) severity_number: u8,
    pub(crate) severity_text: &'static str,
    pub(crate) body: &'a str,
    pub(crate) target: &'static str,
    pub(crate) event_name: Option<&'static str>,
    pub(crate) trace: Option<(&'a [u8; 16], &'a [u8; 8], u8)>,
    pub(crate) request_id: Option<&'a str>,
    pub(crate) fields: &'a [(&'static str, FieldValue<'a>)],
}

struct Pending {
    /// Encoded records (tag + length + body) per scope name (a log record's target, or the
    /// library's scope for spans).
    scopes: Vec<(&'static str, Vec<u8>)>,
    records: usize,
    /// Records ever queued (a sequence number), and how far exports have got.
    queued_seq: u64,
    exported_seq: u64,
    /// Set by `flush` so the worker exports without waiting for its schedule.
    flush_requested: bool,
}

/// At most one WARN line about lost telemetry per signal per this interval.
pub(crate) const EXPORT_WARN_INTERVAL: Duration = Duration::from_secs(60);

/// Target of the export thread's WARN line.
const EXPORT_WARN_TARGET: &str = "telemetry::export";

/// Where and how the export thread reports lost telemetry: one line in the instance's own
/// format on its own sink (stdout only: an OTLP log record about failing OTLP export would
/// only join the queue that is losing records).
pub(crate) struct ExportWarnings {
    sink: LogSink,
    format: LogFormat,
    gcp_project: Option<String>,
    /// `service.name`, named by every line.
    service: String,
    /// The endpoint without user info or query (never the headers).
    endpoint: String,
}

impl ExportWarnings {
    pub(crate) fn new(config: &TelemetryConfig, sink: LogSink) -> Self {
        Self {
            sink,
            format: config.log_format,
            gcp_project: config.gcp_project.clone(),
            service: config.service_name.clone(),
            endpoint: safe_endpoint(config.otlp_endpoint.as_deref().unwrap_or("")),
        }
    }
}

/// What the export thread has already reported (owned by the thread).
#[derive(Default)]
struct WarnState {
    last_line: Option<Instant>,
    failures_reported: u64,
    dropped_reported: u64,
    last_error: Option<String>,
}

struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
    done: Condvar,
    settings: BatchSettings,
    transport: Transport,
    resource: Vec<u8>,
    scope_version: &'static str,
    runtime: tokio::runtime::Handle,
    timeout: Duration,
    dropped: AtomicU64,
    failed_exports: AtomicU64,
    closed: AtomicBool,
    signal: Signal,
    warnings: Option<ExportWarnings>,
}

/// Batches encoded records and exports them from a dedicated thread.
pub(crate) struct RecordQueue {
    shared: Arc<Shared>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for RecordQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordQueue")
            .field("dropped", &self.dropped())
            .field("failed_exports", &self.failed_exports())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

thread_local! {
    static RECORD_BUFFER: std::cell::RefCell<Writer> = std::cell::RefCell::new(Writer::with_capacity(1024));
}

impl RecordQueue {
    /// Starts the export thread. Call inside the tokio runtime (the transport's I/O runs on it).
    /// With `warnings`, the thread reports lost records there (rate-limited).
    pub(crate) fn start(
        config: &TelemetryConfig,
        signal: Signal,
        resource: Vec<u8>,
        warnings: Option<ExportWarnings>,
    ) -> Result<Self, String> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| e.to_string())?;
        let (transport, settings, thread) = match signal {
            Signal::Logs => (
                Transport::new(config, crate::config::OtlpSignal::Logs)?,
                config.log_batch,
                "telemetry-otlp-logs",
            ),
            Signal::Spans => (
                Transport::new(config, crate::config::OtlpSignal::Traces)?,
                config.span_batch,
                "telemetry-otlp-spans",
            ),
        };
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending {
                scopes: Vec::new(),
                records: 0,
                queued_seq: 0,
                exported_seq: 0,
                flush_requested: false,
            }),
            wake: Condvar::new(),
            done: Condvar::new(),
            settings,
            transport,
            resource,
            scope_version: env!("CARGO_PKG_VERSION"),
            runtime,
            timeout: config.otlp_timeout,
            dropped: AtomicU64::new(0),
            failed_exports: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            signal,
            warnings,
        });
        let worker = Arc::clone(&shared);
        let handle = std::thread::Builder::new()
            .name(thread.into())
            .spawn(move || worker.run())
            .map_err(|e| e.to_string())?;
        Ok(Self {
            shared,
            worker: Mutex::new(Some(handle)),
        })
    }

    /// Encodes a log record and queues it; drops (and counts) it when the queue is full.
    pub(crate) fn push_log(&self, record: &LogRecordView<'_>) {
        self.push(record.target, |w| encode_record(w, record));
    }

    /// Encodes one record with `encode` (the body of a `LogRecord` or `Span` message) under
    /// scope `scope` and queues it.
    pub(crate) fn push(&self, scope: &'static str, encode: impl FnOnce(&mut Writer)) {
        push_into(&self.shared, scope, encode);
    }

    /// A cheap handle that queues records here (for the SDK span processor of child spans).
    pub(crate) fn pusher(&self) -> RecordPusher {
        RecordPusher(Arc::clone(&self.shared))
    }

    /// Exports everything queued now and waits for that export (at most `timeout`).
    /// Blocking: call from a blocking thread.
    pub(crate) fn flush(&self, timeout: Duration) {
        let shared = &self.shared;
        let deadline = Instant::now() + timeout;
        let mut pending = lock(&shared.pending);
        let wanted = pending.queued_seq;
        if pending.exported_seq >= wanted {
            return;
        }
        pending.flush_requested = true;
        shared.wake.notify_one();
        while pending.exported_seq < wanted {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            pending = shared
                .done
                .wait_timeout(pending, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Exports what is queued and stops the export thread, within `timeout`. Blocking.
    pub(crate) fn shutdown(&self, timeout: Duration) {
        self.flush(timeout);
        self.shared.closed.store(true, Ordering::Relaxed);
        self.shared.wake.notify_one();
        if let Some(handle) = lock(&self.worker).take() {
            let _ = handle.join();
        }
    }

    /// A handle reading this queue's counters, for the exporter-health metrics.
    pub(crate) fn stats(&self) -> QueueStats {
        QueueStats(Arc::clone(&self.shared))
    }

    /// Records dropped because the queue was full (or arrived after shutdown).
    pub(crate) fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Export requests that failed (their records are lost).
    pub(crate) fn failed_exports(&self) -> u64 {
        self.shared.failed_exports.load(Ordering::Relaxed)
    }
}

/// Queues records into a [`RecordQueue`] (dropping and counting them when it is full or
/// stopped); keeps no export thread alive.
#[derive(Clone)]
pub(crate) struct RecordPusher(Arc<Shared>);

impl std::fmt::Debug for RecordPusher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordPusher").finish_non_exhaustive()
    }
}

impl RecordPusher {
    /// As [`RecordQueue::push`].
    pub(crate) fn push(&self, scope: &'static str, encode: impl FnOnce(&mut Writer)) {
        push_into(&self.0, scope, encode);
    }
}

fn push_into(shared: &Shared, scope: &'static str, encode: impl FnOnce(&mut Writer)) {
    RECORD_BUFFER.with(|buffer| match buffer.try_borrow_mut() {
        Ok(mut writer) => {
            writer.buf.clear();
            encode(&mut writer);
            enqueue(shared, scope, &writer.buf);
        }
        Err(_) => {
            let mut writer = Writer::with_capacity(512);
            encode(&mut writer);
            enqueue(shared, scope, &writer.buf);
        }
    });
}

fn enqueue(shared: &Shared, target: &'static str, encoded: &[u8]) {
    let mut pending = lock(&shared.pending);
    if pending.records >= shared.settings.max_queue_size || shared.closed.load(Ordering::Relaxed) {
        drop(pending);
        shared.dropped.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let index = match pending.scopes.iter().position(|(name, _)| *name == target) {
        Some(index) => index,
        None => {
            pending.scopes.push((target, Vec::with_capacity(16 * 1024)));
            pending.scopes.len() - 1
        }
    };
    let buffer = &mut pending.scopes[index].1;
    // ScopeLogs.log_records / ScopeSpans.spans = 2, length-delimited.
    buffer.push(0x12);
    push_varint(buffer, encoded.len() as u64);
    buffer.extend_from_slice(encoded);
    pending.records += 1;
    pending.queued_seq += 1;
    let full = pending.records == shared.settings.max_export_batch_size;
    drop(pending);
    if full {
        shared.wake.notify_one();
    }
}

impl Drop for RecordQueue {
    /// Stops the export thread once it has sent what is queued (without waiting for it).
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Relaxed);
        self.shared.wake.notify_one();
    }
}

/// Reads a queue's drop and failure counters (cheap to clone, keeps no queue alive but its
/// counters).
#[derive(Clone)]
pub(crate) struct QueueStats(Arc<Shared>);

impl QueueStats {
    pub(crate) fn dropped(&self) -> u64 {
        self.0.dropped.load(Ordering::Relaxed)
    }

    pub(crate) fn failed_exports(&self) -> u64 {
        self.0.failed_exports.load(Ordering::Relaxed)
    }
}

impl Shared {
    fn run(&self) {
        let mut reported = WarnState::default();
        loop {
            let (records, taken_seq, scopes) = {
                let mut pending = lock(&self.pending);
                let due = |p: &Pending| {
                    p.records >= self.settings.max_export_batch_size
                        || p.flush_requested
                        || self.closed.load(Ordering::Relaxed)
                };
                if !due(&pending) {
                    pending = self
                        .wake
                        .wait_timeout(pending, self.settings.schedule_delay)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                pending.flush_requested = false;
                let records = std::mem::take(&mut pending.records);
                let scopes: Vec<(&'static str, Vec<u8>)> = pending
                    .scopes
                    .iter_mut()
                    .filter(|(_, buffer)| !buffer.is_empty())
                    .map(|(name, buffer)| (*name, std::mem::take(buffer)))
                    .collect();
                (records, pending.queued_seq, scopes)
            };
            if records > 0 {
                let body = self.encode_request(&scopes);
                let send = self.transport.send(body);
                // The runtime may already be shut down (the app ended without shutting the
                // telemetry down): tokio then panics on the timer. Count a failed export and
                // stop, instead of taking the thread down with a panic message.
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    self.runtime.block_on(async {
                        tokio::time::timeout(self.timeout, send)
                            .await
                            .unwrap_or(Err(opentelemetry_sdk::error::OTelSdkError::Timeout(
                                self.timeout,
                            )))
                    })
                }));
                match result {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => {
                        self.failed_exports.fetch_add(1, Ordering::Relaxed);
                        reported.last_error = Some(error.to_string());
                    }
                    Err(_) => {
                        self.failed_exports.fetch_add(1, Ordering::Relaxed);
                        self.closed.store(true, Ordering::Relaxed);
                    }
                }
            }
            self.warn_if_losing(&mut reported);
            let finished = {
                let mut pending = lock(&self.pending);
                pending.exported_seq = taken_seq;
                // Give the buffers back (emptied) so the next batch reuses their capacity.
                for (name, mut used) in scopes {
                    if let Some((_, buffer)) = pending.scopes.iter_mut().find(|(n, _)| *n == name)
                        && buffer.capacity() == 0
                    {
                        used.clear();
                        *buffer = used;
                    }
                }
                self.closed.load(Ordering::Relaxed) && pending.records == 0
            };
            self.done.notify_all();
            if finished {
                return;
            }
        }
    }

    /// Writes the WARN line when records were lost since the last line and the last line is at
    /// least [`EXPORT_WARN_INTERVAL`] old. The counts are totals since start.
    fn warn_if_losing(&self, reported: &mut WarnState) {
        let Some(warnings) = &self.warnings else {
            return;
        };
        let failed = self.failed_exports.load(Ordering::Relaxed);
        let dropped = self.dropped.load(Ordering::Relaxed);
        if failed == reported.failures_reported && dropped == reported.dropped_reported {
            return;
        }
        if reported
            .last_line
            .is_some_and(|at| at.elapsed() < EXPORT_WARN_INTERVAL)
        {
            return;
        }
        reported.last_line = Some(Instant::now());
        reported.failures_reported = failed;
        reported.dropped_reported = dropped;
        let error = reported
            .last_error
            .as_deref()
            .map(crate::pii::scrub)
            .unwrap_or_default();
        let mut fields = vec![
            (
                "signal",
                FieldValue::Static(match self.signal {
                    Signal::Logs => "logs",
                    Signal::Spans => "spans",
                }),
            ),
            ("endpoint", FieldValue::Str(&warnings.endpoint)),
            ("failed_exports", FieldValue::U64(failed)),
            ("dropped", FieldValue::U64(dropped)),
        ];
        if !error.is_empty() {
            fields.push(("error", FieldValue::Str(&error)));
        }
        fields.push((
            "next_report_within_s",
            FieldValue::U64(EXPORT_WARN_INTERVAL.as_secs()),
        ));
        let line = LogLine {
            time: SystemTime::now(),
            level: tracing::Level::WARN,
            target: EXPORT_WARN_TARGET,
            message: "OTLP export is failing or falling behind: telemetry is being dropped",
            correlation: None,
            fields: &fields,
            http: None,
        };
        let mut out = Vec::with_capacity(512);
        write_line(
            &mut out,
            warnings.format,
            warnings.gcp_project.as_deref(),
            &warnings.service,
            &line,
        );
        warnings.sink.write(&out);
    }

    /// `Export{Logs,Trace}ServiceRequest` around the queued records.
    fn encode_request(&self, scopes: &[(&'static str, Vec<u8>)]) -> Vec<u8> {
        let size: usize =
            scopes.iter().map(|(_, b)| b.len() + 64).sum::<usize>() + self.resource.len() + 16;
        let mut w = Writer::with_capacity(size);
        w.message(1, |w| {
            w.bytes(1, &self.resource);
            for (name, records) in scopes {
                w.message(2, |w| {
                    w.message(1, |w| {
                        w.string(1, name);
                        w.string(2, self.scope_version);
                    });
                    w.raw(records);
                });
            }
        });
        w.buf
    }
}

fn push_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// One `LogRecord` message body.
fn encode_record(w: &mut Writer, r: &LogRecordView<'_>) {
    let time = r
        .time
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    w.fixed64(1, time);
    w.uint(2, u64::from(r.severity_number));
    w.string(3, r.severity_text);
    w.message(5, |w| w.bytes(1, r.body.as_bytes()));
    if let Some(request_id) = r.request_id {
        attribute(w, "request_id", FieldValue::Str(request_id));
    }
    for (key, value) in r.fields {
        attribute(w, key, *value);
    }
    if let Some((trace_id, span_id, flags)) = r.trace {
        w.fixed32(8, u32::from(flags));
        w.bytes(9, trace_id);
        w.bytes(10, span_id);
    }
    w.fixed64(11, time);
    w.string(12, r.event_name.unwrap_or(""));
}

fn attribute(w: &mut Writer, key: &str, value: FieldValue<'_>) {
    w.message(6, |w| {
        w.string(1, key);
        w.message(2, |w| match value {
            FieldValue::Str(s) | FieldValue::Static(s) => w.bytes(1, s.as_bytes()),
            FieldValue::Shared(s) => w.bytes(1, s.as_bytes()),
            FieldValue::Bool(b) => w.int_field(2, u64::from(b)),
            FieldValue::I64(i) => w.int_field(3, i as u64),
            FieldValue::U64(u) => w.int_field(3, u.min(i64::MAX as u64)),
            FieldValue::F64(f) => w.double_field(4, f),
        });
    });
}

#[cfg(test)]
mod tests {
    use super::safe_endpoint;

    #[test]
    fn the_reported_endpoint_has_no_credentials_or_query() {
        assert_eq!(
            safe_endpoint("http://user:pw@collector:4317/otlp?key=s#x"),
            "http://collector:4317/otlp"
        );
        assert_eq!(
            safe_endpoint("http://127.0.0.1:4318"),
            "http://127.0.0.1:4318"
        );
        assert_eq!(safe_endpoint("collector:4317"), "collector:4317");
    }
}
