//! The testkit OTLP receiver captures what real OTLP clients send over gRPC and HTTP.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, any_value,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use prost::Message;
use telemetry::testkit::{
    AttrValue, Attributes, ExportCounts, HistogramPoint, MetricData, NumberPoint, OtlpReceiver,
    SignalCounts, SpanKind, StatusCode,
};

const TRACE_ID: [u8; 16] = [
    0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36,
];
const SPAN_ID: [u8; 8] = [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7];
const PARENT_ID: [u8; 8] = [0x53, 0x99, 0x5c, 0x3f, 0x42, 0xcd, 0x8a, 0xd8];
const WAIT: Duration = Duration::from_secs(5);

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn str_kv(key: &str, value: &str) -> KeyValue {
    kv(key, any_value::Value::StringValue(value.to_owned()))
}

fn resource() -> Option<Resource> {
    Some(Resource {
        attributes: vec![str_kv("service.name", "testkit-test")],
        ..Default::default()
    })
}

fn scope(name: &str) -> Option<InstrumentationScope> {
    Some(InstrumentationScope {
        name: name.to_owned(),
        ..Default::default()
    })
}

fn attrs<const N: usize>(pairs: [(&str, AttrValue); N]) -> Attributes {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

fn trace_request() -> ExportTraceServiceRequest {
    let span = Span {
        trace_id: TRACE_ID.to_vec(),
        span_id: SPAN_ID.to_vec(),
        parent_span_id: PARENT_ID.to_vec(),
        name: "GET /items/{id}".to_owned(),
        kind: span::SpanKind::Server as i32,
        start_time_unix_nano: 1_000,
        end_time_unix_nano: 2_500,
        flags: 0x101,
        attributes: vec![
            str_kv("http.request.method", "GET"),
            kv("http.response.status_code", any_value::Value::IntValue(500)),
            kv("error", any_value::Value::BoolValue(true)),
            kv(
                "tags",
                any_value::Value::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(any_value::Value::StringValue("a".to_owned())),
                    }],
                }),
            ),
            KeyValue {
                key: "no.value".to_owned(),
                value: None,
                ..Default::default()
            },
        ],
        events: vec![span::Event {
            name: "exception".to_owned(),
            attributes: vec![str_kv("exception.type", "Boom")],
            ..Default::default()
        }],
        status: Some(Status {
            code: opentelemetry_proto::tonic::trace::v1::status::StatusCode::Error as i32,
            message: "boom".to_owned(),
        }),
        ..Default::default()
    };
    let root = Span {
        trace_id: TRACE_ID.to_vec(),
        span_id: PARENT_ID.to_vec(),
        name: "root".to_owned(),
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(),
            scope_spans: vec![ScopeSpans {
                scope: scope("tests"),
                spans: vec![span, root],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn logs_request() -> ExportLogsServiceRequest {
    let with_context = LogRecord {
        trace_id: TRACE_ID.to_vec(),
        span_id: SPAN_ID.to_vec(),
        severity_number: 17,
        severity_text: "ERROR".to_owned(),
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue("request failed".to_owned())),
        }),
        event_name: "http.request.failed".to_owned(),
        attributes: vec![str_kv("user.email", "alice@example.com")],
        time_unix_nano: 42,
        observed_time_unix_nano: 43,
        ..Default::default()
    };
    let without_context = LogRecord {
        severity_number: 9,
        severity_text: "INFO".to_owned(),
        ..Default::default()
    };
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource(),
            scope_logs: vec![ScopeLogs {
                scope: scope("logs-scope"),
                log_records: vec![with_context, without_context],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// A cumulative counter with two streams and a cumulative histogram with one.
fn metrics_request(counter_get: i64, counter_post: i64, histogram_count: u64) -> Vec<u8> {
    let number = |route_method: &str, value: i64| NumberDataPoint {
        attributes: vec![str_kv("http.request.method", route_method)],
        value: Some(number_data_point::Value::AsInt(value)),
        ..Default::default()
    };
    let counter = Metric {
        name: "requests".to_owned(),
        description: "Requests served".to_owned(),
        unit: "{request}".to_owned(),
        data: Some(metric::Data::Sum(Sum {
            data_points: vec![number("GET", counter_get), number("POST", counter_post)],
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: true,
        })),
        ..Default::default()
    };
    let histogram = Metric {
        name: "duration".to_owned(),
        unit: "s".to_owned(),
        data: Some(metric::Data::Histogram(Histogram {
            data_points: vec![HistogramDataPoint {
                attributes: vec![str_kv("http.route", "/items")],
                count: histogram_count,
                sum: Some(0.5),
                bucket_counts: vec![histogram_count, 0],
                explicit_bounds: vec![1.0],
                min: Some(0.1),
                max: Some(0.4),
                ..Default::default()
            }],
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
        })),
        ..Default::default()
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource(),
            scope_metrics: vec![ScopeMetrics {
                scope: scope("meter"),
                metrics: vec![counter, histogram],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

async fn post(
    client: &reqwest::Client,
    url: String,
    content_type: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    client
        .post(url)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_spans_and_logs_are_captured_and_converted() {
    let receiver = OtlpReceiver::start().await.unwrap();
    assert!(receiver.grpc_endpoint().starts_with("http://127.0.0.1:"));

    let mut traces = TraceServiceClient::connect(receiver.grpc_endpoint())
        .await
        .unwrap();
    traces.export(trace_request()).await.unwrap();
    let mut logs = LogsServiceClient::connect(receiver.grpc_endpoint())
        .await
        .unwrap();
    logs.export(logs_request()).await.unwrap();

    // The export call returned, so the request is already captured.
    let spans = receiver.spans();
    assert_eq!(spans.len(), 2, "{}", receiver.dump_all());
    let span = &spans[0];
    assert_eq!(span.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(span.span_id, "00f067aa0ba902b7");
    assert_eq!(span.parent_span_id, "53995c3f42cd8ad8");
    assert_eq!(span.name, "GET /items/{id}");
    assert_eq!(span.kind, SpanKind::Server);
    assert_eq!(span.status_code, StatusCode::Error);
    assert_eq!(span.status_message, "boom");
    assert_eq!((span.start_unix_nanos, span.end_unix_nanos), (1_000, 2_500));
    assert_eq!(span.flags, 0x101);
    assert_eq!(
        span.attributes,
        attrs([
            ("http.request.method", AttrValue::Str("GET".to_owned())),
            ("http.response.status_code", AttrValue::Int(500)),
            ("error", AttrValue::Bool(true)),
            (
                "tags",
                AttrValue::Array(vec![AttrValue::Str("a".to_owned())])
            ),
        ])
    );
    assert_eq!(span.str_attr("http.request.method"), Some("GET"));
    assert_eq!(
        span.attr("http.response.status_code")
            .and_then(AttrValue::as_i64),
        Some(500)
    );
    assert_eq!(span.attr("error").and_then(AttrValue::as_bool), Some(true));
    assert_eq!(span.events.len(), 1);
    assert_eq!(span.events[0].name, "exception");
    assert_eq!(
        span.events[0].attributes.get("exception.type"),
        Some(&AttrValue::Str("Boom".to_owned()))
    );
    assert_eq!(
        span.resource
            .get("service.name")
            .and_then(AttrValue::as_str),
        Some("testkit-test")
    );
    assert_eq!(span.scope_name, "tests");

    let root = &spans[1];
    assert_eq!(root.parent_span_id, "");
    assert_eq!(root.kind, SpanKind::Unspecified);
    assert_eq!(root.status_code, StatusCode::Unset);

    let captured_logs = receiver.logs();
    assert_eq!(captured_logs.len(), 2);
    let log = &captured_logs[0];
    assert_eq!(log.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(log.span_id, "00f067aa0ba902b7");
    assert_eq!(log.severity_number, 17);
    assert_eq!(log.severity_text, "ERROR");
    assert_eq!(log.body_str(), Some("request failed"));
    assert_eq!(log.event_name, "http.request.failed");
    assert_eq!(log.str_attr("user.email"), Some("alice@example.com"));
    assert_eq!(log.scope_name, "logs-scope");
    assert_eq!(
        (log.time_unix_nanos, log.observed_time_unix_nanos),
        (42, 43)
    );
    let bare = &captured_logs[1];
    assert_eq!((bare.trace_id.as_str(), bare.span_id.as_str()), ("", ""));
    assert_eq!(bare.body, None);

    assert_eq!(
        receiver.export_requests(),
        ExportCounts {
            grpc: SignalCounts {
                traces: 1,
                metrics: 0,
                logs: 1
            },
            http: SignalCounts::default(),
        }
    );
    let dump = receiver.dump_all();
    assert!(dump.contains("alice@example.com"));
    assert!(
        dump.contains("testkit-test"),
        "resource attributes are dumped"
    );

    receiver.clear();
    assert!(receiver.spans().is_empty() && receiver.logs().is_empty());
    assert_eq!(receiver.export_requests(), ExportCounts::default());
    assert_eq!(receiver.dump_all(), "");
}

#[tokio::test(flavor = "multi_thread")]
async fn http_metrics_are_captured_and_latest_points_win() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let client = reqwest::Client::new();
    let url = format!("{}/v1/metrics", receiver.http_endpoint());

    let first = post(
        &client,
        url.clone(),
        "application/x-protobuf",
        metrics_request(1, 5, 2),
    )
    .await;
    assert_eq!(first.status(), 200);
    assert_eq!(
        first.headers().get("content-type").unwrap(),
        "application/x-protobuf"
    );
    assert!(first.bytes().await.unwrap().is_empty());
    let second = post(
        &client,
        url,
        "application/x-protobuf",
        metrics_request(3, 5, 4),
    )
    .await;
    assert_eq!(second.status(), 200);

    let metrics = receiver.metrics();
    assert_eq!(
        metrics.len(),
        4,
        "two metrics per export, every export kept"
    );
    let counter = &metrics[0];
    assert_eq!(counter.name, "requests");
    assert_eq!(counter.description, "Requests served");
    assert_eq!(counter.unit, "{request}");
    assert_eq!(counter.scope_name, "meter");
    assert_eq!(
        counter
            .resource
            .get("service.name")
            .and_then(AttrValue::as_str),
        Some("testkit-test")
    );
    let method = |m: &str| attrs([("http.request.method", AttrValue::Str(m.to_owned()))]);
    assert_eq!(
        counter.data,
        MetricData::Sum {
            monotonic: true,
            cumulative: true,
            points: vec![
                NumberPoint {
                    attributes: method("GET"),
                    value: 1.0,
                    is_int: true
                },
                NumberPoint {
                    attributes: method("POST"),
                    value: 5.0,
                    is_int: true
                },
            ],
        }
    );
    assert_eq!(
        counter.point_attribute_sets(),
        vec![method("GET"), method("POST")]
    );
    assert_eq!(
        metrics[1].data,
        MetricData::Histogram {
            cumulative: true,
            points: vec![HistogramPoint {
                attributes: attrs([("http.route", AttrValue::Str("/items".to_owned()))]),
                count: 2,
                sum: Some(0.5),
                bucket_counts: vec![2, 0],
                explicit_bounds: vec![1.0],
                min: Some(0.1),
                max: Some(0.4),
            }],
        }
    );

    // Three streams (requests{GET}, requests{POST}, duration{/items}), latest values only.
    let latest = receiver.latest_metric_points();
    let summary: Vec<(String, Attributes, f64)> = latest
        .iter()
        .map(|m| {
            let value = match &m.data {
                MetricData::Sum { points, .. } => {
                    assert_eq!(points.len(), 1);
                    points[0].value
                }
                #[allow(clippy::cast_precision_loss)]
                MetricData::Histogram { points, .. } => {
                    assert_eq!(points.len(), 1);
                    points[0].count as f64
                }
                other => panic!("unexpected data {other:?}"),
            };
            (m.name.clone(), m.point_attribute_sets().remove(0), value)
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("requests".to_owned(), method("GET"), 3.0),
            ("requests".to_owned(), method("POST"), 5.0),
            (
                "duration".to_owned(),
                attrs([("http.route", AttrValue::Str("/items".to_owned()))]),
                4.0
            ),
        ]
    );

    assert_eq!(receiver.export_requests().http.metrics, 2);
    assert_eq!(receiver.export_requests().total(), 2);
    assert!(
        receiver
            .wait_for_metrics(WAIT, |m| m.iter().filter(|m| m.name == "requests").count()
                == 2)
            .await
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn http_traces_logs_and_unsupported_encodings() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let client = reqwest::Client::new();
    let base = receiver.http_endpoint();

    let traces = post(
        &client,
        format!("{base}/v1/traces"),
        "application/x-protobuf",
        trace_request().encode_to_vec(),
    )
    .await;
    assert_eq!(traces.status(), 200);
    let logs = post(
        &client,
        format!("{base}/v1/logs"),
        "application/x-protobuf; charset=binary",
        logs_request().encode_to_vec(),
    )
    .await;
    assert_eq!(logs.status(), 200);
    assert!(
        receiver
            .wait_for_spans(WAIT, |s| s.iter().any(|s| s.name == "root"))
            .await
    );
    assert!(
        receiver
            .wait_for_logs(WAIT, |l| l.iter().any(|l| l.severity_text == "INFO"))
            .await
    );

    let json = post(
        &client,
        format!("{base}/v1/traces"),
        "application/json",
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(json.status(), 415);
    let brotli = client
        .post(format!("{base}/v1/logs"))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "br")
        .body(logs_request().encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(brotli.status(), 415);
    let not_gzip = client
        .post(format!("{base}/v1/logs"))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(logs_request().encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(not_gzip.status(), 400, "a body that is not gzip");
    let garbage = post(
        &client,
        format!("{base}/v1/metrics"),
        "application/x-protobuf",
        vec![0xff; 7],
    )
    .await;
    assert_eq!(garbage.status(), 400);

    // Rejected requests are neither counted nor captured.
    assert_eq!(receiver.export_requests().http.traces, 1);
    assert_eq!(receiver.export_requests().http.logs, 1);
    assert_eq!(receiver.export_requests().http.metrics, 0);
    assert_eq!(receiver.spans().len(), 2);
    assert!(
        !receiver
            .wait_for_spans(Duration::from_millis(50), |s| s.len() > 2)
            .await
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn listeners_stop_when_the_last_handle_is_dropped() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let clone = receiver.clone();
    let grpc = receiver.grpc_endpoint().replace("http://", "");
    let http = receiver.http_endpoint().replace("http://", "");
    drop(receiver);
    assert!(tokio::net::TcpStream::connect(&grpc).await.is_ok());
    assert!(format!("{clone:?}").contains("OtlpReceiver"));
    drop(clone);

    for addr in [grpc, http] {
        let mut closed = false;
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(&addr).await.is_err() {
                closed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(closed, "{addr} still accepts connections");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn gzip_compressed_http_requests_are_decoded() {
    use std::io::Write as _;
    let receiver = OtlpReceiver::start().await.unwrap();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(&logs_request().encode_to_vec()).unwrap();
    let response = reqwest::Client::new()
        .post(format!("{}/v1/logs", receiver.http_endpoint()))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(encoder.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        receiver
            .wait_for_logs(WAIT, |l| l.iter().any(|l| l.severity_text == "INFO"))
            .await,
        "{}",
        receiver.dump_all()
    );
}
