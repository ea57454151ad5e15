//! The bounded in-memory store: the last spans and log records (by count and by an estimate of
//! their bytes, oldest evicted first and counted), and the RED series of the metrics
//! ([`crate::red`]). Live subscribers get each new request and log record over a bounded
//! broadcast channel.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use tokio::sync::broadcast;

use crate::config::Limits;
use crate::model::{self, LogView, RequestView, SpanView};
use crate::red::Red;

/// Events of the live stream, serialised once for every subscriber.
#[derive(Debug, Clone)]
pub(crate) struct StreamEvent {
    pub(crate) name: &'static str,
    pub(crate) data: Arc<str>,
}

/// How many events a slow subscriber may fall behind before it skips (and is told so).
pub(crate) const STREAM_BUFFER: usize = 1024;

struct Stored<T> {
    bytes: usize,
    item: T,
    /// Arrival order across spans and logs (the oldest of both goes first on the byte cap).
    seq: u64,
}

#[derive(Default)]
struct Records {
    spans: VecDeque<Stored<SpanView>>,
    logs: VecDeque<Stored<LogView>>,
    bytes: usize,
    seq: u64,
}

/// Counters of what the store lost or refused.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) evicted_spans: AtomicU64,
    pub(crate) evicted_requests: AtomicU64,
    pub(crate) evicted_logs: AtomicU64,
    /// Export batches the console's own ingest queue dropped (it was full).
    pub(crate) dropped_batches: AtomicU64,
    /// Export requests the console could not decode.
    pub(crate) undecodable: AtomicU64,
}

/// The store shared by the ingest thread, the receivers and the API.
pub(crate) struct Store {
    limits: Limits,
    records: Mutex<Records>,
    pub(crate) red: Mutex<Red>,
    pub(crate) counters: Counters,
    pub(crate) stream: broadcast::Sender<StreamEvent>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A snapshot of the store's size.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub(crate) struct Usage {
    pub(crate) spans: usize,
    pub(crate) logs: usize,
    pub(crate) bytes: usize,
    pub(crate) max_spans: usize,
    pub(crate) max_logs: usize,
    pub(crate) max_bytes: usize,
}

impl Store {
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            limits,
            records: Mutex::new(Records::default()),
            red: Mutex::new(Red::default()),
            counters: Counters::default(),
            stream: broadcast::channel(STREAM_BUFFER).0,
        }
    }

    pub(crate) fn limits(&self) -> Limits {
        self.limits
    }

    fn publish(&self, name: &'static str, data: &impl serde::Serialize) {
        if self.stream.receiver_count() == 0 {
            return;
        }
        if let Ok(json) = serde_json::to_string(data) {
            let _ = self.stream.send(StreamEvent {
                name,
                data: json.into(),
            });
        }
    }

    /// Stores the spans of an export request.
    pub(crate) fn insert_traces(&self, request: ExportTraceServiceRequest) {
        let mut views = Vec::new();
        for resource_spans in request.resource_spans {
            let (resource, service) = model::resource(resource_spans.resource);
            for scope_spans in resource_spans.scope_spans {
                let scope: Arc<str> = scope_spans
                    .scope
                    .as_ref()
                    .map_or("", |s| s.name.as_str())
                    .into();
                for span in scope_spans.spans {
                    views.push(model::span_view(span, &service, &scope, &resource));
                }
            }
        }
        let requests: Vec<RequestView> = views.iter().filter_map(model::request_view).collect();
        {
            let mut records = lock(&self.records);
            for view in views {
                let bytes = view.bytes();
                records.seq += 1;
                let seq = records.seq;
                records.bytes += bytes;
                records.spans.push_back(Stored {
                    bytes,
                    item: view,
                    seq,
                });
            }
            self.evict(&mut records);
        }
        for request in &requests {
            self.publish("request", request);
        }
    }

    /// Stores the log records of an export request.
    pub(crate) fn insert_logs(&self, request: ExportLogsServiceRequest) {
        let mut views = Vec::new();
        for resource_logs in request.resource_logs {
            let (_, service) = model::resource(resource_logs.resource);
            for scope_logs in resource_logs.scope_logs {
                let scope = scope_logs.scope.as_ref().map_or("", |s| s.name.as_str());
                for record in scope_logs.log_records {
                    views.push(model::log_view(record, &service, scope));
                }
            }
        }
        let live = self.stream.receiver_count() > 0;
        let published: Vec<LogView> = if live { views.clone() } else { Vec::new() };
        {
            let mut records = lock(&self.records);
            for view in views {
                let bytes = view.bytes();
                records.seq += 1;
                let seq = records.seq;
                records.bytes += bytes;
                records.logs.push_back(Stored {
                    bytes,
                    item: view,
                    seq,
                });
            }
            self.evict(&mut records);
        }
        for log in &published {
            self.publish("log", log);
        }
    }

    /// Adds the RED points and pipeline health of a metrics export request.
    pub(crate) fn insert_metrics(&self, request: &ExportMetricsServiceRequest) {
        lock(&self.red).ingest(request);
    }

    fn evict(&self, records: &mut Records) {
        let c = &self.counters;
        while records.spans.len() > self.limits.max_spans {
            pop_span(records, c);
        }
        while records.logs.len() > self.limits.max_logs {
            pop_log(records, c);
        }
        while records.bytes > self.limits.max_bytes {
            let span_seq = records.spans.front().map(|s| s.seq);
            let log_seq = records.logs.front().map(|l| l.seq);
            match (span_seq, log_seq) {
                (Some(s), Some(l)) if l < s => pop_log(records, c),
                (Some(_), _) => pop_span(records, c),
                (None, Some(_)) => pop_log(records, c),
                (None, None) => break,
            }
        }
    }

    /// Empties the store (records, RED series and counters of evictions stay).
    pub(crate) fn clear(&self) {
        {
            let mut records = lock(&self.records);
            records.spans.clear();
            records.logs.clear();
            records.bytes = 0;
        }
        lock(&self.red).clear();
        let _ = self.stream.send(StreamEvent {
            name: "cleared",
            data: "{}".into(),
        });
    }

    pub(crate) fn usage(&self) -> Usage {
        let records = lock(&self.records);
        Usage {
            spans: records.spans.len(),
            logs: records.logs.len(),
            bytes: records.bytes,
            max_spans: self.limits.max_spans,
            max_logs: self.limits.max_logs,
            max_bytes: self.limits.max_bytes,
        }
    }

    /// Requests (SERVER spans) matching `keep`, newest first: at most `limit`, and how many matched.
    pub(crate) fn requests(
        &self,
        keep: impl Fn(&RequestView) -> bool,
        limit: usize,
    ) -> (Vec<RequestView>, usize) {
        let records = lock(&self.records);
        let mut out = Vec::new();
        let mut total = 0;
        for stored in records.spans.iter().rev() {
            if let Some(request) = model::request_view(&stored.item)
                && keep(&request)
            {
                total += 1;
                if out.len() < limit {
                    out.push(request);
                }
            }
        }
        drop(records);
        // Newest first by start time (arrival order differs across services and batches).
        out.sort_by(|a, b| {
            b.start_unix_nano
                .parse::<u64>()
                .unwrap_or(0)
                .cmp(&a.start_unix_nano.parse::<u64>().unwrap_or(0))
        });
        (out, total)
    }

    /// Log records matching `keep`, newest first: at most `limit`, and how many matched.
    pub(crate) fn logs(
        &self,
        keep: impl Fn(&LogView) -> bool,
        limit: usize,
    ) -> (Vec<LogView>, usize) {
        let records = lock(&self.records);
        let mut out = Vec::new();
        let mut total = 0;
        for stored in records.logs.iter().rev() {
            if keep(&stored.item) {
                total += 1;
                if out.len() < limit {
                    out.push(stored.item.clone());
                }
            }
        }
        (out, total)
    }

    /// Every stored span and log record of `trace_id`, in start / time order.
    pub(crate) fn trace(&self, trace_id: &str) -> (Vec<SpanView>, Vec<LogView>) {
        let records = lock(&self.records);
        let mut spans: Vec<SpanView> = records
            .spans
            .iter()
            .filter(|s| s.item.trace_id == trace_id)
            .map(|s| s.item.clone())
            .collect();
        let mut logs: Vec<LogView> = records
            .logs
            .iter()
            .filter(|l| l.item.trace_id.as_deref() == Some(trace_id))
            .map(|l| l.item.clone())
            .collect();
        drop(records);
        spans.sort_by_key(SpanView::start_nanos);
        logs.sort_by_key(|l| l.time_unix_nano.parse::<u64>().unwrap_or(0));
        (spans, logs)
    }
}

fn pop_span(records: &mut Records, counters: &Counters) {
    if let Some(stored) = records.spans.pop_front() {
        records.bytes -= stored.bytes;
        counters.evicted_spans.fetch_add(1, Ordering::Relaxed);
        if stored.item.kind == "SERVER" {
            counters.evicted_requests.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn pop_log(records: &mut Records, counters: &Counters) {
    if let Some(stored) = records.logs.pop_front() {
        records.bytes -= stored.bytes;
        counters.evicted_logs.fetch_add(1, Ordering::Relaxed);
    }
}
