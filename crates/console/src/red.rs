//! RED per route from the exported metrics: every metrics export request carries the
//! cumulative `http.server.request.duration` histogram; the console keeps a bounded series of
//! snapshots per (service, instance, method, route) and serves the rate, error rate (5xx) and
//! p50/p95/p99 between consecutive snapshots. It also keeps each instance's latest pipeline
//! health (`app.telemetry.*`) and its active series count (data points in its last export).

use std::collections::{HashMap, VecDeque};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use serde::Serialize;

use crate::model::{self, any_value_ref};

/// Snapshots kept per route (at the default 5 s interval: 30 minutes).
const MAX_SNAPSHOTS: usize = 360;
/// Routes (series keys) kept; the RED series of further routes are ignored (and counted).
const MAX_ROUTES: usize = 1_000;
/// Instances whose health is kept.
const MAX_INSTANCES: usize = 64;

const DURATION: &str = "http.server.request.duration";

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RouteKey {
    service: String,
    instance: String,
    method: String,
    route: String,
}

#[derive(Debug, Clone)]
struct Snapshot {
    time_nanos: u64,
    count: u64,
    errors: u64,
    bounds: Vec<f64>,
    buckets: Vec<u64>,
    /// Multiplier from the histogram's unit to milliseconds.
    to_ms: f64,
}

/// One instance's latest pipeline health and series count.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct InstanceHealth {
    pub(crate) service: String,
    pub(crate) instance: String,
    pub(crate) spans_dropped: u64,
    pub(crate) logs_dropped: u64,
    pub(crate) export_failures: u64,
    pub(crate) log_lines_dropped: u64,
    pub(crate) active_series: usize,
    pub(crate) time_unix_s: u64,
}

/// The RED series and pipeline health.
#[derive(Debug, Default)]
pub(crate) struct Red {
    routes: HashMap<RouteKey, VecDeque<Snapshot>>,
    instances: HashMap<(String, String), InstanceHealth>,
    /// Routes not kept because [`MAX_ROUTES`] were already tracked.
    pub(crate) routes_ignored: u64,
}

/// A point of one route's chart.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Point {
    pub(crate) t_unix_s: u64,
    pub(crate) rate: f64,
    pub(crate) error_rate: f64,
    pub(crate) p50_ms: Option<f64>,
    pub(crate) p95_ms: Option<f64>,
    pub(crate) p99_ms: Option<f64>,
}

/// One route's chart.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RouteSeries {
    pub(crate) service: String,
    pub(crate) method: String,
    pub(crate) route: String,
    pub(crate) points: Vec<Point>,
}

fn string(attributes: &[KeyValue], key: &str) -> Option<String> {
    let kv = attributes.iter().find(|kv| kv.key == key)?;
    match any_value_ref(kv.value.as_ref()) {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    }
}

fn number(point: &opentelemetry_proto::tonic::metrics::v1::NumberDataPoint) -> u64 {
    match point.value {
        Some(number_data_point::Value::AsInt(i)) => u64::try_from(i).unwrap_or(0),
        Some(number_data_point::Value::AsDouble(d)) if d > 0.0 => d as u64,
        _ => 0,
    }
}

impl Red {
    pub(crate) fn clear(&mut self) {
        self.routes.clear();
    }

    pub(crate) fn ingest(&mut self, request: &ExportMetricsServiceRequest) {
        for resource_metrics in &request.resource_metrics {
            let (resource, service) = model::resource(resource_metrics.resource.clone());
            let service = service.to_string();
            let instance = resource
                .get("service.instance.id")
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_owned();
            let mut health = InstanceHealth {
                service: service.clone(),
                instance: instance.clone(),
                ..InstanceHealth::default()
            };
            let mut routes: HashMap<RouteKey, Snapshot> = HashMap::new();
            for scope in &resource_metrics.scope_metrics {
                for metric in &scope.metrics {
                    let Some(data) = &metric.data else { continue };
                    health.active_series += match data {
                        metric::Data::Gauge(g) => g.data_points.len(),
                        metric::Data::Sum(s) => s.data_points.len(),
                        metric::Data::Histogram(h) => h.data_points.len(),
                        metric::Data::ExponentialHistogram(h) => h.data_points.len(),
                        metric::Data::Summary(s) => s.data_points.len(),
                    };
                    match (metric.name.as_str(), data) {
                        (DURATION, metric::Data::Histogram(histogram)) => {
                            let to_ms = match metric.unit.as_str() {
                                "ms" => 1.0,
                                "us" => 0.001,
                                _ => 1000.0,
                            };
                            for point in &histogram.data_points {
                                let a = &point.attributes;
                                let key = RouteKey {
                                    service: service.clone(),
                                    instance: instance.clone(),
                                    method: string(a, "http.request.method").unwrap_or_default(),
                                    route: string(a, "http.route").unwrap_or_default(),
                                };
                                let status: i64 = string(a, "http.response.status_code")
                                    .and_then(|s| s.parse().ok())
                                    .unwrap_or(0);
                                let snapshot = routes.entry(key).or_insert_with(|| Snapshot {
                                    time_nanos: 0,
                                    count: 0,
                                    errors: 0,
                                    bounds: point.explicit_bounds.clone(),
                                    buckets: vec![0; point.bucket_counts.len()],
                                    to_ms,
                                });
                                snapshot.time_nanos = snapshot.time_nanos.max(point.time_unix_nano);
                                snapshot.count += point.count;
                                if status >= 500 {
                                    snapshot.errors += point.count;
                                }
                                if snapshot.bounds == point.explicit_bounds {
                                    for (sum, n) in
                                        snapshot.buckets.iter_mut().zip(&point.bucket_counts)
                                    {
                                        *sum += n;
                                    }
                                }
                            }
                        }
                        ("app.telemetry.dropped", metric::Data::Sum(sum)) => {
                            for point in &sum.data_points {
                                match string(&point.attributes, "signal").as_deref() {
                                    Some("spans") => health.spans_dropped += number(point),
                                    Some("logs") => health.logs_dropped += number(point),
                                    _ => {}
                                }
                                health.time_unix_s = point.time_unix_nano / 1_000_000_000;
                            }
                        }
                        ("app.telemetry.export.failures", metric::Data::Sum(sum)) => {
                            health.export_failures +=
                                sum.data_points.iter().map(number).sum::<u64>();
                        }
                        ("app.telemetry.log_lines.dropped", metric::Data::Sum(sum)) => {
                            health.log_lines_dropped +=
                                sum.data_points.iter().map(number).sum::<u64>();
                            if let Some(point) = sum.data_points.first() {
                                health.time_unix_s = point.time_unix_nano / 1_000_000_000;
                            }
                        }
                        _ => {}
                    }
                }
            }
            let key = (service.clone(), instance.clone());
            if self.instances.len() < MAX_INSTANCES || self.instances.contains_key(&key) {
                self.instances.insert(key, health);
            }
            for (key, snapshot) in routes {
                if !self.routes.contains_key(&key) && self.routes.len() >= MAX_ROUTES {
                    self.routes_ignored += 1;
                    continue;
                }
                let series = self.routes.entry(key).or_default();
                if series
                    .back()
                    .is_some_and(|last| last.time_nanos >= snapshot.time_nanos)
                {
                    continue;
                }
                series.push_back(snapshot);
                while series.len() > MAX_SNAPSHOTS {
                    series.pop_front();
                }
            }
        }
    }

    /// The charts of every route over the last `window_s` seconds before `now_unix_s`.
    pub(crate) fn series(&self, window_s: u64, now_unix_s: u64) -> Vec<RouteSeries> {
        let since = now_unix_s
            .saturating_sub(window_s)
            .saturating_mul(1_000_000_000);
        let mut out: Vec<RouteSeries> = self
            .routes
            .iter()
            .map(|(key, snapshots)| {
                let points = snapshots
                    .iter()
                    .zip(snapshots.iter().skip(1))
                    .filter(|(_, b)| b.time_nanos >= since)
                    .map(|(a, b)| point(a, b))
                    .collect();
                RouteSeries {
                    service: key.service.clone(),
                    method: key.method.clone(),
                    route: key.route.clone(),
                    points,
                }
            })
            .collect();
        out.sort_by(|a, b| {
            (&a.service, &a.route, &a.method).cmp(&(&b.service, &b.route, &b.method))
        });
        out
    }

    pub(crate) fn instances(&self) -> Vec<InstanceHealth> {
        let mut out: Vec<InstanceHealth> = self.instances.values().cloned().collect();
        out.sort_by(|a, b| (&a.service, &a.instance).cmp(&(&b.service, &b.instance)));
        out
    }
}

fn point(a: &Snapshot, b: &Snapshot) -> Point {
    // A counter that went down was reset (the instance restarted): b counts from zero.
    let reset = b.count < a.count;
    let count = if reset { b.count } else { b.count - a.count };
    let errors = if reset {
        b.errors
    } else {
        b.errors.saturating_sub(a.errors)
    };
    let seconds = (b.time_nanos.saturating_sub(a.time_nanos) as f64 / 1e9).max(1e-3);
    let buckets: Vec<u64> = if reset || a.bounds != b.bounds {
        b.buckets.clone()
    } else {
        b.buckets
            .iter()
            .zip(&a.buckets)
            .map(|(x, y)| x.saturating_sub(*y))
            .collect()
    };
    let quantile = |q: f64| quantile(q, &b.bounds, &buckets).map(|v| v * b.to_ms);
    Point {
        t_unix_s: b.time_nanos / 1_000_000_000,
        rate: count as f64 / seconds,
        error_rate: if count == 0 {
            0.0
        } else {
            errors as f64 / count as f64
        },
        p50_ms: quantile(0.50),
        p95_ms: quantile(0.95),
        p99_ms: quantile(0.99),
    }
}

/// The `q` quantile of an explicit-bucket histogram, interpolated linearly inside its bucket
/// (as Prometheus' `histogram_quantile`); the highest finite bound for the overflow bucket.
pub(crate) fn quantile(q: f64, bounds: &[f64], buckets: &[u64]) -> Option<f64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 || buckets.len() != bounds.len() + 1 {
        return None;
    }
    let rank = q * total as f64;
    let mut seen = 0u64;
    for (i, n) in buckets.iter().enumerate() {
        let before = seen;
        seen += n;
        if (seen as f64) >= rank && *n > 0 {
            if i == bounds.len() {
                return bounds.last().copied();
            }
            let lower = if i == 0 { 0.0 } else { bounds[i - 1] };
            let upper = bounds[i];
            let inside = (rank - before as f64) / *n as f64;
            return Some(lower + (upper - lower) * inside);
        }
    }
    bounds.last().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_inside_the_bucket() {
        let bounds = [0.1, 0.2, 0.5];
        // 10 in (0, 0.1], 10 in (0.1, 0.2], none above.
        let buckets = [10, 10, 0, 0];
        assert_eq!(quantile(0.5, &bounds, &buckets), Some(0.1));
        let p75 = quantile(0.75, &bounds, &buckets).unwrap_or_default();
        assert!((p75 - 0.15).abs() < 1e-9, "{p75}");
        assert_eq!(quantile(0.5, &bounds, &[0, 0, 0, 0]), None);
        assert_eq!(quantile(0.99, &bounds, &[0, 0, 0, 4]), Some(0.5));
    }
}
