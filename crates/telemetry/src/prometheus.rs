//! `/metrics`: Prometheus text exposition (format 0.0.4) of the instance's own meter provider.
//!
//! A pull reader shares the meter provider with the OTLP exporter, so Prometheus can scrape the
//! service directly with no collector, and both see the same numbers. Names follow the
//! OpenTelemetry → Prometheus compatibility rules: dots become underscores, the unit becomes a
//! suffix (`s` → `_seconds`, `By` → `_bytes`, `{…}` units are dropped), monotonic sums end in
//! `_total`. Resource attributes are exposed once, on `target_info`.

use std::fmt::Write;
use std::sync::Arc;

use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{InstrumentKind, ManualReader, Pipeline, Temporality};

/// Content type of the exposition.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A pull reader that can be registered with a meter provider and read from elsewhere.
#[derive(Debug, Clone)]
pub(crate) struct SharedReader(pub(crate) Arc<ManualReader>);

impl MetricReader for SharedReader {
    fn register_pipeline(&self, pipeline: std::sync::Weak<Pipeline>) {
        self.0.register_pipeline(pipeline);
    }
    fn collect(&self, rm: &mut ResourceMetrics) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.collect(rm)
    }
    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.force_flush()
    }
    fn shutdown_with_timeout(
        &self,
        timeout: std::time::Duration,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
    fn temporality(&self, kind: InstrumentKind) -> Temporality {
        self.0.temporality(kind)
    }
}

/// Collects from `reader` and renders the text exposition.
pub(crate) fn render(reader: &ManualReader) -> String {
    let mut rm = ResourceMetrics::default();
    if reader.collect(&mut rm).is_err() {
        return String::new();
    }
    encode(&rm)
}

fn encode(rm: &ResourceMetrics) -> String {
    let mut out = String::with_capacity(8 * 1024);
    let resource: Vec<KeyValue> = rm
        .resource()
        .iter()
        .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
        .collect();
    if !resource.is_empty() {
        out.push_str("# HELP target_info Target metadata\n# TYPE target_info gauge\ntarget_info");
        write_labels(&mut out, resource.iter(), None);
        out.push_str(" 1\n");
    }
    let mut seen: Vec<String> = Vec::new();
    for scope in rm.scope_metrics() {
        for metric in scope.metrics() {
            let base = sanitize_name(metric.name());
            let unit = unit_suffix(metric.unit());
            let name = match unit {
                Some(suffix) if !base.ends_with(suffix) => format!("{base}_{suffix}"),
                _ => base,
            };
            if seen.contains(&name) {
                continue;
            }
            let help = if metric.description().is_empty() {
                metric.name()
            } else {
                metric.description()
            };
            match metric.data() {
                AggregatedMetrics::F64(data) => write_metric(&mut out, &name, help, data, |v| *v),
                AggregatedMetrics::U64(data) => {
                    write_metric(&mut out, &name, help, data, |v| *v as f64)
                }
                AggregatedMetrics::I64(data) => {
                    write_metric(&mut out, &name, help, data, |v| *v as f64)
                }
            }
            seen.push(name);
        }
    }
    out
}

fn write_metric<T: Copy>(
    out: &mut String,
    name: &str,
    help: &str,
    data: &MetricData<T>,
    to_f64: impl Fn(&T) -> f64,
) {
    match data {
        MetricData::Sum(sum) => {
            let (name, kind) = if sum.is_monotonic() {
                (format!("{name}_total"), "counter")
            } else {
                (name.to_owned(), "gauge")
            };
            write_header(out, &name, help, kind);
            for point in sum.data_points() {
                out.push_str(&name);
                write_labels(out, point.attributes(), None);
                let _ = writeln!(out, " {}", fmt_f64(to_f64(&point.value())));
            }
        }
        MetricData::Gauge(gauge) => {
            write_header(out, name, help, "gauge");
            for point in gauge.data_points() {
                out.push_str(name);
                write_labels(out, point.attributes(), None);
                let _ = writeln!(out, " {}", fmt_f64(to_f64(&point.value())));
            }
        }
        MetricData::Histogram(histogram) => {
            write_header(out, name, help, "histogram");
            for point in histogram.data_points() {
                let mut cumulative = 0u64;
                let bounds: Vec<f64> = point.bounds().collect();
                for (i, count) in point.bucket_counts().enumerate() {
                    cumulative += count;
                    let le = bounds
                        .get(i)
                        .map_or_else(|| "+Inf".to_owned(), |b| fmt_f64(*b));
                    out.push_str(name);
                    out.push_str("_bucket");
                    write_labels(out, point.attributes(), Some(&le));
                    let _ = writeln!(out, " {cumulative}");
                }
                out.push_str(name);
                out.push_str("_sum");
                write_labels(out, point.attributes(), None);
                let _ = writeln!(out, " {}", fmt_f64(to_f64(&point.sum())));
                out.push_str(name);
                out.push_str("_count");
                write_labels(out, point.attributes(), None);
                let _ = writeln!(out, " {}", point.count());
            }
        }
        // Exponential histograms have no classic text form; they are exported over OTLP only.
        MetricData::ExponentialHistogram(_) => {}
    }
}

fn write_header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn write_labels<'a>(
    out: &mut String,
    attributes: impl Iterator<Item = &'a KeyValue>,
    le: Option<&str>,
) {
    let mut first = true;
    for kv in attributes {
        out.push(if first { '{' } else { ',' });
        first = false;
        out.push_str(&sanitize_label(kv.key.as_str()));
        out.push_str("=\"");
        escape_label_value(out, &value_text(&kv.value));
        out.push('"');
    }
    if let Some(le) = le {
        out.push(if first { '{' } else { ',' });
        first = false;
        out.push_str("le=\"");
        out.push_str(le);
        out.push('"');
    }
    if !first {
        out.push('}');
    }
}

fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.as_str().to_owned(),
        other => other.to_string(),
    }
}

fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

fn sanitize_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

fn sanitize_label(key: &str) -> String {
    let mut out: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

fn unit_suffix(unit: &str) -> Option<&'static str> {
    match unit {
        "s" => Some("seconds"),
        "ms" => Some("milliseconds"),
        "By" => Some("bytes"),
        "1" => Some("ratio"),
        _ => None,
    }
}

fn fmt_f64(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".to_owned()
        } else {
            "-Inf".to_owned()
        }
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_compatibility_rules() {
        assert_eq!(
            sanitize_name("http.server.request.duration"),
            "http_server_request_duration"
        );
        assert_eq!(unit_suffix("s"), Some("seconds"));
        assert_eq!(unit_suffix("{request}"), None);
        assert_eq!(
            sanitize_label("http.response.status_code"),
            "http_response_status_code"
        );
        let mut out = String::new();
        escape_label_value(&mut out, "a\"b\\c\nd");
        assert_eq!(out, "a\\\"b\\\\c\\nd");
    }
}
