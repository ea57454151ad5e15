//! The export thread's report of lost telemetry: one WARN line in the instance's own format on
//! its own sink (stdout only: an OTLP log record about failing OTLP export would only join the
//! queue that is losing records), at most once per [`EXPORT_WARN_INTERVAL`] per signal, saying
//! what is happening — exports failing (their records lost), the queue full (new records
//! dropped), or both — with the counts and the endpoint; never a line per failure.

use std::time::{Duration, Instant};

use crate::config::{LogFormat, TelemetryConfig, safe_endpoint};
use crate::log_format::{FieldValue, own_line};
use crate::log_sink::LogSink;

/// At most one WARN line about lost telemetry per signal per this interval.
pub(crate) const EXPORT_WARN_INTERVAL: Duration = Duration::from_secs(60);

/// Target of the export thread's WARN line.
const EXPORT_WARN_TARGET: &str = "telemetry::export";

/// Where and how the export thread reports lost telemetry.
pub(crate) struct ExportWarnings {
    sink: LogSink,
    format: LogFormat,
    gcp_project: Option<String>,
    /// `service.name`, named by every line.
    service: String,
    /// The endpoint without user info or query (never the headers).
    endpoint: String,
}

/// A queue's loss counters, totals since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Losses {
    /// Export requests that failed or timed out.
    pub(crate) failed_exports: u64,
    /// Records those failed requests carried (lost with them).
    pub(crate) records_lost: u64,
    /// Records dropped before export because the queue was full (or stopped).
    pub(crate) dropped: u64,
}

/// What the export thread has already reported (owned by the thread).
#[derive(Default)]
pub(crate) struct WarnState {
    last_line: Option<Instant>,
    reported: Losses,
    /// The last export error, for the next line.
    pub(crate) last_error: Option<String>,
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

    /// Writes the WARN line when records were lost since the last line and the last line is
    /// at least [`EXPORT_WARN_INTERVAL`] old.
    pub(crate) fn report(&self, signal: &'static str, losses: Losses, state: &mut WarnState) {
        if losses == state.reported {
            return;
        }
        if state
            .last_line
            .is_some_and(|at| at.elapsed() < EXPORT_WARN_INTERVAL)
        {
            return;
        }
        let failing = losses.failed_exports > state.reported.failed_exports;
        let dropping = losses.dropped > state.reported.dropped;
        state.last_line = Some(Instant::now());
        state.reported = losses;
        let error = state
            .last_error
            .as_deref()
            .map(crate::pii::scrub)
            .unwrap_or_default();
        let mut fields = vec![
            ("signal", FieldValue::Static(signal)),
            ("endpoint", FieldValue::Str(&self.endpoint)),
            ("failed_exports", FieldValue::U64(losses.failed_exports)),
            ("records_lost", FieldValue::U64(losses.records_lost)),
            ("dropped", FieldValue::U64(losses.dropped)),
        ];
        if !error.is_empty() {
            fields.push(("error", FieldValue::Str(&error)));
        }
        fields.push((
            "next_report_within_s",
            FieldValue::U64(EXPORT_WARN_INTERVAL.as_secs()),
        ));
        self.sink.write(&own_line(
            self.format,
            self.gcp_project.as_deref(),
            &self.service,
            tracing::Level::WARN,
            EXPORT_WARN_TARGET,
            message(failing, dropping),
            &fields,
        ));
    }
}

/// What is happening, in words: the counts say how much.
fn message(failing: bool, dropping: bool) -> &'static str {
    match (failing, dropping) {
        (true, true) => {
            "OTLP export is failing and its queue is full: the records of failed exports are lost and new records are dropped"
        }
        (true, false) => "OTLP export is failing: the records of failed exports are lost",
        _ => "OTLP export is falling behind: its queue is full and new records are dropped",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

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

    fn lines(report: impl FnOnce(&ExportWarnings, &mut WarnState)) -> Vec<serde_json::Value> {
        let config = TelemetryConfig::from_lookup("svc", "1", |key| match key {
            "APP_LOG_FORMAT" => Some("json".into()),
            _ => None,
        })
        .unwrap();
        let sink = LogSink::memory();
        let warnings = ExportWarnings::new(&config, sink.clone());
        let mut state = WarnState::default();
        report(&warnings, &mut state);
        sink.captured()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn the_line_says_what_is_lost_and_counts_it() {
        let failing = Losses {
            failed_exports: 2,
            records_lost: 40,
            dropped: 0,
        };
        let got = lines(|w, s| {
            s.last_error = Some("connect refused for ann@example.com".into());
            w.report("logs", failing, s);
            // Within the interval: nothing more, however much is lost.
            w.report(
                "logs",
                Losses {
                    dropped: 5,
                    ..failing
                },
                s,
            );
        });
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[0]["message"],
            "OTLP export is failing: the records of failed exports are lost"
        );
        assert_eq!(got[0]["failed_exports"], 2);
        assert_eq!(got[0]["records_lost"], 40);
        assert_eq!(got[0]["dropped"], 0);
        assert!(
            !got[0]["error"]
                .as_str()
                .unwrap()
                .contains("ann@example.com")
        );

        let dropping = lines(|w, s| {
            w.report(
                "spans",
                Losses {
                    dropped: 7,
                    ..Losses::default()
                },
                s,
            );
        });
        assert_eq!(
            dropping[0]["message"],
            "OTLP export is falling behind: its queue is full and new records are dropped"
        );
        assert_eq!(dropping[0]["dropped"], 7);
        assert!(lines(|w, s| w.report("spans", Losses::default(), s)).is_empty());
    }
}
