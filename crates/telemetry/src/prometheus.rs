//! `/metrics`: Prometheus text exposition (format 0.0.4, the default) or OpenMetrics 1.0.0 with
//! exemplars (when the scraper asks for it, [`wants_openmetrics`]) of the instance's own meter
//! provider.
//!
//! A pull reader shares the meter provider with the OTLP exporter, so Prometheus can scrape the
//! service directly with no collector, and both see the same numbers. Names follow the
//! OpenTelemetry → Prometheus compatibility rules: dots become underscores, the unit becomes a
//! suffix (`s` → `_seconds`, `By` → `_bytes`, `{…}` units are dropped), monotonic sums end in
//! `_total`. Resource attributes are exposed once, on `target_info`.
//!
//! OpenMetrics differs only where the format requires: a counter's family (`# TYPE`, `# HELP`)
//! is named without `_total` (its sample keeps it), `"` is escaped in `# HELP`, the exposition
//! ends with `# EOF`, and the buckets of `http.server.request.duration` and the samples of
//! `app.errors` carry their exemplar (`crate::exemplars`):
//! `…_bucket{…,le="0.25"} 7 # {trace_id="…",span_id="…"} 0.2113 1764590000.123`.

use std::fmt::Write;
use std::sync::Arc;

use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{InstrumentKind, ManualReader, Pipeline, Temporality};

use crate::exemplars::{ExemplarRegistry, SeriesSlots};

/// Content type of the Prometheus text exposition (the default).
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Content type of the OpenMetrics exposition.
pub(crate) const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Whether an `Accept` header prefers OpenMetrics to the Prometheus text format: some
/// `application/openmetrics-text` range with a q-value above zero and not below that of
/// `text/plain` or `*/*` (Prometheus sends `application/openmetrics-text;version=1.0.0,…,
/// text/plain;version=0.0.4;q=0.5,*/*;q=0.1`). Versions other than 1.0.0 and 0.0.1 are not
/// served; no header means the text format.
pub(crate) fn wants_openmetrics(accept: Option<&str>) -> bool {
    let Some(accept) = accept else {
        return false;
    };
    let (mut openmetrics, mut text) = (0.0f32, 0.0f32);
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default().to_ascii_lowercase();
        let (mut q, mut version) = (1.0f32, None);
        for param in parts {
            if let Some((k, v)) = param.split_once('=') {
                match k.trim().to_ascii_lowercase().as_str() {
                    "q" => q = v.trim().parse().unwrap_or(0.0),
                    "version" => version = Some(v.trim().to_owned()),
                    _ => {}
                }
            }
        }
        match media.as_str() {
            "application/openmetrics-text"
                if matches!(version.as_deref(), None | Some("1.0.0") | Some("0.0.1")) =>
            {
                openmetrics = openmetrics.max(q);
            }
            "text/plain" | "*/*" | "text/*" => text = text.max(q),
            _ => {}
        }
    }
    openmetrics > 0.0 && openmetrics >= text
}

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

/// The exposition format, and for OpenMetrics where the exemplars are.
#[derive(Clone, Copy)]
enum Format<'a> {
    Text,
    OpenMetrics(&'a ExemplarRegistry),
}

/// Collects from `reader` and renders the Prometheus text exposition.
pub(crate) fn render(reader: &ManualReader) -> String {
    let mut rm = ResourceMetrics::default();
    if reader.collect(&mut rm).is_err() {
        return String::new();
    }
    encode(&rm, Format::Text)
}

/// Collects from `reader` and renders the OpenMetrics exposition with the exemplars of
/// `exemplars`.
pub(crate) fn render_openmetrics(reader: &ManualReader, exemplars: &ExemplarRegistry) -> String {
    let mut rm = ResourceMetrics::default();
    if reader.collect(&mut rm).is_err() {
        return "# EOF\n".to_owned();
    }
    encode(&rm, Format::OpenMetrics(exemplars))
}

fn encode(rm: &ResourceMetrics, format: Format<'_>) -> String {
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
            let family = Family {
                otel_name: metric.name(),
                name: &name,
                help,
                format,
            };
            match metric.data() {
                AggregatedMetrics::F64(data) => write_metric(&mut out, &family, data, |v| *v),
                AggregatedMetrics::U64(data) => {
                    write_metric(&mut out, &family, data, |v| *v as f64)
                }
                AggregatedMetrics::I64(data) => {
                    write_metric(&mut out, &family, data, |v| *v as f64)
                }
            }
            seen.push(name);
        }
    }
    if let Format::OpenMetrics(_) = format {
        out.push_str("# EOF\n");
    }
    out
}

/// One metric family being written.
struct Family<'a> {
    otel_name: &'a str,
    name: &'a str,
    help: &'a str,
    format: Format<'a>,
}

impl Family<'_> {
    /// The exemplar slots of this family's series with `attributes` (OpenMetrics only).
    fn slots<'k>(&self, attributes: impl Iterator<Item = &'k KeyValue>) -> Option<SeriesSlots> {
        match self.format {
            Format::Text => None,
            Format::OpenMetrics(registry) => registry.find(self.otel_name, attributes),
        }
    }

    fn openmetrics(&self) -> bool {
        matches!(self.format, Format::OpenMetrics(_))
    }
}

fn write_metric<T: Copy>(
    out: &mut String,
    family: &Family<'_>,
    data: &MetricData<T>,
    to_f64: impl Fn(&T) -> f64,
) {
    let (name, help) = (family.name, family.help);
    let om = family.openmetrics();
    match data {
        MetricData::Sum(sum) => {
            let (sample, kind) = if sum.is_monotonic() {
                (format!("{name}_total"), "counter")
            } else {
                (name.to_owned(), "gauge")
            };
            // OpenMetrics names a counter's family without `_total`.
            let header = if om { name } else { sample.as_str() };
            write_header(out, header, help, kind, om);
            for point in sum.data_points() {
                out.push_str(&sample);
                write_labels(out, point.attributes(), None);
                let _ = write!(out, " {}", fmt_f64(to_f64(&point.value())));
                if sum.is_monotonic()
                    && let Some(SeriesSlots::Counter(slot)) = family.slots(point.attributes())
                    && let Some(exemplar) = slot.get()
                {
                    exemplar.write_openmetrics(out);
                }
                out.push('\n');
            }
        }
        MetricData::Gauge(gauge) => {
            write_header(out, name, help, "gauge", om);
            for point in gauge.data_points() {
                out.push_str(name);
                write_labels(out, point.attributes(), None);
                let _ = writeln!(out, " {}", fmt_f64(to_f64(&point.value())));
            }
        }
        MetricData::Histogram(histogram) => {
            write_header(out, name, help, "histogram", om);
            for point in histogram.data_points() {
                let slots = match family.slots(point.attributes()) {
                    Some(SeriesSlots::Histogram(slots)) => Some(slots),
                    _ => None,
                };
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
                    let _ = write!(out, " {cumulative}");
                    if let Some(exemplar) = slots.as_ref().and_then(|s| s.bucket(i)) {
                        exemplar.write_openmetrics(out);
                    }
                    out.push('\n');
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

fn write_header(out: &mut String, name: &str, help: &str, kind: &str, openmetrics: bool) {
    let help = escape_help(help);
    let help = if openmetrics {
        help.replace('"', "\\\"")
    } else {
        help
    };
    let _ = writeln!(out, "# HELP {name} {help}");
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
    fn openmetrics_only_when_the_scraper_prefers_it() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert!(wants_openmetrics(Some(prometheus)));
        assert!(wants_openmetrics(Some("application/openmetrics-text")));
        assert!(wants_openmetrics(Some(
            "Application/OpenMetrics-Text; version=0.0.1"
        )));
        assert!(!wants_openmetrics(None));
        assert!(!wants_openmetrics(Some("*/*")));
        assert!(!wants_openmetrics(Some("text/plain;version=0.0.4")));
        assert!(!wants_openmetrics(Some(
            "text/plain,application/openmetrics-text;q=0.5"
        )));
        assert!(!wants_openmetrics(Some("application/openmetrics-text;q=0")));
        assert!(!wants_openmetrics(Some(
            "application/openmetrics-text;version=2.0.0"
        )));
    }

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
