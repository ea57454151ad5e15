//! Stopping an instance: flush and stop the exporters in order, within a budget, without
//! blocking the runtime; and what happens when an instance is dropped without that.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::log_sink::LogSink;

use super::Instance;

/// How long [`TelemetryGuard::shutdown`] waits for the exporters before giving up (Cloud Run
/// allows 10 s from SIGTERM to exit, for draining requests and flushing telemetry together).
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(4);

/// Flushes and stops the exporters of the instance it came with. Call
/// [`TelemetryGuard::shutdown`] after the server stopped; dropping it without that only stops
/// the stdout writer.
#[derive(Debug)]
#[must_use = "call `shutdown().await` after the server stops, or buffered telemetry is lost"]
pub struct TelemetryGuard {
    pub(crate) inner: Arc<Instance>,
}

impl TelemetryGuard {
    /// Flushes and stops the exporters within [`SHUTDOWN_TIMEOUT`]; see
    /// [`TelemetryGuard::shutdown_within`].
    pub async fn shutdown(self) {
        self.shutdown_within(SHUTDOWN_TIMEOUT).await;
    }

    /// Flushes and stops traces and logs (in parallel), then metrics (so the last export
    /// counts every request), each on a blocking thread so the runtime keeps serving, and
    /// returns within `budget` even when the collector is down; then writes out the stdout
    /// buffer. If this future is dropped early, the stdout buffer is still written out.
    /// Idempotent.
    pub async fn shutdown_within(self, budget: Duration) {
        shutdown_inner(&self.inner, budget).await;
    }
}

/// Writes out the stdout buffer when dropped: also when a shutdown is cancelled midway.
struct CloseSinkOnDrop<'a>(&'a LogSink);

impl Drop for CloseSinkOnDrop<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

pub(crate) async fn shutdown_inner(inner: &Arc<Instance>, budget: Duration) {
    if inner.shut_down.swap(true, Ordering::SeqCst) {
        return;
    }
    let _close_sink = CloseSinkOnDrop(&inner.sink);
    let started = tokio::time::Instant::now();
    let deadline = started + budget;
    let traces = {
        let worker = Arc::clone(inner);
        tokio::task::spawn_blocking(move || {
            if let Some(spans) = &worker.span_queue {
                spans.shutdown(budget);
            }
            worker.tracer_provider.shutdown_with_timeout(budget)
        })
    };
    let logs = {
        let worker = Arc::clone(inner);
        tokio::task::spawn_blocking(move || {
            if let Some(logs) = &worker.log_queue {
                logs.shutdown(budget);
            }
        })
    };
    let sentry = async {
        if let Some(sentry) = &inner.sentry {
            sentry.shutdown(budget).await;
        }
    };
    let _ = tokio::time::timeout_at(deadline, async {
        let _ = tokio::join!(traces, logs, sentry);
    })
    .await;
    let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
    let metrics = {
        let worker = Arc::clone(inner);
        tokio::task::spawn_blocking(move || worker.meter_provider.shutdown_with_timeout(remaining))
    };
    let _ = tokio::time::timeout_at(
        deadline.max(tokio::time::Instant::now() + Duration::from_millis(200)),
        metrics,
    )
    .await;
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if !self.inner.shut_down.load(Ordering::SeqCst) {
            self.inner.sink.close();
        }
    }
}

/// An instance dropped without [`TelemetryGuard::shutdown`] (a test, a server task ending):
/// the meter provider's own drop flushes synchronously, waiting for the exporter up to its
/// timeout (5 s against a collector that went away), and the last reference is usually dropped
/// on an async worker thread — which that wait would stall, with every request queued on it.
/// The provider is shut down on a thread of its own instead.
impl Drop for Instance {
    fn drop(&mut self) {
        if self.shut_down.load(Ordering::SeqCst) {
            return;
        }
        let provider = self.meter_provider.clone();
        // Without a thread to spare, the provider's drop flushes here, as it would have.
        let _ = std::thread::Builder::new()
            .name("telemetry-drop".to_owned())
            .spawn(move || {
                let _ = provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT);
            });
    }
}
