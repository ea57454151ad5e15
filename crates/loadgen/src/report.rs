//! The summary of a run: built once from the measurements, then printed as a table or as one
//! JSON document (schema in docs/loadgen.md, `schema_version` 1), and checked against the
//! thresholds.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::cli::{Limit, Model};
use crate::duration::display_micros;
use crate::runner::{Finished, Run};
use crate::stats::{RouteStats, Sample};
use crate::threshold::{Measured, Threshold};
use crate::trace::hex;

/// Version of the JSON document; bumped only when a field changes meaning or disappears.
pub(crate) const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Serialize)]
pub(crate) struct Summary {
    pub(crate) schema_version: u32,
    pub(crate) target: String,
    pub(crate) model: ModelReport,
    pub(crate) limit: LimitReport,
    pub(crate) interrupted: bool,
    pub(crate) elapsed_s: f64,
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    pub(crate) error_rate: f64,
    pub(crate) throughput_rps: f64,
    pub(crate) dropped_journeys: u64,
    /// Answers marked `Idempotent-Replayed: true` (retried checkouts).
    pub(crate) idempotent_replays: u64,
    pub(crate) journeys: BTreeMap<String, u64>,
    pub(crate) latency_ms: Latency,
    pub(crate) schedule_lag_ms: Option<Latency>,
    pub(crate) routes: Vec<RouteReport>,
    pub(crate) thresholds: Vec<ThresholdReport>,
    pub(crate) passed: bool,
}

#[derive(Debug, Serialize)]
pub(crate) struct ModelReport {
    /// `open` or `closed`.
    pub(crate) kind: &'static str,
    pub(crate) rate_rps: Option<f64>,
    pub(crate) journey_rate: Option<f64>,
    pub(crate) ramp_s: Option<f64>,
    pub(crate) users: Option<usize>,
    pub(crate) connections: usize,
    pub(crate) think_ms: f64,
}

#[derive(Debug, Serialize)]
pub(crate) struct LimitReport {
    pub(crate) duration_s: Option<f64>,
    pub(crate) requests: Option<u64>,
}

/// Latency quantiles in milliseconds (HDR histogram, 3 significant digits).
#[derive(Debug, Serialize, Clone, Copy)]
pub(crate) struct Latency {
    pub(crate) p50: f64,
    pub(crate) p90: f64,
    pub(crate) p99: f64,
    pub(crate) p99_9: f64,
    pub(crate) max: f64,
    pub(crate) mean: f64,
}

#[derive(Debug, Serialize)]
pub(crate) struct RouteReport {
    pub(crate) route: String,
    pub(crate) count: u64,
    pub(crate) errors: u64,
    pub(crate) throughput_rps: f64,
    pub(crate) latency_ms: Latency,
    /// Every outcome: status codes, or `connect` / `timeout` / `io`.
    pub(crate) statuses: BTreeMap<String, u64>,
    /// The outcomes that were errors (not among the step's expected statuses).
    pub(crate) errors_by_status: BTreeMap<String, u64>,
    pub(crate) slowest: Vec<SampleReport>,
    pub(crate) failed: Vec<SampleReport>,
}

#[derive(Debug, Serialize)]
pub(crate) struct SampleReport {
    pub(crate) latency_ms: f64,
    pub(crate) status: String,
    pub(crate) trace_id: String,
    pub(crate) request_id: Option<String>,
    pub(crate) trace_url: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ThresholdReport {
    pub(crate) threshold: String,
    pub(crate) route: Option<String>,
    /// In the threshold's unit: milliseconds, percent, or requests/s; `null` when nothing
    /// was measured.
    pub(crate) actual: Option<f64>,
    pub(crate) passed: bool,
    /// `actual` for people: `14.6ms`, `0.20%`, `120.0`.
    #[serde(skip)]
    pub(crate) actual_text: String,
}

fn millis(micros: f64) -> f64 {
    (micros / 1e3 * 1e3).round() / 1e3
}

impl Latency {
    fn of(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Self {
                p50: 0.0,
                p90: 0.0,
                p99: 0.0,
                p99_9: 0.0,
                max: 0.0,
                mean: 0.0,
            };
        }
        let q = |q: f64| millis(histogram.value_at_quantile(q) as f64);
        Self {
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            p99_9: q(0.999),
            max: millis(histogram.max() as f64),
            mean: millis(histogram.mean()),
        }
    }
}

impl Summary {
    /// Builds the summary and evaluates `thresholds`.
    pub(crate) fn build(
        run: &Run,
        finished: &Finished,
        thresholds: &[Threshold],
        trace_url_template: Option<&str>,
    ) -> Self {
        let plan = &run.plan;
        let seconds = finished.elapsed.as_secs_f64().max(1e-9);
        let routes_stats = run.stats.snapshot();
        let overall = run.stats.overall_latency();
        let requests: u64 = routes_stats.iter().map(RouteStats::count).sum();
        let errors: u64 = routes_stats.iter().map(|r| r.errors).sum();
        let share = |errors: u64, count: u64| {
            if count == 0 {
                0.0
            } else {
                errors as f64 / count as f64
            }
        };
        let sample = |sample: &Sample| {
            let trace_id = hex(&sample.trace_id);
            SampleReport {
                latency_ms: millis(sample.latency_micros as f64),
                status: sample.outcome.label(),
                trace_url: trace_url_template.map(|t| t.replace("{trace_id}", &trace_id)),
                trace_id,
                request_id: sample.request_id.clone(),
            }
        };
        let routes: Vec<RouteReport> = plan
            .scenario
            .routes
            .iter()
            .zip(&routes_stats)
            .map(|(route, stats)| RouteReport {
                route: route.clone(),
                count: stats.count(),
                errors: stats.errors,
                throughput_rps: stats.count() as f64 / seconds,
                latency_ms: Latency::of(&stats.latency),
                statuses: stats.outcomes.clone(),
                errors_by_status: stats.error_outcomes.clone(),
                slowest: stats.slowest.iter().map(sample).collect(),
                failed: stats.failed.iter().map(sample).collect(),
            })
            .collect();
        let threshold_reports: Vec<ThresholdReport> = thresholds
            .iter()
            .map(|threshold| {
                let measured = match &threshold.route {
                    Some(route) => {
                        let index = plan.scenario.routes.iter().position(|r| r == route);
                        let stats = index.and_then(|i| routes_stats.get(i));
                        match stats {
                            Some(stats) => Measured {
                                latency: &stats.latency,
                                error_percent: 100.0 * share(stats.errors, stats.count()),
                                rps: stats.count() as f64 / seconds,
                            },
                            None => Measured {
                                latency: &overall,
                                error_percent: 100.0,
                                rps: 0.0,
                            },
                        }
                    }
                    None => Measured {
                        latency: &overall,
                        // Dropped arrivals are users who were never served: errors too.
                        error_percent: 100.0
                            * share(errors + finished.dropped, requests + finished.dropped),
                        rps: requests as f64 / seconds,
                    },
                };
                let actual = threshold.actual(measured);
                let passed = threshold.passes(actual);
                let actual_text =
                    actual.map_or("nothing measured".to_owned(), |a| threshold.format_value(a));
                let actual = actual.map(|value| match threshold.metric {
                    crate::threshold::Metric::Errors | crate::threshold::Metric::Rps => {
                        (value * 1e4).round() / 1e4
                    }
                    _ => millis(value),
                });
                ThresholdReport {
                    threshold: threshold.expression.clone(),
                    route: threshold.route.clone(),
                    actual,
                    passed,
                    actual_text,
                }
            })
            .collect();
        let passed = threshold_reports.iter().all(|t| t.passed);
        let (kind, rate, ramp, users) = match plan.model {
            Model::Open { rate, ramp, .. } => ("open", Some(rate), Some(ramp.as_secs_f64()), None),
            Model::Closed { users } => ("closed", None, None, Some(users)),
        };
        let journeys = plan
            .scenario
            .journeys
            .iter()
            .zip(run.stats.journeys())
            .map(|(journey, count)| (journey.name.clone(), count))
            .collect();
        Self {
            schema_version: SCHEMA_VERSION,
            target: plan.target.url.clone(),
            model: ModelReport {
                kind,
                rate_rps: rate,
                journey_rate: plan.journey_rate().map(|r| (r * 1e3).round() / 1e3),
                ramp_s: ramp,
                users,
                connections: plan.connections(),
                think_ms: plan.think.as_secs_f64() * 1e3,
            },
            limit: match plan.limit {
                Limit::Duration(duration) => LimitReport {
                    duration_s: Some(duration.as_secs_f64()),
                    requests: None,
                },
                Limit::Requests(n) => LimitReport {
                    duration_s: None,
                    requests: Some(n),
                },
            },
            interrupted: finished.interrupted,
            elapsed_s: (seconds * 1e3).round() / 1e3,
            requests,
            errors,
            error_rate: share(errors, requests),
            throughput_rps: requests as f64 / seconds,
            dropped_journeys: finished.dropped,
            idempotent_replays: run
                .stats
                .replayed
                .load(std::sync::atomic::Ordering::Relaxed),
            journeys,
            latency_ms: Latency::of(&overall),
            schedule_lag_ms: run
                .stats
                .schedule_lag()
                .len()
                .gt(&0)
                .then(|| Latency::of(&run.stats.schedule_lag())),
            routes,
            thresholds: threshold_reports,
            passed,
        }
    }

    /// The summary as the table a person reads.
    pub(crate) fn to_text(&self) -> String {
        let mut out = String::new();
        let model = match self.model.kind {
            "open" => format!(
                "open model, {} req/s ({} journeys/s), ramp {}s, {} connections",
                self.model.rate_rps.unwrap_or(0.0),
                self.model.journey_rate.unwrap_or(0.0),
                self.model.ramp_s.unwrap_or(0.0),
                self.model.connections
            ),
            _ => format!("closed model, {} users", self.model.users.unwrap_or(0)),
        };
        let _ = writeln!(
            out,
            "\n{} — {model}, {:.1}s{}",
            self.target,
            self.elapsed_s,
            if self.interrupted {
                " (interrupted: the summary so far)"
            } else {
                ""
            }
        );
        let width = self
            .routes
            .iter()
            .map(|r| r.route.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let _ = writeln!(
            out,
            "\n{:width$}  {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7}",
            "route", "count", "req/s", "p50", "p90", "p99", "p99.9", "max", "errors"
        );
        let line = |out: &mut String,
                    name: &str,
                    count: u64,
                    rps: f64,
                    l: &Latency,
                    errors: u64| {
            let d = |ms: f64| display_micros((ms * 1e3).round() as u64);
            let _ = writeln!(
                out,
                "{name:width$}  {count:>8} {rps:>9.1} {:>9} {:>9} {:>9} {:>9} {:>9} {errors:>7}",
                d(l.p50),
                d(l.p90),
                d(l.p99),
                d(l.p99_9),
                d(l.max)
            );
        };
        for route in self.routes.iter().filter(|r| r.count > 0) {
            line(
                &mut out,
                &route.route,
                route.count,
                route.throughput_rps,
                &route.latency_ms,
                route.errors,
            );
        }
        line(
            &mut out,
            "all",
            self.requests,
            self.throughput_rps,
            &self.latency_ms,
            self.errors,
        );
        let _ = writeln!(
            out,
            "\nrequests {}  errors {} ({:.2}%)  idempotent replays {}  journeys {}",
            self.requests,
            self.errors,
            self.error_rate * 100.0,
            self.idempotent_replays,
            self.journeys
                .iter()
                .map(|(name, n)| format!("{name} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if let Some(lag) = &self.schedule_lag_ms {
            let _ = writeln!(
                out,
                "schedule lag (arrival due → journey started; counted in latency): p99 {} max {}",
                display_micros((lag.p99 * 1e3) as u64),
                display_micros((lag.max * 1e3) as u64)
            );
        }
        if self.dropped_journeys > 0 {
            let _ = writeln!(
                out,
                "dropped: {} arrivals were due but every connection was busy (raise --connections; \
                 counted as errors by the errors threshold)",
                self.dropped_journeys
            );
        }
        let errored: Vec<&RouteReport> = self.routes.iter().filter(|r| r.errors > 0).collect();
        if !errored.is_empty() {
            let _ = writeln!(out, "\nerrors by status:");
            for route in &errored {
                let statuses: Vec<String> = route
                    .errors_by_status
                    .iter()
                    .map(|(s, n)| format!("{s} ×{n}"))
                    .collect();
                let _ = writeln!(out, "  {:width$}  {}", route.route, statuses.join(", "));
            }
        }
        let sample_line = |out: &mut String, route: &str, s: &SampleReport| {
            let trace = s.trace_url.as_deref().unwrap_or(&s.trace_id);
            let _ = writeln!(
                out,
                "  {route:width$}  {:>9}  {:>7}  {trace}{}",
                display_micros((s.latency_ms * 1e3).round() as u64),
                s.status,
                s.request_id
                    .as_deref()
                    .map(|id| format!("  request {id}"))
                    .unwrap_or_default()
            );
        };
        let mut slowest: Vec<(&str, &SampleReport)> = self
            .routes
            .iter()
            .flat_map(|r| r.slowest.iter().map(move |s| (r.route.as_str(), s)))
            .collect();
        slowest.sort_by(|a, b| b.1.latency_ms.total_cmp(&a.1.latency_ms));
        if !slowest.is_empty() {
            let _ = writeln!(out, "\nslowest requests (trace ids):");
            for (route, s) in slowest.iter().take(5) {
                sample_line(&mut out, route, s);
            }
        }
        let failed: Vec<(&str, &SampleReport)> = self
            .routes
            .iter()
            .flat_map(|r| r.failed.iter().take(3).map(move |s| (r.route.as_str(), s)))
            .collect();
        if !failed.is_empty() {
            let _ = writeln!(
                out,
                "\nfailed requests (the first 3 of each route, trace ids):"
            );
            for (route, s) in &failed {
                sample_line(&mut out, route, s);
            }
        }
        if !self.thresholds.is_empty() {
            let _ = writeln!(out, "\nthresholds:");
            for t in &self.thresholds {
                let _ = writeln!(
                    out,
                    "  {} {}  (actual {})",
                    if t.passed { "pass" } else { "FAIL" },
                    t.threshold,
                    t.actual_text
                );
            }
        }
        out
    }

    /// One line per breached threshold, for stderr.
    pub(crate) fn breaches(&self) -> Vec<String> {
        self.thresholds
            .iter()
            .filter(|report| !report.passed)
            .map(|report| {
                format!(
                    "threshold breached: {} (actual {})",
                    report.threshold, report.actual_text
                )
            })
            .collect()
    }
}
