//! What the run measured: per route an HDR latency histogram (microseconds, 3 significant
//! digits), counts by status and by transport failure, the slowest requests and the first
//! failed ones with their trace ids. Workers record concurrently (one short lock per request
//! and route); the report reads a snapshot.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;

use crate::http1::Failure;

/// Highest latency the histograms hold exactly (larger values are recorded as this).
const HIGHEST_MICROS: u64 = 3_600_000_000;
/// Slowest requests kept per route.
pub(crate) const SLOWEST_KEPT: usize = 5;
/// Failed requests kept per route (the first ones).
pub(crate) const FAILED_KEPT: usize = 10;

/// A new latency histogram (1 µs to 1 h, 3 significant digits).
pub(crate) fn histogram() -> Histogram<u64> {
    match Histogram::new_with_bounds(1, HIGHEST_MICROS, 3) {
        Ok(histogram) => histogram,
        Err(error) => unreachable!("constant histogram bounds are valid: {error}"),
    }
}

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// An answer with this status.
    Status(u16),
    /// No answer.
    Failed(Failure),
}

impl Outcome {
    pub(crate) fn label(self) -> String {
        match self {
            Outcome::Status(status) => status.to_string(),
            Outcome::Failed(failure) => failure.as_str().to_owned(),
        }
    }
}

/// A request kept for the report (slowest or failed).
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    pub(crate) latency_micros: u64,
    pub(crate) outcome: Outcome,
    /// The server's trace id when it answered a valid `traceparent`, else the one we sent.
    pub(crate) trace_id: [u8; 16],
    pub(crate) request_id: Option<String>,
}

/// One finished request, as a worker reports it.
#[derive(Debug)]
pub(crate) struct Record<'a> {
    pub(crate) route: usize,
    pub(crate) latency_micros: u64,
    pub(crate) outcome: Outcome,
    pub(crate) error: bool,
    pub(crate) trace_id: [u8; 16],
    pub(crate) request_id: Option<&'a [u8]>,
}

/// Everything measured for one route.
#[derive(Debug, Clone)]
pub(crate) struct RouteStats {
    pub(crate) latency: Histogram<u64>,
    pub(crate) errors: u64,
    /// Every outcome, by label (`200`, `404`, `timeout`, …).
    pub(crate) outcomes: BTreeMap<String, u64>,
    /// Outcomes that were errors, by label.
    pub(crate) error_outcomes: BTreeMap<String, u64>,
    /// Slowest first.
    pub(crate) slowest: Vec<Sample>,
    pub(crate) failed: Vec<Sample>,
    status_counts: Vec<(Outcome, u64, bool)>,
}

impl RouteStats {
    fn new() -> Self {
        Self {
            latency: histogram(),
            errors: 0,
            outcomes: BTreeMap::new(),
            error_outcomes: BTreeMap::new(),
            slowest: Vec::with_capacity(SLOWEST_KEPT + 1),
            failed: Vec::new(),
            status_counts: Vec::new(),
        }
    }

    fn record(&mut self, record: &Record<'_>) {
        self.latency.saturating_record(record.latency_micros.max(1));
        match self
            .status_counts
            .iter_mut()
            .find(|(outcome, _, error)| *outcome == record.outcome && *error == record.error)
        {
            Some((_, count, _)) => *count += 1,
            None => self.status_counts.push((record.outcome, 1, record.error)),
        }
        let slow_enough = self.slowest.len() < SLOWEST_KEPT
            || self
                .slowest
                .last()
                .is_some_and(|s| s.latency_micros < record.latency_micros);
        let keep_failed = record.error && self.failed.len() < FAILED_KEPT;
        if !(slow_enough || keep_failed) {
            return;
        }
        let sample = Sample {
            latency_micros: record.latency_micros,
            outcome: record.outcome,
            trace_id: record.trace_id,
            request_id: record
                .request_id
                .map(|id| String::from_utf8_lossy(id).into_owned()),
        };
        if keep_failed {
            self.failed.push(sample.clone());
        }
        if slow_enough {
            let at = self
                .slowest
                .partition_point(|s| s.latency_micros >= sample.latency_micros);
            self.slowest.insert(at, sample);
            self.slowest.truncate(SLOWEST_KEPT);
        }
    }

    /// The counts by label, computed from the compact per-outcome counters.
    fn finish(mut self) -> Self {
        self.errors = 0;
        for (outcome, count, error) in &self.status_counts {
            *self.outcomes.entry(outcome.label()).or_default() += count;
            if *error {
                *self.error_outcomes.entry(outcome.label()).or_default() += count;
                self.errors += count;
            }
        }
        self
    }

    pub(crate) fn count(&self) -> u64 {
        self.latency.len()
    }
}

/// The run's shared measurements.
#[derive(Debug)]
pub(crate) struct Stats {
    routes: Vec<Mutex<RouteStats>>,
    /// Requests finished (for the progress line).
    pub(crate) done: AtomicU64,
    /// Requests that were errors (for the progress line).
    pub(crate) errors: AtomicU64,
    /// Answers marked `Idempotent-Replayed: true` (a retried checkout key).
    pub(crate) replayed: AtomicU64,
    /// Open model: how late each journey started after its scheduled arrival.
    schedule_lag: Mutex<Histogram<u64>>,
    journeys: Vec<AtomicU64>,
}

impl Stats {
    pub(crate) fn new(routes: usize, journeys: usize) -> Self {
        Self {
            routes: (0..routes).map(|_| Mutex::new(RouteStats::new())).collect(),
            done: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            replayed: AtomicU64::new(0),
            schedule_lag: Mutex::new(histogram()),
            journeys: (0..journeys).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub(crate) fn record(&self, record: &Record<'_>) {
        if let Some(route) = self.routes.get(record.route) {
            route
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .record(record);
        }
        self.done.fetch_add(1, Ordering::Relaxed);
        if record.error {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn journey_started(&self, journey: usize, lag_micros: Option<u64>) {
        if let Some(count) = self.journeys.get(journey) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(lag) = lag_micros {
            self.schedule_lag
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .saturating_record(lag.max(1));
        }
    }

    /// A copy of every route's measurements, with counts by label filled in.
    pub(crate) fn snapshot(&self) -> Vec<RouteStats> {
        self.routes
            .iter()
            .map(|route| {
                route
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .clone()
                    .finish()
            })
            .collect()
    }

    /// The latency of every route together.
    pub(crate) fn overall_latency(&self) -> Histogram<u64> {
        let mut overall = histogram();
        for route in &self.routes {
            let route = route
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let _ = overall.add(&route.latency);
        }
        overall
    }

    pub(crate) fn schedule_lag(&self) -> Histogram<u64> {
        self.schedule_lag
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub(crate) fn journeys(&self) -> Vec<u64> {
        self.journeys
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn record(stats: &Stats, route: usize, micros: u64, outcome: Outcome, error: bool) {
        stats.record(&Record {
            route,
            latency_micros: micros,
            outcome,
            error,
            trace_id: [micros as u8; 16],
            request_id: Some(b"req"),
        });
    }

    #[test]
    fn percentiles_come_from_the_histogram_within_its_precision() {
        let stats = Stats::new(1, 1);
        for micros in 1..=10_000 {
            record(&stats, 0, micros, Outcome::Status(200), false);
        }
        let route = &stats.snapshot()[0];
        assert_eq!(route.count(), 10_000);
        let p50 = route.latency.value_at_quantile(0.5);
        let p99 = route.latency.value_at_quantile(0.99);
        assert!((4_995..=5_005).contains(&p50), "{p50}");
        assert!((9_890..=9_910).contains(&p99), "{p99}");
        assert!((9_990..=10_010).contains(&route.latency.max()));
    }

    #[test]
    fn outcomes_errors_slowest_and_failed_are_kept_per_route() {
        let stats = Stats::new(2, 1);
        record(&stats, 0, 100, Outcome::Status(200), false);
        record(&stats, 0, 900, Outcome::Status(200), false);
        record(&stats, 0, 50, Outcome::Status(404), false);
        record(&stats, 0, 7_000, Outcome::Status(500), true);
        record(&stats, 0, 30, Outcome::Failed(Failure::Timeout), true);
        for micros in 1..=20 {
            record(&stats, 1, micros, Outcome::Status(503), true);
        }
        let routes = stats.snapshot();
        let first = &routes[0];
        assert_eq!(first.count(), 5);
        assert_eq!(first.errors, 2);
        assert_eq!(first.outcomes["200"], 2);
        assert_eq!(first.outcomes["404"], 1);
        assert_eq!(first.error_outcomes.len(), 2);
        assert_eq!(first.error_outcomes["timeout"], 1);
        let slowest: Vec<u64> = first.slowest.iter().map(|s| s.latency_micros).collect();
        assert_eq!(slowest, [7_000, 900, 100, 50, 30]);
        assert_eq!(first.failed.len(), 2);
        assert_eq!(first.failed[0].outcome, Outcome::Status(500));
        assert_eq!(first.failed[0].request_id.as_deref(), Some("req"));
        let second = &routes[1];
        assert_eq!(second.errors, 20);
        assert_eq!(second.failed.len(), FAILED_KEPT);
        assert_eq!(second.slowest[0].latency_micros, 20);
        assert_eq!(stats.overall_latency().len(), 25);
        assert_eq!(stats.done.load(Ordering::Relaxed), 25);
        assert_eq!(stats.errors.load(Ordering::Relaxed), 22);
    }
}
