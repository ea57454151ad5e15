//! Every record kind this module encodes, decoded with the official `opentelemetry-proto`
//! types (prost): a SERVER span, an SDK child span, a log record and the resource, each inside
//! the export request the queue sends.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{
    Event, Link, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{KeyValue, Value};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue as ProtoKeyValue, any_value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use prost::Message;

use super::log_record::{LogRecordView, encode_log_record};
use super::protobuf::Writer;
use super::request::{append_record, export_request};
use super::resource::resource_body;
use super::span::encode_span;
use crate::config::{IncomingTrace, PiiMode, SamplerConfig};
use crate::error::{ErrorKind, ErrorObservation};
use crate::layer::facts::{Failure, Outcome, RequestFacts};
use crate::layer::server_span::ServerSpan;
use crate::log_format::FieldValue;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn value(attributes: &[ProtoKeyValue], key: &str) -> Option<any_value::Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.clone())
        .and_then(|AnyValue { value }| value)
}

fn string(s: &str) -> Option<any_value::Value> {
    Some(any_value::Value::StringValue(s.to_owned()))
}

fn resource() -> Vec<u8> {
    resource_body(
        &Resource::builder_empty()
            .with_attributes([
                KeyValue::new("service.name", "shop"),
                KeyValue::new("service.instance.id", "x".repeat(200)),
            ])
            .build(),
    )
}

fn request(records: &[Vec<u8>]) -> Vec<u8> {
    let mut batch = Vec::new();
    for record in records {
        append_record(&mut batch, record);
    }
    export_request(&resource(), "9.9.9", &[("telemetry", batch)])
}

fn encoded(encode: impl FnOnce(&mut Writer)) -> Vec<u8> {
    let mut w = Writer::with_capacity(0);
    encode(&mut w);
    w.buf
}

fn caller() -> SpanContext {
    SpanContext::new(
        TraceId::from(0x0af7651916cd43dd8448eb211c80319cu128),
        SpanId::from(0x00f067aa0ba902b7u64),
        TraceFlags::SAMPLED,
        true,
        TraceState::from_key_value([("congo", "t61rcWkgMzE")]).unwrap(),
    )
}

fn server_span() -> (ServerSpan, RequestFacts, SystemTime) {
    let pii = crate::pii::PiiPolicy::new(PiiMode::Off, None);
    let request = http::Request::get(format!("/{}", "p".repeat(300)))
        .header("host", "shop.example")
        .header("x-request-id", "req-1")
        .body(())
        .unwrap();
    let facts = RequestFacts::gather(
        &request,
        &pii,
        &crate::layer::client_address::TrustedProxies::Off,
        &crate::metrics::RouteInstruments::default(),
        std::time::SystemTime::now(),
    );
    let start = UNIX_EPOCH + Duration::from_nanos(1_000);
    let mut span = ServerSpan::for_request(
        SamplerConfig::AlwaysOn,
        IncomingTrace::Continue,
        Some(caller()),
        start,
        true,
    );
    let end = UNIX_EPOCH + Duration::from_nanos(5_000);
    span.end_with(
        &Outcome {
            status: http::StatusCode::INTERNAL_SERVER_ERROR,
            response_size: None,
            elapsed: Duration::from_nanos(4_000),
            end,
            failure: Some(Failure::new(ErrorObservation::new(
                ErrorKind::Internal,
                "db.unexpected",
                "no such table",
            ))),
        },
        None,
    );
    (span, facts, end)
}

fn child_span(parent: &SpanContext) -> SpanData {
    let mut events = SpanEvents::default();
    events.events.push(Event::new(
        "retry",
        UNIX_EPOCH + Duration::from_nanos(2_500),
        vec![KeyValue::new("attempt", 2i64)],
        0,
    ));
    let mut links = SpanLinks::default();
    links.links.push(Link::with_context(SpanContext::new(
        TraceId::from(7u128),
        SpanId::from(9u64),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    )));
    SpanData {
        span_context: SpanContext::new(
            parent.trace_id(),
            SpanId::from(0xb7ad6b7169203331u64),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: parent.span_id(),
        parent_span_is_remote: false,
        span_kind: SpanKind::Client,
        name: "SELECT products".into(),
        start_time: UNIX_EPOCH + Duration::from_nanos(2_000),
        end_time: UNIX_EPOCH + Duration::from_nanos(3_000),
        attributes: vec![
            KeyValue::new("db.system.name", "sqlite"),
            KeyValue::new("ratio", 0.25),
            KeyValue::new("flag", true),
            KeyValue::new("count", -42i64),
            KeyValue::new("list", Value::Array(vec![1i64, 2, 3].into())),
        ],
        dropped_attributes_count: 1,
        events,
        links,
        status: Status::error("pool_timed_out"),
        instrumentation_scope: opentelemetry::InstrumentationScope::builder("telemetry").build(),
    }
}

#[test]
fn server_and_child_spans_and_the_resource_decode_field_for_field() {
    let (server, facts, end) = server_span();
    let child = child_span(server.context());
    let body = request(&[
        encoded(|w| server.encode(w, end, &facts)),
        encoded(|w| encode_span(w, &(&child).into())),
    ]);
    let decoded = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();

    let rs = &decoded.resource_spans[0];
    let resource = rs.resource.as_ref().unwrap();
    assert_eq!(value(&resource.attributes, "service.name"), string("shop"));
    assert_eq!(
        value(&resource.attributes, "service.instance.id"),
        string(&"x".repeat(200))
    );
    let scope = rs.scope_spans[0].scope.as_ref().unwrap();
    assert_eq!(
        (scope.name.as_str(), scope.version.as_str()),
        ("telemetry", "9.9.9")
    );
    let spans = &rs.scope_spans[0].spans;
    assert_eq!(spans.len(), 2);

    let s = &spans[0];
    assert_eq!(hex(&s.trace_id), "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(hex(&s.span_id), hex(&server.context().span_id().to_bytes()));
    assert_eq!(hex(&s.parent_span_id), "00f067aa0ba902b7");
    assert_eq!(s.trace_state, "congo=t61rcWkgMzE");
    assert_eq!(s.flags, 0x301, "sampled, parent remote and known");
    assert_eq!(s.name, "GET");
    assert_eq!(s.kind, 2);
    assert_eq!(
        (s.start_time_unix_nano, s.end_time_unix_nano),
        (1_000, 5_000)
    );
    assert_eq!(
        value(&s.attributes, "url.path"),
        string(&format!("/{}", "p".repeat(300)))
    );
    assert_eq!(
        value(&s.attributes, "http.response.status_code"),
        Some(any_value::Value::IntValue(500))
    );
    assert_eq!(value(&s.attributes, "error.type"), string("internal"));
    assert_eq!(s.events.len(), 1);
    assert_eq!(s.events[0].name, "exception");
    assert_eq!(
        value(&s.events[0].attributes, "exception.type"),
        string("db.unexpected")
    );
    let status = s.status.as_ref().unwrap();
    assert_eq!((status.code, status.message.as_str()), (2, "db.unexpected"));

    let c = &spans[1];
    assert_eq!(c.trace_id, s.trace_id);
    assert_eq!(c.parent_span_id, s.span_id);
    assert_eq!(c.flags, 0x101, "sampled, parent local and known");
    assert_eq!((c.name.as_str(), c.kind), ("SELECT products", 3));
    assert_eq!(
        (c.start_time_unix_nano, c.end_time_unix_nano),
        (2_000, 3_000)
    );
    assert_eq!(value(&c.attributes, "db.system.name"), string("sqlite"));
    assert_eq!(
        value(&c.attributes, "ratio"),
        Some(any_value::Value::DoubleValue(0.25))
    );
    assert_eq!(
        value(&c.attributes, "flag"),
        Some(any_value::Value::BoolValue(true))
    );
    assert_eq!(
        value(&c.attributes, "count"),
        Some(any_value::Value::IntValue(-42))
    );
    match value(&c.attributes, "list") {
        Some(any_value::Value::ArrayValue(array)) => assert_eq!(array.values.len(), 3),
        other => panic!("{other:?}"),
    }
    assert_eq!(c.dropped_attributes_count, 1);
    assert_eq!(c.events[0].name, "retry");
    assert_eq!(c.events[0].time_unix_nano, 2_500);
    assert_eq!(c.links[0].flags, 0x301);
    assert_eq!(hex(&c.links[0].span_id), "0000000000000009");
    let status = c.status.as_ref().unwrap();
    assert_eq!(
        (status.code, status.message.as_str()),
        (2, "pool_timed_out")
    );
}

#[test]
fn log_records_decode_field_for_field() {
    let trace_id = [0xab; 16];
    let span_id = [0xcd; 8];
    let shared: std::sync::Arc<str> = "/v1/products/7".into();
    let body_text = "b".repeat(300);
    let record = LogRecordView {
        time: UNIX_EPOCH + Duration::from_nanos(42),
        severity_number: 13,
        severity_text: "WARN",
        body: &body_text,
        target: "access",
        event_name: Some("app.http.access"),
        trace: Some((&trace_id, &span_id, 1)),
        leading: &[("app.request.id", FieldValue::Str("req-1"))],
        fields: &[
            ("url.path", FieldValue::Shared(&shared)),
            ("http.request.method", FieldValue::Static("GET")),
            ("http.response.status_code", FieldValue::U64(404)),
            ("big", FieldValue::U64(u64::MAX)),
            ("delta", FieldValue::I64(-3)),
            ("app.request.duration_ms", FieldValue::F64(1.5)),
            ("cached", FieldValue::Bool(false)),
        ],
    };
    let mut batch = Vec::new();
    append_record(&mut batch, &encoded(|w| encode_log_record(w, &record)));
    let body = export_request(&resource(), "9.9.9", &[("access", batch)]);
    let decoded = ExportLogsServiceRequest::decode(body.as_slice()).unwrap();
    let rl = &decoded.resource_logs[0];
    assert_eq!(
        value(&rl.resource.as_ref().unwrap().attributes, "service.name"),
        string("shop")
    );
    assert_eq!(rl.scope_logs[0].scope.as_ref().unwrap().name, "access");
    let r = &rl.scope_logs[0].log_records[0];
    assert_eq!((r.time_unix_nano, r.observed_time_unix_nano), (42, 42));
    assert_eq!((r.severity_number, r.severity_text.as_str()), (13, "WARN"));
    assert_eq!(
        r.body.as_ref().and_then(|b| b.value.clone()),
        string(&body_text)
    );
    assert_eq!(r.event_name, "app.http.access");
    assert_eq!(
        (r.trace_id.as_slice(), r.span_id.as_slice()),
        (&trace_id[..], &span_id[..])
    );
    assert_eq!(r.flags, 1);
    assert_eq!(
        r.attributes[0].key, "app.request.id",
        "leading attributes first"
    );
    assert_eq!(value(&r.attributes, "url.path"), string("/v1/products/7"));
    assert_eq!(value(&r.attributes, "http.request.method"), string("GET"));
    assert_eq!(
        value(&r.attributes, "http.response.status_code"),
        Some(any_value::Value::IntValue(404))
    );
    assert_eq!(
        value(&r.attributes, "big"),
        Some(any_value::Value::IntValue(i64::MAX))
    );
    assert_eq!(
        value(&r.attributes, "delta"),
        Some(any_value::Value::IntValue(-3))
    );
    assert_eq!(
        value(&r.attributes, "app.request.duration_ms"),
        Some(any_value::Value::DoubleValue(1.5))
    );
    assert_eq!(
        value(&r.attributes, "cached"),
        Some(any_value::Value::BoolValue(false))
    );
}

#[test]
fn a_large_batch_under_several_scopes_decodes_whole() {
    // Batches of ~40 KiB and ~1 MiB: lengths of two and three varint bytes at every level.
    for (count, body_len) in [(100, 300), (2_000, 500)] {
        let text = "m".repeat(body_len);
        let mut scopes: Vec<(&'static str, Vec<u8>)> =
            vec![("access", Vec::new()), ("shop", Vec::new())];
        for n in 0..count {
            let (target, batch) = &mut scopes[(n % 2) as usize];
            let fields = [("n", FieldValue::U64(n))];
            let view = LogRecordView {
                time: UNIX_EPOCH + Duration::from_nanos(n + 1),
                severity_number: 9,
                severity_text: "INFO",
                body: &text,
                target,
                event_name: None,
                trace: None,
                leading: &[],
                fields: &fields,
            };
            append_record(batch, &encoded(|w| encode_log_record(w, &view)));
        }
        let body = export_request(&resource(), "9.9.9", &scopes);
        let decoded = ExportLogsServiceRequest::decode(body.as_slice()).unwrap();
        assert_eq!(decoded.resource_logs.len(), 1);
        let rl = &decoded.resource_logs[0];
        assert_eq!(rl.scope_logs.len(), 2);
        for (i, scope_logs) in rl.scope_logs.iter().enumerate() {
            let scope = scope_logs.scope.as_ref().unwrap();
            assert_eq!(
                (scope.name.as_str(), scope.version.as_str()),
                (scopes[i].0, "9.9.9")
            );
            assert_eq!(scope_logs.log_records.len() as u64, count / 2);
            for (k, record) in scope_logs.log_records.iter().enumerate() {
                let n = 2 * k as u64 + i as u64;
                assert_eq!(record.time_unix_nano, n + 1);
                assert_eq!(
                    value(&record.attributes, "n"),
                    Some(any_value::Value::IntValue(n as i64))
                );
                assert_eq!(
                    record.body.as_ref().and_then(|b| b.value.clone()),
                    string(&text)
                );
            }
        }
    }
}
