//! Helpers: a console served on an ephemeral loopback port (with `ConnectInfo`, as the shop
//! serves it), and hand-built OTLP export requests.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use console::{Console, Limits};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use tokio::net::TcpListener;

/// A console served on `address` (port 0 resolved); stops when dropped.
pub struct Served {
    pub console: Console,
    pub address: SocketAddr,
    pub client: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Served {
    /// A client of a console already served at `address`.
    pub fn for_address(console: Console, address: SocketAddr) -> Self {
        Self {
            console,
            address,
            client: reqwest::Client::new(),
            _stop: tokio::sync::oneshot::channel().0,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub async fn json(&self, path: &str) -> (u16, serde_json::Value) {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }
}

pub async fn serve_on(console: Console, bind: &str) -> Served {
    let listener = TcpListener::bind(bind).await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = console.router();
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = stopped.await;
        })
        .await;
    });
    Served {
        console,
        address,
        client: reqwest::Client::new(),
        _stop: stop,
    }
}

pub async fn serve(limits: Limits) -> Served {
    serve_on(Console::new(limits), "127.0.0.1:0").await
}

pub fn string(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..KeyValue::default()
    }
}

pub fn int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
        ..KeyValue::default()
    }
}

fn resource(service: &str) -> Option<Resource> {
    Some(Resource {
        attributes: vec![string("service.name", service)],
        ..Resource::default()
    })
}

/// A trace id made of `n` (32 hex digits).
pub fn trace_id(n: u8) -> Vec<u8> {
    let mut id = vec![0xab; 16];
    id[15] = n;
    id
}

pub fn trace_hex(n: u8) -> String {
    trace_id(n).iter().map(|b| format!("{b:02x}")).collect()
}

/// A SERVER span `method route` of trace `n` answering `status`, taking `ms` milliseconds,
/// starting at `start` ns.
pub fn server_span(n: u8, method: &str, route: &str, status: i64, ms: u64, start: u64) -> Span {
    let mut attributes = vec![
        string("http.request.method", method),
        string("http.route", route),
        int("http.response.status_code", status),
        KeyValue {
            key: "http.request.header.x-request-id".to_owned(),
            value: Some(AnyValue {
                value: Some(any_value::Value::ArrayValue(
                    opentelemetry_proto::tonic::common::v1::ArrayValue {
                        values: vec![AnyValue {
                            value: Some(any_value::Value::StringValue(format!("req-{n}"))),
                        }],
                    },
                )),
            }),
            ..KeyValue::default()
        },
    ];
    if status >= 500 {
        attributes.push(string("error.type", &status.to_string()));
    }
    Span {
        trace_id: trace_id(n),
        span_id: vec![n, 1, 0, 0, 0, 0, 0, 1],
        name: format!("{method} {route}"),
        kind: 2,
        start_time_unix_nano: start,
        end_time_unix_nano: start + ms * 1_000_000,
        attributes,
        status: Some(Status {
            code: if status >= 500 { 2 } else { 0 },
            message: String::new(),
        }),
        ..Span::default()
    }
}

pub fn traces(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(service),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "test".to_owned(),
                    ..InstrumentationScope::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// A log record of trace `n` (or none) at `severity` with `body`.
pub fn log(n: Option<u8>, severity: i32, text: &str, body: &str) -> LogRecord {
    LogRecord {
        time_unix_nano: 1_700_000_000_000_000_000 + u64::from(n.unwrap_or(0)),
        severity_number: severity,
        severity_text: text.to_owned(),
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(body.to_owned())),
        }),
        trace_id: n.map(trace_id).unwrap_or_default(),
        span_id: n.map(|n| vec![n, 1, 0, 0, 0, 0, 0, 1]).unwrap_or_default(),
        ..LogRecord::default()
    }
}

pub fn logs(service: &str, scope: &str, records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource(service),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: scope.to_owned(),
                    ..InstrumentationScope::default()
                }),
                log_records: records,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// Polls `check` every 50 ms until it holds or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
