//! The log output of one telemetry instance: where a log record goes once it is assembled —
//! its `RUST_LOG` filter, its PII policy, one line on its sink in its format, and (when export
//! is on) one OTLP log record into its log queue.
//!
//! This is the narrow handle the parts that write logs hold: the `tracing` layer
//! ([`crate::logs`], and through it [`crate::tracing_spans`], which also starts the instance's
//! spans with its tracer), the request context (so events inside a request reach the instance
//! serving it) and the access line. None of them sees the rest of the instance.

use std::cell::RefCell;
use tracing::Level;

use opentelemetry_sdk::trace::SdkTracer;

use crate::config::{LogFormat, SpansOutsideRequests, TelemetryConfig};
use crate::log_filter::LogFilter;
use crate::log_format::{FieldValue, LogLine, write_line};
use crate::log_sink::LogSink;
use crate::otlp::log_record::LogRecordView;
use crate::otlp::queue::RecordPusher;
use crate::pii::PiiPolicy;

thread_local! {
    static LINE_BUFFER: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(1024));
}

/// One instance's log output (see the module docs).
pub(crate) struct LogEmitter {
    filter: LogFilter,
    pii: PiiPolicy,
    format: LogFormat,
    gcp_project: Option<String>,
    /// `service.name`, named by every line.
    service: String,
    sink: LogSink,
    queue: Option<RecordPusher>,
    /// The instance's tracer: `tracing` spans become its spans ([`crate::tracing_spans`]).
    tracer: SdkTracer,
    /// Whether `tracing` spans outside any request start traces of their own.
    spans_outside_requests: SpansOutsideRequests,
}

impl std::fmt::Debug for LogEmitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogEmitter")
            .field("format", &self.format)
            .field("otlp", &self.queue.is_some())
            .finish_non_exhaustive()
    }
}

/// The request a record belongs to, as an OTLP log record carries it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordTrace<'a> {
    pub(crate) trace_id: [u8; 16],
    pub(crate) span_id: [u8; 8],
    pub(crate) flags: u8,
    /// `None` for a `tracing` span outside any request.
    pub(crate) request_id: Option<&'a std::sync::Arc<str>>,
}

/// How one record goes out over OTLP, beyond the line itself.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct OtlpRecord<'a> {
    /// The LogRecord's `event_name`.
    pub(crate) event_name: Option<&'a str>,
    /// Attributes instead of the line's fields (the OTLP record's own keys), when they differ.
    pub(crate) fields: Option<&'a [(&'static str, FieldValue<'a>)]>,
}

impl LogEmitter {
    pub(crate) fn new(
        config: &TelemetryConfig,
        filter: LogFilter,
        pii: PiiPolicy,
        sink: LogSink,
        queue: Option<RecordPusher>,
        tracer: SdkTracer,
    ) -> Self {
        Self {
            filter,
            pii,
            format: config.log_format,
            gcp_project: config.gcp_project.clone(),
            service: config.service_name.clone(),
            sink,
            queue,
            tracer,
            spans_outside_requests: config.spans_outside_requests,
        }
    }

    /// The tracer `tracing` spans of this instance are started with.
    pub(crate) fn tracer(&self) -> &SdkTracer {
        &self.tracer
    }

    /// What happens to `tracing` spans outside any request (`APP_SPANS_OUTSIDE_REQUESTS`).
    pub(crate) fn spans_outside_requests(&self) -> SpansOutsideRequests {
        self.spans_outside_requests
    }

    /// The `RUST_LOG` filter of this instance.
    pub(crate) fn filter(&self) -> &LogFilter {
        &self.filter
    }

    /// The PII policy applied to what this instance records.
    pub(crate) fn pii(&self) -> &PiiPolicy {
        &self.pii
    }

    /// Writes one line to the sink, formatting into a per-thread buffer.
    pub(crate) fn write(&self, line: &LogLine<'_>) {
        let project = self.gcp_project.as_deref();
        LINE_BUFFER.with(|buffer| match buffer.try_borrow_mut() {
            Ok(mut buffer) => {
                buffer.clear();
                write_line(&mut buffer, self.format, project, &self.service, line);
                self.sink.write(&buffer);
            }
            Err(_) => {
                let mut buffer = Vec::with_capacity(512);
                write_line(&mut buffer, self.format, project, &self.service, line);
                self.sink.write(&buffer);
            }
        });
    }

    /// Sends the same record as an OTLP log record (when export is on).
    pub(crate) fn export(
        &self,
        line: &LogLine<'_>,
        trace: Option<RecordTrace<'_>>,
        otlp: OtlpRecord<'_>,
    ) {
        let Some(queue) = &self.queue else {
            return;
        };
        let (severity_number, severity_text) = severity(line.level);
        let request_id = trace.and_then(|t| t.request_id).map(|request_id| {
            (
                crate::semconv::APP_REQUEST_ID,
                FieldValue::Shared(request_id),
            )
        });
        queue.push_log(&LogRecordView {
            time: line.time,
            severity_number,
            severity_text,
            body: line.message,
            target: line.target,
            event_name: otlp.event_name,
            trace: trace.as_ref().map(|t| (&t.trace_id, &t.span_id, t.flags)),
            leading: match &request_id {
                Some(id) => std::slice::from_ref(id),
                None => &[],
            },
            fields: otlp.fields.unwrap_or(line.fields),
        });
    }
}

/// OTLP severity number and text of a level.
fn severity(level: Level) -> (u8, &'static str) {
    match level {
        Level::ERROR => (17, "ERROR"),
        Level::WARN => (13, "WARN"),
        Level::INFO => (9, "INFO"),
        Level::DEBUG => (5, "DEBUG"),
        Level::TRACE => (1, "TRACE"),
    }
}
