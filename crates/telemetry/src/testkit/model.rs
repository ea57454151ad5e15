//! Plain owned data captured by the [`OtlpReceiver`](super::OtlpReceiver), plus the
//! conversions from the decoded OTLP protobuf messages.
//!
//! Conversion rules shared by every signal:
//! - trace and span ids are rendered as lowercase hex; optional ids (a span's parent, a
//!   log record's trace and span ids) are `""` when absent or all zero;
//! - attributes whose value is not set (an empty `AnyValue`) are skipped, and for duplicate
//!   keys the last one wins;
//! - enum values unknown to this crate map to the `Unspecified`/`Unset` variant.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, ExponentialHistogramDataPoint, HistogramDataPoint, Metric,
    NumberDataPoint, SummaryDataPoint, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{Span, span, status};

/// An attribute (or log body) value, converted from an OTLP `AnyValue`.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    /// A string value.
    Str(String),
    /// A boolean value.
    Bool(bool),
    /// A 64-bit signed integer value. OTLP string-table indexes (`string_value_strindex`)
    /// are captured as their integer index too.
    Int(i64),
    /// A double-precision floating point value.
    Double(f64),
    /// A homogeneous or heterogeneous array of values.
    Array(Vec<AttrValue>),
    /// Raw bytes.
    Bytes(Vec<u8>),
    /// A nested key/value list.
    Map(BTreeMap<String, AttrValue>),
}

impl AttrValue {
    /// The string, if this is a [`AttrValue::Str`].
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(value) => Some(value),
            _ => None,
        }
    }

    /// The integer, if this is an [`AttrValue::Int`].
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Self::Int(value) => Some(*value),
            _ => None,
        }
    }

    /// The boolean, if this is a [`AttrValue::Bool`].
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Self::Bool(value) => Some(*value),
            _ => None,
        }
    }

    /// The number as `f64`, if this is a [`AttrValue::Double`] or an [`AttrValue::Int`]
    /// (converted, possibly losing precision above 2^53).
    #[allow(clippy::cast_precision_loss)]
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Double(value) => Some(*value),
            Self::Int(value) => Some(*value as f64),
            _ => None,
        }
    }
}

/// Attributes keyed by name, in key order.
pub type Attributes = BTreeMap<String, AttrValue>;

/// The kind of a captured span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SpanKind {
    /// Not specified by the exporter (or a value unknown to this crate).
    #[default]
    Unspecified,
    /// An internal operation.
    Internal,
    /// The server side of a synchronous remote call.
    Server,
    /// The client side of a synchronous remote call.
    Client,
    /// The sender of an asynchronous message.
    Producer,
    /// The receiver of an asynchronous message.
    Consumer,
}

/// The status code of a captured span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StatusCode {
    /// No status was set (or a value unknown to this crate).
    #[default]
    Unset,
    /// The operation was explicitly marked successful.
    Ok,
    /// The operation failed.
    Error,
}

/// A span event.
#[derive(Debug, Clone, PartialEq)]
pub struct CapturedEvent {
    /// The event name.
    pub name: String,
    /// The event attributes.
    pub attributes: Attributes,
}

/// A span link.
#[derive(Debug, Clone, PartialEq)]
pub struct CapturedLink {
    /// The linked trace id, 32 lowercase hex digits.
    pub trace_id: String,
    /// The linked span id, 16 lowercase hex digits.
    pub span_id: String,
    /// The link attributes.
    pub attributes: Attributes,
}

/// One exported span, with its resource and instrumentation scope.
#[derive(Debug, Clone, PartialEq)]
pub struct CapturedSpan {
    /// The trace id, 32 lowercase hex digits.
    pub trace_id: String,
    /// The span id, 16 lowercase hex digits.
    pub span_id: String,
    /// The parent span id, 16 lowercase hex digits, or `""` for a root span.
    pub parent_span_id: String,
    /// The W3C `tracestate` header value.
    pub trace_state: String,
    /// The span name.
    pub name: String,
    /// The span kind.
    pub kind: SpanKind,
    /// Start time in nanoseconds since the Unix epoch.
    pub start_unix_nanos: u64,
    /// End time in nanoseconds since the Unix epoch.
    pub end_unix_nanos: u64,
    /// The span attributes.
    pub attributes: Attributes,
    /// The span events, in order.
    pub events: Vec<CapturedEvent>,
    /// The span links, in order.
    pub links: Vec<CapturedLink>,
    /// The status code.
    pub status_code: StatusCode,
    /// The status description (only meaningful for [`StatusCode::Error`]).
    pub status_message: String,
    /// The attributes of the resource that produced the span.
    pub resource: Attributes,
    /// The name of the instrumentation scope.
    pub scope_name: String,
    /// The OTLP span flags (low byte: W3C trace flags; bits 8–9: remote-parent info).
    pub flags: u32,
}

impl CapturedSpan {
    /// The span attribute named `key`.
    pub fn attr(&self, key: &str) -> Option<&AttrValue> {
        self.attributes.get(key)
    }

    /// The span attribute named `key`, if it is a string.
    pub fn str_attr(&self, key: &str) -> Option<&str> {
        self.attr(key).and_then(AttrValue::as_str)
    }
}

/// One data point of a sum or gauge.
#[derive(Debug, Clone, PartialEq)]
pub struct NumberPoint {
    /// The point attributes (the stream identity within its metric).
    pub attributes: Attributes,
    /// The value; integer points are converted to `f64`.
    pub value: f64,
    /// Whether the exporter sent an integer value.
    pub is_int: bool,
}

/// One data point of an explicit-bucket histogram.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramPoint {
    /// The point attributes.
    pub attributes: Attributes,
    /// The number of recorded values.
    pub count: u64,
    /// The sum of recorded values, if sent.
    pub sum: Option<f64>,
    /// The per-bucket counts (one more than `explicit_bounds`).
    pub bucket_counts: Vec<u64>,
    /// The bucket upper bounds.
    pub explicit_bounds: Vec<f64>,
    /// The minimum recorded value, if sent.
    pub min: Option<f64>,
    /// The maximum recorded value, if sent.
    pub max: Option<f64>,
}

/// One data point of an exponential histogram (buckets are not captured).
#[derive(Debug, Clone, PartialEq)]
pub struct ExpHistogramPoint {
    /// The point attributes.
    pub attributes: Attributes,
    /// The number of recorded values.
    pub count: u64,
    /// The sum of recorded values, if sent.
    pub sum: Option<f64>,
    /// The minimum recorded value, if sent.
    pub min: Option<f64>,
    /// The maximum recorded value, if sent.
    pub max: Option<f64>,
}

/// One data point of a summary.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryPoint {
    /// The point attributes.
    pub attributes: Attributes,
    /// The number of recorded values.
    pub count: u64,
    /// The sum of recorded values.
    pub sum: f64,
    /// `(quantile, value)` pairs, quantiles in `[0.0, 1.0]`.
    pub quantiles: Vec<(f64, f64)>,
}

/// The data of a captured metric, by instrument type.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricData {
    /// A sum (counter or up-down counter).
    Sum {
        /// Whether the sum only increases (counter).
        monotonic: bool,
        /// `true` for cumulative temporality, `false` for delta (or unspecified).
        cumulative: bool,
        /// The data points.
        points: Vec<NumberPoint>,
    },
    /// A gauge.
    Gauge {
        /// The data points.
        points: Vec<NumberPoint>,
    },
    /// An explicit-bucket histogram.
    Histogram {
        /// `true` for cumulative temporality, `false` for delta (or unspecified).
        cumulative: bool,
        /// The data points.
        points: Vec<HistogramPoint>,
    },
    /// An exponential histogram.
    ExponentialHistogram {
        /// `true` for cumulative temporality, `false` for delta (or unspecified).
        cumulative: bool,
        /// The data points.
        points: Vec<ExpHistogramPoint>,
    },
    /// A summary (legacy, not produced by the OpenTelemetry SDK).
    Summary {
        /// The data points.
        points: Vec<SummaryPoint>,
    },
    /// A metric without data.
    Empty,
}

/// One exported metric (all its data points from one export request), with its resource
/// and instrumentation scope.
#[derive(Debug, Clone, PartialEq)]
pub struct CapturedMetric {
    /// The metric name.
    pub name: String,
    /// The metric description.
    pub description: String,
    /// The metric unit (UCUM, e.g. `s` or `By`).
    pub unit: String,
    /// The attributes of the resource that produced the metric.
    pub resource: Attributes,
    /// The name of the instrumentation scope.
    pub scope_name: String,
    /// The data points.
    pub data: MetricData,
}

impl CapturedMetric {
    /// The attribute set of every data point, in point order.
    pub fn point_attribute_sets(&self) -> Vec<Attributes> {
        match &self.data {
            MetricData::Sum { points, .. } | MetricData::Gauge { points } => {
                points.iter().map(|p| p.attributes.clone()).collect()
            }
            MetricData::Histogram { points, .. } => {
                points.iter().map(|p| p.attributes.clone()).collect()
            }
            MetricData::ExponentialHistogram { points, .. } => {
                points.iter().map(|p| p.attributes.clone()).collect()
            }
            MetricData::Summary { points } => points.iter().map(|p| p.attributes.clone()).collect(),
            MetricData::Empty => Vec::new(),
        }
    }

    /// Splits this metric into one metric per data point, each holding exactly that point.
    pub(crate) fn split_points(&self) -> Vec<CapturedMetric> {
        fn each<P: Clone>(points: &[P], wrap: impl Fn(Vec<P>) -> MetricData) -> Vec<MetricData> {
            points.iter().map(|p| wrap(vec![p.clone()])).collect()
        }
        let data = match &self.data {
            MetricData::Sum {
                monotonic,
                cumulative,
                points,
            } => each(points, |points| MetricData::Sum {
                monotonic: *monotonic,
                cumulative: *cumulative,
                points,
            }),
            MetricData::Gauge { points } => each(points, |points| MetricData::Gauge { points }),
            MetricData::Histogram { cumulative, points } => {
                each(points, |points| MetricData::Histogram {
                    cumulative: *cumulative,
                    points,
                })
            }
            MetricData::ExponentialHistogram { cumulative, points } => {
                each(points, |points| MetricData::ExponentialHistogram {
                    cumulative: *cumulative,
                    points,
                })
            }
            MetricData::Summary { points } => each(points, |points| MetricData::Summary { points }),
            MetricData::Empty => Vec::new(),
        };
        data.into_iter()
            .map(|data| CapturedMetric {
                data,
                ..self.without_data()
            })
            .collect()
    }

    fn without_data(&self) -> CapturedMetric {
        CapturedMetric {
            name: self.name.clone(),
            description: self.description.clone(),
            unit: self.unit.clone(),
            resource: self.resource.clone(),
            scope_name: self.scope_name.clone(),
            data: MetricData::Empty,
        }
    }
}

/// One exported log record, with its resource and instrumentation scope.
#[derive(Debug, Clone, PartialEq)]
pub struct CapturedLog {
    /// The trace id (32 lowercase hex digits), or `""` when the record has no trace context.
    pub trace_id: String,
    /// The span id (16 lowercase hex digits), or `""` when the record has no trace context.
    pub span_id: String,
    /// The OTLP severity number (9 = INFO, 13 = WARN, 17 = ERROR, ...).
    pub severity_number: i32,
    /// The severity text as sent by the exporter.
    pub severity_text: String,
    /// The body, if any.
    pub body: Option<AttrValue>,
    /// The event name, `""` when not set.
    pub event_name: String,
    /// The log record attributes.
    pub attributes: Attributes,
    /// The attributes of the resource that produced the record.
    pub resource: Attributes,
    /// The name of the instrumentation scope.
    pub scope_name: String,
    /// The event time in nanoseconds since the Unix epoch (`0` when not set).
    pub time_unix_nanos: u64,
    /// The time the record was observed, in nanoseconds since the Unix epoch (`0` when not
    /// set; the `tracing` bridge sets only this one).
    pub observed_time_unix_nanos: u64,
}

impl CapturedLog {
    /// The log record attribute named `key`.
    pub fn attr(&self, key: &str) -> Option<&AttrValue> {
        self.attributes.get(key)
    }

    /// The log record attribute named `key`, if it is a string.
    pub fn str_attr(&self, key: &str) -> Option<&str> {
        self.attr(key).and_then(AttrValue::as_str)
    }

    /// The body, if it is a string.
    pub fn body_str(&self) -> Option<&str> {
        self.body.as_ref().and_then(AttrValue::as_str)
    }
}

/// Number of export requests received for each signal over one transport.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SignalCounts {
    /// Trace export requests.
    pub traces: usize,
    /// Metric export requests.
    pub metrics: usize,
    /// Log export requests.
    pub logs: usize,
}

impl SignalCounts {
    /// Requests for all signals.
    pub fn total(&self) -> usize {
        self.traces + self.metrics + self.logs
    }
}

/// Number of successfully decoded export requests, per transport and signal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportCounts {
    /// Requests received over OTLP/gRPC.
    pub grpc: SignalCounts,
    /// Requests received over OTLP/HTTP.
    pub http: SignalCounts,
}

impl ExportCounts {
    /// Trace export requests over both transports.
    pub fn traces(&self) -> usize {
        self.grpc.traces + self.http.traces
    }

    /// Metric export requests over both transports.
    pub fn metrics(&self) -> usize {
        self.grpc.metrics + self.http.metrics
    }

    /// Log export requests over both transports.
    pub fn logs(&self) -> usize {
        self.grpc.logs + self.http.logs
    }

    /// All export requests.
    pub fn total(&self) -> usize {
        self.grpc.total() + self.http.total()
    }
}

// ---------------------------------------------------------------------------------------
// protobuf -> model
// ---------------------------------------------------------------------------------------

/// Lowercase hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// Lowercase hex of an optional id: `""` when empty or all zero (invalid).
fn optional_id(bytes: &[u8]) -> String {
    if bytes.iter().all(|b| *b == 0) {
        String::new()
    } else {
        hex(bytes)
    }
}

fn any_value(value: &AnyValue) -> Option<AttrValue> {
    use any_value::Value;
    Some(match value.value.as_ref()? {
        Value::StringValue(s) => AttrValue::Str(s.clone()),
        Value::BoolValue(b) => AttrValue::Bool(*b),
        Value::IntValue(i) => AttrValue::Int(*i),
        Value::DoubleValue(d) => AttrValue::Double(*d),
        Value::ArrayValue(array) => {
            AttrValue::Array(array.values.iter().filter_map(any_value).collect())
        }
        Value::KvlistValue(list) => AttrValue::Map(attributes(&list.values)),
        Value::BytesValue(bytes) => AttrValue::Bytes(bytes.clone()),
        Value::StringValueStrindex(index) => AttrValue::Int(i64::from(*index)),
    })
}

fn attributes(key_values: &[KeyValue]) -> Attributes {
    key_values
        .iter()
        .filter_map(|kv| Some((kv.key.clone(), any_value(kv.value.as_ref()?)?)))
        .collect()
}

fn resource_attributes(resource: Option<&Resource>) -> Attributes {
    resource.map_or_else(Attributes::new, |r| attributes(&r.attributes))
}

fn scope_name(scope: Option<&InstrumentationScope>) -> String {
    scope.map(|s| s.name.clone()).unwrap_or_default()
}

fn span_kind(kind: i32) -> SpanKind {
    match span::SpanKind::try_from(kind) {
        Ok(span::SpanKind::Internal) => SpanKind::Internal,
        Ok(span::SpanKind::Server) => SpanKind::Server,
        Ok(span::SpanKind::Client) => SpanKind::Client,
        Ok(span::SpanKind::Producer) => SpanKind::Producer,
        Ok(span::SpanKind::Consumer) => SpanKind::Consumer,
        Ok(span::SpanKind::Unspecified) | Err(_) => SpanKind::Unspecified,
    }
}

fn status_code(code: i32) -> StatusCode {
    match status::StatusCode::try_from(code) {
        Ok(status::StatusCode::Ok) => StatusCode::Ok,
        Ok(status::StatusCode::Error) => StatusCode::Error,
        Ok(status::StatusCode::Unset) | Err(_) => StatusCode::Unset,
    }
}

fn captured_span(span: &Span, resource: &Attributes, scope_name: &str) -> CapturedSpan {
    let (status_code, status_message) = span.status.as_ref().map_or_else(
        || (StatusCode::Unset, String::new()),
        |s| (self::status_code(s.code), s.message.clone()),
    );
    CapturedSpan {
        trace_id: hex(&span.trace_id),
        span_id: hex(&span.span_id),
        parent_span_id: optional_id(&span.parent_span_id),
        trace_state: span.trace_state.clone(),
        name: span.name.clone(),
        kind: span_kind(span.kind),
        start_unix_nanos: span.start_time_unix_nano,
        end_unix_nanos: span.end_time_unix_nano,
        attributes: attributes(&span.attributes),
        events: span
            .events
            .iter()
            .map(|e| CapturedEvent {
                name: e.name.clone(),
                attributes: attributes(&e.attributes),
            })
            .collect(),
        links: span
            .links
            .iter()
            .map(|l| CapturedLink {
                trace_id: hex(&l.trace_id),
                span_id: hex(&l.span_id),
                attributes: attributes(&l.attributes),
            })
            .collect(),
        status_code,
        status_message,
        resource: resource.clone(),
        scope_name: scope_name.to_owned(),
        flags: span.flags,
    }
}

/// Every span of a trace export request, in request order.
pub(crate) fn spans_from_request(request: &ExportTraceServiceRequest) -> Vec<CapturedSpan> {
    let mut out = Vec::new();
    for resource_spans in &request.resource_spans {
        let resource = resource_attributes(resource_spans.resource.as_ref());
        for scope_spans in &resource_spans.scope_spans {
            let scope = scope_name(scope_spans.scope.as_ref());
            out.extend(
                scope_spans
                    .spans
                    .iter()
                    .map(|span| captured_span(span, &resource, &scope)),
            );
        }
    }
    out
}

/// Every log record of a logs export request, in request order.
pub(crate) fn logs_from_request(request: &ExportLogsServiceRequest) -> Vec<CapturedLog> {
    let mut out = Vec::new();
    for resource_logs in &request.resource_logs {
        let resource = resource_attributes(resource_logs.resource.as_ref());
        for scope_logs in &resource_logs.scope_logs {
            let scope = scope_name(scope_logs.scope.as_ref());
            out.extend(scope_logs.log_records.iter().map(|record| CapturedLog {
                trace_id: optional_id(&record.trace_id),
                span_id: optional_id(&record.span_id),
                severity_number: record.severity_number,
                severity_text: record.severity_text.clone(),
                body: record.body.as_ref().and_then(any_value),
                event_name: record.event_name.clone(),
                attributes: attributes(&record.attributes),
                resource: resource.clone(),
                scope_name: scope.clone(),
                time_unix_nanos: record.time_unix_nano,
                observed_time_unix_nanos: record.observed_time_unix_nano,
            }));
        }
    }
    out
}

fn is_cumulative(temporality: i32) -> bool {
    temporality == AggregationTemporality::Cumulative as i32
}

#[allow(clippy::cast_precision_loss)]
fn number_point(point: &NumberDataPoint) -> NumberPoint {
    let (value, is_int) = match point.value {
        Some(number_data_point::Value::AsDouble(value)) => (value, false),
        Some(number_data_point::Value::AsInt(value)) => (value as f64, true),
        None => (0.0, false),
    };
    NumberPoint {
        attributes: attributes(&point.attributes),
        value,
        is_int,
    }
}

fn histogram_point(point: &HistogramDataPoint) -> HistogramPoint {
    HistogramPoint {
        attributes: attributes(&point.attributes),
        count: point.count,
        sum: point.sum,
        bucket_counts: point.bucket_counts.clone(),
        explicit_bounds: point.explicit_bounds.clone(),
        min: point.min,
        max: point.max,
    }
}

fn exp_histogram_point(point: &ExponentialHistogramDataPoint) -> ExpHistogramPoint {
    ExpHistogramPoint {
        attributes: attributes(&point.attributes),
        count: point.count,
        sum: point.sum,
        min: point.min,
        max: point.max,
    }
}

fn summary_point(point: &SummaryDataPoint) -> SummaryPoint {
    SummaryPoint {
        attributes: attributes(&point.attributes),
        count: point.count,
        sum: point.sum,
        quantiles: point
            .quantile_values
            .iter()
            .map(|q| (q.quantile, q.value))
            .collect(),
    }
}

fn metric_data(data: Option<&metric::Data>) -> MetricData {
    match data {
        Some(metric::Data::Sum(sum)) => MetricData::Sum {
            monotonic: sum.is_monotonic,
            cumulative: is_cumulative(sum.aggregation_temporality),
            points: sum.data_points.iter().map(number_point).collect(),
        },
        Some(metric::Data::Gauge(gauge)) => MetricData::Gauge {
            points: gauge.data_points.iter().map(number_point).collect(),
        },
        Some(metric::Data::Histogram(histogram)) => MetricData::Histogram {
            cumulative: is_cumulative(histogram.aggregation_temporality),
            points: histogram.data_points.iter().map(histogram_point).collect(),
        },
        Some(metric::Data::ExponentialHistogram(histogram)) => MetricData::ExponentialHistogram {
            cumulative: is_cumulative(histogram.aggregation_temporality),
            points: histogram
                .data_points
                .iter()
                .map(exp_histogram_point)
                .collect(),
        },
        Some(metric::Data::Summary(summary)) => MetricData::Summary {
            points: summary.data_points.iter().map(summary_point).collect(),
        },
        None => MetricData::Empty,
    }
}

fn captured_metric(metric: &Metric, resource: &Attributes, scope_name: &str) -> CapturedMetric {
    CapturedMetric {
        name: metric.name.clone(),
        description: metric.description.clone(),
        unit: metric.unit.clone(),
        resource: resource.clone(),
        scope_name: scope_name.to_owned(),
        data: metric_data(metric.data.as_ref()),
    }
}

/// Every metric of a metrics export request, in request order.
pub(crate) fn metrics_from_request(request: &ExportMetricsServiceRequest) -> Vec<CapturedMetric> {
    let mut out = Vec::new();
    for resource_metrics in &request.resource_metrics {
        let resource = resource_attributes(resource_metrics.resource.as_ref());
        for scope_metrics in &resource_metrics.scope_metrics {
            let scope = scope_name(scope_metrics.scope.as_ref());
            out.extend(
                scope_metrics
                    .metrics
                    .iter()
                    .map(|metric| captured_metric(metric, &resource, &scope)),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lowercase_and_optional_ids_are_empty_when_invalid() {
        assert_eq!(hex(&[0x00, 0xab, 0x1f]), "00ab1f");
        assert_eq!(optional_id(&[]), "");
        assert_eq!(optional_id(&[0; 8]), "");
        assert_eq!(optional_id(&[0, 0, 0, 0, 0, 0, 0, 1]), "0000000000000001");
    }

    #[test]
    fn split_points_yields_one_metric_per_point() {
        let point = |v: f64| NumberPoint {
            attributes: Attributes::from([("k".to_owned(), AttrValue::Str(v.to_string()))]),
            value: v,
            is_int: false,
        };
        let metric = CapturedMetric {
            name: "m".to_owned(),
            description: String::new(),
            unit: String::new(),
            resource: Attributes::new(),
            scope_name: String::new(),
            data: MetricData::Sum {
                monotonic: true,
                cumulative: true,
                points: vec![point(1.0), point(2.0)],
            },
        };
        let split = metric.split_points();
        assert_eq!(split.len(), 2);
        assert_eq!(
            split[1].data,
            MetricData::Sum {
                monotonic: true,
                cumulative: true,
                points: vec![point(2.0)]
            }
        );
    }
}
