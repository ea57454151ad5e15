//! The batch queue of encoded records (spans and log records): each record is encoded by
//! [`crate::otlp`]'s encoders on the thread that produces it, appended here to a bounded
//! in-memory batch as bytes, and sent by one export thread per signal through the transport.
//!
//! This replaces the SDK's record → clone → channel → proto structs → prost path, which cost
//! about 9,000 instructions per log record and 6,000 per span here (benchmarks.md); encoding
//! once, directly, costs a fraction of that. `ResourceLogs`/`ResourceSpans` and
//! `ScopeLogs`/`ScopeSpans` have the same wire shape (resource = 1, scopes = 2; scope = 1,
//! records = 2), so one queue serves both ([`super::request`]). Behaviour follows the SDK's batch processors:
//! - at most `max_queue_size` records (`OTEL_BLRP_MAX_QUEUE_SIZE`, `OTEL_BSP_MAX_QUEUE_SIZE`)
//!   are held, waiting or in an export in flight; beyond it new records are dropped and counted
//!   ([`RecordQueue::dropped`]), never waited for;
//! - an export starts every schedule delay, or as soon as a batch's worth of records wait;
//! - up to [`MAX_EXPORTS_IN_FLIGHT`] exports are in flight at once (each its own request: a
//!   stream of the one gRPC connection, or a pooled HTTP connection), so an export that waits
//!   for its answer does not hold back the next batch. With one, every export that waited
//!   ~40 ms for its answer (rotel answers gRPC without `TCP_NODELAY`: its small answer waits
//!   for the ACK of its last WINDOW_UPDATE, which the idle exporter's kernel delays; about one
//!   export in ten under load) stalled the queue, and the span queue overflowed at ~85,000
//!   spans/s where OTLP/HTTP kept up (docs/benchmarks.md). Batches may reach the collector
//!   out of order; [`RecordQueue::flush`] still returns only when every record queued before
//!   it has been exported, because an export counts as done only when every earlier one has
//!   finished too;
//! - one export request carries at most `max_export_batch_size` records
//!   (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, `OTEL_BLRP_MAX_EXPORT_BATCH_SIZE`) and at most
//!   [`MAX_BATCH_BYTES`] of records; a backlog (a slow first connection, a collector that
//!   stalled) leaves in consecutive requests of that size without waiting, never as one request
//!   a collector rejects (gRPC's default limit is 4 MiB per message);
//! - each export is bounded by `OTEL_EXPORTER_OTLP_TIMEOUT`; a failed export is counted
//!   ([`RecordQueue::failed_exports`], and its records in `records_lost`) and its records are
//!   dropped (retries and backpressure belong to the Collector);
//! - while records are being lost (failed exports or a full queue), the queue writes one WARN
//!   line to the instance's own log sink, rate-limited ([`super::warnings`]).
//!
//! The export thread batches, encodes the request and hands it to its runtime
//! ([`ExportRuntime`]), where the transport sends it; the finished export ([`Export`]) counts its
//! outcome, releases its records from the bound and wakes the thread and any `flush`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::{BatchSettings, TelemetryConfig};
use crate::export_tap::{ExportTap, TapSignal};
use crate::otlp_export::Transport;

use super::log_record::{LogRecordView, encode_log_record};
use super::protobuf::Writer;
use super::request::{append_record, export_request};
use super::warnings::{ExportWarnings, Losses, WarnState};

/// Which OTLP signal a queue carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// `LogsService/Export`, `/v1/logs`
    Logs,
    /// `TraceService/Export`, `/v1/traces`
    Spans,
}

/// Bytes of encoded records at which a batch is sealed even below `max_export_batch_size`
/// records, so that one export request stays well under a collector's default 4 MiB gRPC
/// message limit.
pub(crate) const MAX_BATCH_BYTES: usize = 2 * 1024 * 1024;

/// Exports of one queue in flight at once. In one run of the side-by-side benchmark against
/// rotel (two loaded cores), with two in flight one export in six still waited ~40 ms for its
/// answer (both requests sent, nothing left to carry the exporter's ACK), with four one in
/// three hundred; more would only multiply the requests a slow collector holds.
pub(crate) const MAX_EXPORTS_IN_FLIGHT: usize = 4;

/// The records of one export request.
#[derive(Default)]
struct Batch {
    /// Encoded records (tag + length + body) per scope name (a log record's target, or the
    /// library's scope for spans).
    scopes: Vec<(&'static str, Vec<u8>)>,
    records: usize,
    bytes: usize,
    /// The sequence number of its last record.
    last_seq: u64,
}

struct Pending {
    /// Batches waiting for export, oldest first. Records are appended to the last one, which is
    /// sealed (a new one started) at `max_export_batch_size` records or [`MAX_BATCH_BYTES`].
    batches: VecDeque<Batch>,
    /// Emptied batches of earlier exports, reused so their buffers keep their capacity.
    spare: Vec<Batch>,
    /// Records held: waiting in all batches, or in an export in flight (the queue's bound).
    records: usize,
    /// Records ever queued (a sequence number), and how far exports have got: every record up
    /// to `exported_seq` has been exported (or lost), also when exports finish out of order.
    queued_seq: u64,
    exported_seq: u64,
    /// The exports taken and not yet settled into `exported_seq`, oldest first (see
    /// [`settle`]); finished ones stay until every earlier one has finished.
    in_flight: VecDeque<InFlight>,
    /// Of those, the exports still sending (at most [`MAX_EXPORTS_IN_FLIGHT`]).
    sending: usize,
    /// Set by `flush` so the worker exports without waiting for its schedule.
    flush_requested: bool,
}

/// An export sent and not yet settled into `exported_seq`.
struct InFlight {
    /// The sequence number of its batch's last record.
    last_seq: u64,
    /// Finished (exported or failed) while an earlier export may still be in flight.
    finished: bool,
}

struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
    done: Condvar,
    settings: BatchSettings,
    /// `None` when the queue runs only for an export tap (no OTLP endpoint).
    transport: Option<Transport>,
    tap: Option<Arc<dyn ExportTap>>,
    resource: Vec<u8>,
    scope_version: &'static str,
    timeout: Duration,
    dropped: AtomicU64,
    failed_exports: AtomicU64,
    /// Records carried by failed exports.
    records_lost: AtomicU64,
    closed: AtomicBool,
    signal: Signal,
    warnings: Option<ExportWarnings>,
    /// What the WARN lines have reported (exports finish on the runtime, drops are seen by the
    /// export thread: both report).
    warn_state: Mutex<WarnState>,
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

/// Emptied batches kept for reuse.
const MAX_SPARE_BATCHES: usize = 4;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

thread_local! {
    static RECORD_BUFFER: std::cell::RefCell<Writer> = std::cell::RefCell::new(Writer::with_capacity(1024));
}

impl RecordQueue {
    /// Starts the export thread and its I/O runtime (one worker thread of its own: on a busy
    /// server, connection tasks on the application's runtime wait behind requests, the
    /// exports in flight stall and the queue overflows). The thread owns the runtime.
    /// With `warnings`, the thread reports lost records there (rate-limited). Each batch goes
    /// to `tap` (when set) and, when OTLP export of this signal is on, to the configured endpoint.
    pub(crate) fn start(
        config: &TelemetryConfig,
        signal: Signal,
        resource: Vec<u8>,
        warnings: Option<ExportWarnings>,
        tap: Option<Arc<dyn ExportTap>>,
    ) -> Result<Self, String> {
        let (otlp_signal, settings, thread) = match signal {
            Signal::Logs => (
                crate::config::OtlpSignal::Logs,
                config.log_batch,
                "telemetry-otlp-logs",
            ),
            Signal::Spans => (
                crate::config::OtlpSignal::Traces,
                config.span_batch,
                "telemetry-otlp-spans",
            ),
        };
        let mut settings = settings;
        if let Some(delay) = tap.as_ref().and_then(|tap| tap.max_schedule_delay()) {
            settings.schedule_delay = settings.schedule_delay.min(delay);
        }
        let (runtime, transport) = if config.otlp_enabled_for(otlp_signal) {
            let runtime = ExportRuntime::start(thread)?;
            // Built inside the export runtime: the gRPC channel's and the HTTP client's
            // connection tasks are spawned there.
            let transport = {
                let _entered = runtime.handle().enter();
                Transport::new(config, otlp_signal)?
            };
            (Some(runtime), Some(transport))
        } else {
            (None, None)
        };
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending {
                batches: VecDeque::new(),
                spare: Vec::new(),
                records: 0,
                queued_seq: 0,
                exported_seq: 0,
                in_flight: VecDeque::new(),
                sending: 0,
                flush_requested: false,
            }),
            wake: Condvar::new(),
            done: Condvar::new(),
            settings,
            transport,
            tap,
            resource,
            scope_version: env!("CARGO_PKG_VERSION"),
            timeout: config.otlp_timeout,
            dropped: AtomicU64::new(0),
            failed_exports: AtomicU64::new(0),
            records_lost: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            signal,
            warnings,
            warn_state: Mutex::new(WarnState::default()),
        });
        let worker = Arc::clone(&shared);
        let handle = std::thread::Builder::new()
            .name(thread.into())
            .spawn(move || {
                worker.run(runtime.as_ref().map(ExportRuntime::handle));
                // Only now (nothing in flight any more) is the runtime shut down.
                drop(runtime);
            })
            .map_err(|e| e.to_string())?;
        Ok(Self {
            shared,
            worker: Mutex::new(Some(handle)),
        })
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
    /// Encodes one record with `encode` (the body of a `LogRecord` or `Span` message) under
    /// scope `scope` and queues it; drops (and counts) it when the queue is full.
    pub(crate) fn push(&self, scope: &'static str, encode: impl FnOnce(&mut Writer)) {
        push_into(&self.0, scope, encode);
    }

    /// Encodes a log record and queues it under its target; drops (and counts) it when the
    /// queue is full.
    pub(crate) fn push_log(&self, record: &LogRecordView<'_>) {
        self.push(record.target, |w| encode_log_record(w, record));
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
    let mut guard = lock(&shared.pending);
    if guard.records >= shared.settings.max_queue_size || shared.closed.load(Ordering::Relaxed) {
        drop(guard);
        shared.dropped.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let max_records = shared.settings.max_export_batch_size;
    let pending = &mut *guard;
    if pending
        .batches
        .back()
        .is_none_or(|batch| sealed(batch, max_records))
    {
        let batch = pending.spare.pop().unwrap_or_default();
        pending.batches.push_back(batch);
    }
    pending.records += 1;
    pending.queued_seq += 1;
    let Some(batch) = pending.batches.back_mut() else {
        return;
    };
    let index = match batch.scopes.iter().position(|(name, _)| *name == target) {
        Some(index) => index,
        None => {
            batch.scopes.push((target, Vec::with_capacity(16 * 1024)));
            batch.scopes.len() - 1
        }
    };
    let buffer = &mut batch.scopes[index].1;
    let before = buffer.len();
    append_record(buffer, encoded);
    batch.bytes += buffer.len() - before;
    batch.records += 1;
    batch.last_seq = pending.queued_seq;
    // Wake the export thread once per batch, when it is sealed.
    let full = sealed(batch, max_records);
    drop(guard);
    if full {
        shared.wake.notify_one();
    }
}

/// Whether a batch takes no more records (it is exported as soon as the thread is free).
fn sealed(batch: &Batch, max_records: usize) -> bool {
    batch.records >= max_records || batch.bytes >= MAX_BATCH_BYTES
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
    fn signal_name(&self) -> &'static str {
        match self.signal {
            Signal::Logs => "logs",
            Signal::Spans => "spans",
        }
    }

    fn losses(&self) -> Losses {
        Losses {
            failed_exports: self.failed_exports.load(Ordering::Relaxed),
            records_lost: self.records_lost.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }

    /// Writes the WARN line when records were lost since the last one (rate-limited).
    fn report_losses(&self) {
        if let Some(warnings) = &self.warnings {
            warnings.report(
                self.signal_name(),
                self.losses(),
                &mut lock(&self.warn_state),
            );
        }
    }

    /// Whether the oldest batch should leave now.
    fn due(&self, pending: &Pending) -> bool {
        pending.batches.len() > 1
            || pending
                .batches
                .front()
                .is_some_and(|b| sealed(b, self.settings.max_export_batch_size))
            || pending.flush_requested
            || self.closed.load(Ordering::Relaxed)
    }

    /// The export thread: takes the batches oldest first, at most [`MAX_EXPORTS_IN_FLIGHT`]
    /// exports at once, and sends each on `runtime` (or only to the tap without a transport);
    /// returns once closed with nothing waiting or in flight.
    fn run(self: &Arc<Self>, runtime: Option<&tokio::runtime::Handle>) {
        // Buffers of the last batch, given back (emptied) at the next lock for reuse.
        let mut used: Option<Vec<(&'static str, Vec<u8>)>> = None;
        loop {
            self.report_losses();
            let batch = {
                let mut pending = lock(&self.pending);
                if let Some(scopes) = used.take() {
                    recycle(&mut pending, scopes);
                }
                // A free slot first: every finished export wakes this thread.
                while pending.sending >= MAX_EXPORTS_IN_FLIGHT {
                    pending = self
                        .wake
                        .wait(pending)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                // Then a batch's worth, a flush, the close, or the schedule delay (a finished
                // export waking the thread early does not send a partial batch).
                let deadline = Instant::now() + self.settings.schedule_delay;
                while !self.due(&pending) {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    pending = self
                        .wake
                        .wait_timeout(pending, deadline - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                let batch = pending.batches.pop_front();
                if pending.batches.is_empty() {
                    pending.flush_requested = false;
                }
                match batch {
                    Some(batch) => {
                        pending.in_flight.push_back(InFlight {
                            last_seq: batch.last_seq,
                            finished: false,
                        });
                        pending.sending += 1;
                        batch
                    }
                    None => {
                        // Nothing waiting: with nothing in flight either, all is exported.
                        settle(&mut pending);
                        let idle = pending.in_flight.is_empty();
                        if self.closed.load(Ordering::Relaxed) {
                            if idle {
                                drop(pending);
                                self.done.notify_all();
                                return;
                            }
                            // Closed with exports in flight: wait for one to finish.
                            drop(
                                self.wake
                                    .wait(pending)
                                    .unwrap_or_else(PoisonError::into_inner),
                            );
                        } else {
                            drop(pending);
                        }
                        self.done.notify_all();
                        continue;
                    }
                }
            };
            let Batch {
                mut scopes,
                records,
                last_seq,
                ..
            } = batch;
            // A reused batch may hold emptied buffers of scopes it did not get.
            scopes.retain(|(_, buffer)| !buffer.is_empty());
            let body =
                bytes::Bytes::from(export_request(&self.resource, self.scope_version, &scopes));
            if let Some(tap) = &self.tap {
                tap.export(
                    match self.signal {
                        Signal::Logs => TapSignal::Logs,
                        Signal::Spans => TapSignal::Traces,
                    },
                    body.clone(),
                );
            }
            let mut export = Export {
                shared: Arc::clone(self),
                last_seq,
                records,
                settled: false,
            };
            match (&self.transport, runtime) {
                (Some(_), Some(runtime)) => {
                    drop(runtime.spawn(export.send(body)));
                }
                _ => export.settle(Ok(())),
            }
            used = Some(scopes);
        }
    }
}

/// Gives a sent batch's buffers back (emptied), so a later batch reuses their capacity.
fn recycle(pending: &mut Pending, mut scopes: Vec<(&'static str, Vec<u8>)>) {
    if scopes.is_empty() || pending.spare.len() >= MAX_SPARE_BATCHES {
        return;
    }
    for (_, buffer) in &mut scopes {
        buffer.clear();
    }
    pending.spare.push(Batch {
        scopes,
        ..Batch::default()
    });
}

/// Advances `exported_seq` over the finished exports at the front of `in_flight`: past a
/// batch only when every batch taken before it has finished as well; to `queued_seq` when
/// nothing waits and nothing is in flight.
fn settle(pending: &mut Pending) {
    while let Some(oldest) = pending.in_flight.front() {
        if !oldest.finished {
            break;
        }
        pending.exported_seq = pending.exported_seq.max(oldest.last_seq);
        pending.in_flight.pop_front();
    }
    if pending.in_flight.is_empty() && pending.batches.is_empty() {
        pending.exported_seq = pending.queued_seq;
    }
}

/// One export in flight. It settles once: when its send finished ([`Export::send`]), or,
/// dropped unfinished (its runtime stopped), as a failed export, so that no record is held
/// and no `flush` waits for it forever.
struct Export {
    shared: Arc<Shared>,
    last_seq: u64,
    records: usize,
    settled: bool,
}

impl Export {
    /// Sends `body` within the export timeout, then settles.
    async fn send(mut self, body: bytes::Bytes) {
        let shared = Arc::clone(&self.shared);
        let result = match &shared.transport {
            Some(transport) => tokio::time::timeout(shared.timeout, transport.send(body))
                .await
                .unwrap_or(Err(opentelemetry_sdk::error::OTelSdkError::Timeout(
                    shared.timeout,
                )))
                .map_err(|error| error.to_string()),
            None => Ok(()),
        };
        self.settle(result);
    }

    /// Counts a failure (with its records), reports losses, releases the records from the
    /// queue's bound, marks the export finished and wakes the export thread and `flush`.
    fn settle(&mut self, result: Result<(), String>) {
        if std::mem::replace(&mut self.settled, true) {
            return;
        }
        let shared = &*self.shared;
        if let Err(error) = result {
            shared.failed_exports.fetch_add(1, Ordering::Relaxed);
            shared
                .records_lost
                .fetch_add(self.records as u64, Ordering::Relaxed);
            lock(&shared.warn_state).last_error = Some(error);
        }
        // Before `flush` can return: a caller that flushed sees the WARN line.
        shared.report_losses();
        {
            let mut pending = lock(&shared.pending);
            pending.records -= self.records;
            pending.sending -= 1;
            if let Some(export) = pending
                .in_flight
                .iter_mut()
                .find(|export| export.last_seq == self.last_seq)
            {
                export.finished = true;
            }
            settle(&mut pending);
        }
        shared.wake.notify_one();
        shared.done.notify_all();
    }
}

impl Drop for Export {
    fn drop(&mut self) {
        self.settle(Err(
            "the export was cancelled: its runtime stopped".to_owned()
        ));
    }
}

/// A one-worker tokio runtime owned by an export queue. Dropped anywhere (also inside the
/// application's async code) without blocking: its worker is shut down in the background.
struct ExportRuntime(Option<tokio::runtime::Runtime>);

impl ExportRuntime {
    fn start(thread: &str) -> Result<Self, String> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(format!("{thread}-io"))
            .enable_all()
            .build()
            .map(|runtime| Self(Some(runtime)))
            .map_err(|e| format!("cannot start the export runtime: {e}"))
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        match &self.0 {
            Some(runtime) => runtime.handle(),
            None => unreachable!("the runtime is only taken on drop"),
        }
    }
}

impl Drop for ExportRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}
