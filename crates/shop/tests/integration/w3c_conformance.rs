//! The W3C Trace Context test service (`APP_CONFORMANCE=w3c`, `POST /_test/w3c`), tested
//! from the specification's rules (Level 1, and Level 2 where it differs): a recorder server
//! captures what the shop sends when asked to call it, for each kind of incoming
//! `traceparent` / `tracestate`.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{TestApp, spawn_app};
use axum::Router;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::routing::post;
use telemetry::testkit::SpanKind;

const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const PARENT: &str = "b7ad6b7169203331";

/// What the recorder received, in order: (path, headers, body).
type Received = Arc<Mutex<Vec<(String, HeaderMap, serde_json::Value)>>>;

struct Recorder {
    base: String,
    received: Received,
}

impl Recorder {
    async fn start() -> Self {
        let received: Received = Arc::default();
        let app = Router::new()
            .route("/{*path}", post(record))
            .with_state(Arc::clone(&received));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            base: format!("http://{address}"),
            received,
        }
    }

    fn take(&self) -> Vec<(String, HeaderMap, serde_json::Value)> {
        std::mem::take(&mut *self.received.lock().unwrap())
    }
}

async fn record(State(received): State<Received>, request: Request) -> &'static str {
    let path = request.uri().path().to_owned();
    let headers = request.headers().clone();
    let body = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .unwrap();
    let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    received.lock().unwrap().push((path, headers, body));
    "ok"
}

async fn setup() -> (TestApp, Recorder) {
    let app = spawn_app(&[("APP_CONFORMANCE", "w3c")]).await;
    (app, Recorder::start().await)
}

/// Asks the shop to call the recorder once, with the given incoming headers; returns the
/// headers the recorder received.
async fn call_once(app: &TestApp, recorder: &Recorder, headers: &[(&str, &str)]) -> HeaderMap {
    let mut request = app
        .client
        .post(app.url("/_test/w3c"))
        .json(&serde_json::json!([
            {"url": format!("{}/callee", recorder.base), "arguments": []}
        ]));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    let mut received = recorder.take();
    assert_eq!(received.len(), 1);
    received.remove(0).1
}

/// The outgoing `traceparent`, split: (version, trace id, parent id, flags).
fn traceparent(headers: &HeaderMap) -> (String, String, String, String) {
    let value = headers["traceparent"].to_str().unwrap();
    assert_eq!(value.len(), 55, "{value}");
    let parts: Vec<&str> = value.split('-').collect();
    assert_eq!(parts.len(), 4, "{value}");
    for part in &parts {
        assert!(
            part.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "lowercase hex: {value}"
        );
    }
    assert_ne!(parts[1], "0".repeat(32));
    assert_ne!(parts[2], "0".repeat(16));
    (
        parts[0].to_owned(),
        parts[1].to_owned(),
        parts[2].to_owned(),
        parts[3].to_owned(),
    )
}

fn tracestate(headers: &HeaderMap) -> Option<String> {
    let values: Vec<&str> = headers
        .get_all("tracestate")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(
        values.len() <= 1,
        "one tracestate field at most: {values:?}"
    );
    values.first().map(|v| (*v).to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_traceparent_is_continued_with_the_client_span_as_parent() {
    let (app, recorder) = setup().await;
    let incoming = format!("00-{TRACE}-{PARENT}-01");
    let headers = call_once(&app, &recorder, &[("traceparent", &incoming)]).await;
    let (version, trace, parent, flags) = traceparent(&headers);
    assert_eq!(version, "00");
    assert_eq!(trace, TRACE, "same trace");
    assert_ne!(parent, PARENT, "a new parent id");
    assert_eq!(flags, "01", "sampled propagated");

    app.guard.shutdown().await;
    let spans = app.receiver.spans();
    let server = spans
        .iter()
        .find(|s| s.kind == SpanKind::Server && s.name == "POST /_test/w3c")
        .unwrap();
    assert_eq!(server.parent_span_id, PARENT);
    let client = spans
        .iter()
        .find(|s| s.kind == SpanKind::Client && s.name == "POST")
        .expect("the call has a CLIENT span");
    assert_eq!(
        client.span_id, parent,
        "the callee's parent is the CLIENT span"
    );
    assert_eq!(client.parent_span_id, server.span_id);
    assert_eq!(client.trace_id, TRACE);
    assert_eq!(client.name, "POST");
    assert_eq!(client.str_attr("http.request.method"), Some("POST"));
    assert_eq!(client.str_attr("server.address"), Some("127.0.0.1"));
    assert_eq!(
        client
            .attr("http.response.status_code")
            .and_then(|v| v.as_i64()),
        Some(200)
    );
    let metric = app
        .receiver
        .metrics()
        .into_iter()
        .find(|m| m.name == "http.client.request.duration")
        .expect("http.client.request.duration is recorded");
    assert_eq!(metric.unit, "s");
    for attributes in metric.point_attribute_sets() {
        let mut keys: Vec<&str> = attributes.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "http.request.method",
                "http.response.status_code",
                "server.address",
                "server.port"
            ]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsampled_parent_is_propagated_unsampled() {
    let (app, recorder) = setup().await;
    let incoming = format!("00-{TRACE}-{PARENT}-00");
    let headers = call_once(&app, &recorder, &[("traceparent", &incoming)]).await;
    let (_, trace, parent, flags) = traceparent(&headers);
    assert_eq!(trace, TRACE);
    assert_ne!(parent, PARENT);
    assert_eq!(flags, "00");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_traceparents_start_a_new_trace() {
    let (app, recorder) = setup().await;
    let invalid = [
        format!("ff-{TRACE}-{PARENT}-01"), // version ff is forbidden
        format!("00-{}-{PARENT}-01", &TRACE[..31]), // trace id too short
        format!("00-{TRACE}0-{PARENT}-01"), // trace id too long
        format!("00-{TRACE}-{}-01", &PARENT[..15]), // parent id too short
        format!("00-{TRACE}-{PARENT}0-01"), // parent id too long
        format!("00-{TRACE}-{PARENT}-1"),  // flags too short
        format!("0-{TRACE}-{PARENT}-01"),  // version too short
        format!("00-{}-{PARENT}-01", TRACE.to_uppercase()), // uppercase hex
        format!("00-{TRACE}-{}-01", PARENT.to_uppercase()),
        format!("00-{}-{PARENT}-01", "0".repeat(32)), // all-zero trace id
        format!("00-{TRACE}-{}-01", "0".repeat(16)),  // all-zero parent id
        format!("00-{TRACE}-{PARENT}-01-extra"),      // version 00 has no extra fields
        format!("00-{TRACE}-{PARENT}-01x"),
        format!("00-{}g-{PARENT}-01", &TRACE[..31]), // not hex
        format!("00_{TRACE}-{PARENT}-01"),           // wrong delimiter
        format!("00-{TRACE}-{PARENT}-0g"),
        format!("cc-{TRACE}-{PARENT}-01.extra"), // a future version's extra data needs '-'
        format!("000-{TRACE}-{PARENT}-01"),      // version too long
        format!("0000-{TRACE}-{PARENT}-01"),
        format!(".0-{TRACE}-{PARENT}-01"), // illegal characters in the version
        format!("00-{TRACE}-{PARENT}-001"), // flags too long
        format!("00-{TRACE}-{PARENT}-.0"), // illegal characters in the flags
        format!("00-{TRACE}-{PARENT}-01."), // version 00 with a trailing character
        String::new(),
    ];
    for value in &invalid {
        let headers = call_once(
            &app,
            &recorder,
            &[("traceparent", value), ("tracestate", "foo=1")],
        )
        .await;
        let (version, trace, parent, _) = traceparent(&headers);
        assert_eq!(version, "00", "{value}");
        assert_ne!(trace, TRACE, "{value:?} must start a new trace");
        assert_ne!(parent, PARENT);
        assert_eq!(
            tracestate(&headers),
            None,
            "no tracestate without a valid traceparent ({value:?})"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_traceparent_fields_start_a_new_trace() {
    let (app, recorder) = setup().await;
    let incoming = format!("00-{TRACE}-{PARENT}-01");
    let response = app
        .client
        .post(app.url("/_test/w3c"))
        .header("traceparent", &incoming)
        .header("traceparent", &incoming)
        .json(&serde_json::json!([{"url": format!("{}/callee", recorder.base), "arguments": []}]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (_, headers, _) = recorder.take().remove(0);
    assert_ne!(traceparent(&headers).1, TRACE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_future_version_is_parsed_as_version_00_and_sent_as_00() {
    let (app, recorder) = setup().await;
    for incoming in [
        format!("cc-{TRACE}-{PARENT}-01"),
        format!("cc-{TRACE}-{PARENT}-01-what-the-future-holds"),
        format!("01-{TRACE}-{PARENT}-09-extra"),
    ] {
        let headers = call_once(&app, &recorder, &[("traceparent", &incoming)]).await;
        let (version, trace, parent, flags) = traceparent(&headers);
        assert_eq!(version, "00", "{incoming}");
        assert_eq!(trace, TRACE, "{incoming} is continued");
        assert_ne!(parent, PARENT);
        assert_eq!(flags, "01", "the sampled bit is kept ({incoming})");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_tracestate_is_forwarded_unchanged() {
    let (app, recorder) = setup().await;
    let incoming = format!("00-{TRACE}-{PARENT}-01");
    let thirty_two: Vec<String> = (0..32).map(|i| format!("k{i}=v{i}")).collect();
    let thirty_two = thirty_two.join(",");
    let long_key = format!("{}=1", "k".repeat(256));
    let long_at_key = format!("{}@{}=1", "t".repeat(241), "v".repeat(14));
    let long_system = format!("t@{}=1", "v".repeat(254));
    for state in [
        "foo=1",
        "foo=1,bar=2",
        "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
        "tenant@vendor=x,a-b_c*d/e=f g",
        "0tenant@sys=1",
        thirty_two.as_str(),
        // The key grammar revised in 2026: `@` anywhere after the first character, any number
        // of times, no tenant/system split.
        "foo@=1",
        "foo@@bar=1",
        "foo@bar@baz=1",
        "foo@=1,bar=2",
        "foo@@bar=1,bar=2",
        "foo@bar@baz=1,bar=2",
        "t@abcdefghijklmn=1",
        "9@=1",
        long_key.as_str(),
        long_at_key.as_str(),
        long_system.as_str(),
    ] {
        let headers = call_once(
            &app,
            &recorder,
            &[("traceparent", &incoming), ("tracestate", state)],
        )
        .await;
        assert_eq!(tracestate(&headers).as_deref(), Some(state));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracestate_whitespace_and_empty_members_are_normalised() {
    let (app, recorder) = setup().await;
    let incoming = format!("00-{TRACE}-{PARENT}-01");
    for (state, forwarded) in [
        ("foo=1 , bar=2", "foo=1,bar=2"),
        ("foo=1,,bar=2", "foo=1,bar=2"),
        ("\tfoo=1,\t bar=2 ", "foo=1,bar=2"),
        ("foo=1 \t , \t bar=2, \t baz=3", "foo=1,bar=2,baz=3"),
        ("foo=1\t \t,\t \tbar=2,\t \tbaz=3", "foo=1,bar=2,baz=3"),
        ("foo= 1", "foo= 1"),  // leading spaces belong to the value
        ("foo=1   ", "foo=1"), // trailing ones are optional whitespace
    ] {
        let headers = call_once(
            &app,
            &recorder,
            &[("traceparent", &incoming), ("tracestate", state)],
        )
        .await;
        assert_eq!(
            tracestate(&headers).as_deref(),
            Some(forwarded),
            "{state:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tracestate_with_nothing_valid_is_dropped_and_the_trace_continued() {
    let (app, recorder) = setup().await;
    let incoming = format!("00-{TRACE}-{PARENT}-01");
    let thirty_three: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
    let long_value = format!("a={}", "x".repeat(257));
    let long_key = format!("{}=1", "k".repeat(257));
    let invalid = [
        thirty_three.join(","), // more than 32 members: not a tracestate list
        long_value,
        long_key,
        "foo".to_owned(),     // member without '='
        "Foo=1".to_owned(),   // uppercase key
        "=2".to_owned(),      // empty key
        "foo=".to_owned(),    // empty value
        "foo=a=b".to_owned(), // '=' in value
        "foo =1".to_owned(),  // space inside a member, before '='
        "FOO=1".to_owned(),
        "foo.bar=1".to_owned(),
        "@foo=1".to_owned(), // a key starts with a lowercase letter or a digit
        "_foo=1".to_owned(),
        "t@ABC=1".to_owned(), // uppercase after '@'
        ",, ,".to_owned(),    // only empty members
    ];
    for state in &invalid {
        let headers = call_once(
            &app,
            &recorder,
            &[("traceparent", &incoming), ("tracestate", state)],
        )
        .await;
        assert_eq!(traceparent(&headers).1, TRACE, "{state:?}");
        assert_eq!(tracestate(&headers), None, "{state:?} must be dropped");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_member_is_dropped_alone() {
    let (app, recorder) = setup().await;
    let incoming = format!("00-{TRACE}-{PARENT}-01");
    let long_value = format!("b={}", "x".repeat(257));
    let cases = [
        ("foo=1,bar".to_owned(), "foo=1"),
        ("foo=,bar=3".to_owned(), "bar=3"),
        ("Foo=1,bar=2".to_owned(), "bar=2"),
        ("@foo=1,bar=2".to_owned(), "bar=2"),
        ("foo=1,=2,baz=3".to_owned(), "foo=1,baz=3"),
        ("foo=bar=baz,qux=1".to_owned(), "qux=1"),
        (format!("a=1,{long_value},c=3"), "a=1,c=3"),
        ("foo=bar ,b@@c=1".to_owned(), "foo=bar,b@@c=1"),
    ];
    for (state, forwarded) in &cases {
        let headers = call_once(
            &app,
            &recorder,
            &[("traceparent", &incoming), ("tracestate", state)],
        )
        .await;
        assert_eq!(traceparent(&headers).1, TRACE, "{state:?}");
        assert_eq!(
            tracestate(&headers).as_deref(),
            Some(*forwarded),
            "{state:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_key_keeps_its_first_member_and_never_drops_the_header() {
    let (app, recorder) = setup().await;
    let incoming = format!("00-{TRACE}-{PARENT}-00");
    let cases: [(&[&str], &str); 5] = [
        (&["foo=1,foo=1"], "foo=1"),
        (&["foo=1,foo=2"], "foo=1"),
        (&["foo=1", "foo=1"], "foo=1"),
        (&["foo=1", "foo=2"], "foo=1"),
        (&["foo=1,bar=2,foo=3", "bar=4,baz=5"], "foo=1,bar=2,baz=5"),
    ];
    for (fields, forwarded) in cases {
        let mut headers = vec![("traceparent", incoming.as_str())];
        headers.extend(fields.iter().map(|f| ("tracestate", *f)));
        let received = call_once(&app, &recorder, &headers).await;
        assert_eq!(traceparent(&received).1, TRACE);
        assert_eq!(
            tracestate(&received).as_deref(),
            Some(forwarded),
            "{fields:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tracestate_over_512_characters_is_truncated_by_whole_members() {
    let (app, recorder) = setup().await;
    let incoming = format!("00-{TRACE}-{PARENT}-01");
    // Members longer than 128 characters go first, right-most first, until the list fits.
    let x = format!("a={}", "x".repeat(256));
    let y = format!("b={}", "y".repeat(256));
    let z = format!("z={}", "z".repeat(250));
    let cases = [
        (format!("{x},{y},c=1"), format!("{x},c=1")),
        (format!("k=1,{x},{z},{y},c=1"), format!("k=1,{x},c=1")),
        (format!("{x},k=1,{z}"), format!("{x},k=1")),
    ];
    for (state, forwarded) in &cases {
        let headers = call_once(
            &app,
            &recorder,
            &[("traceparent", &incoming), ("tracestate", state)],
        )
        .await;
        assert_eq!(tracestate(&headers).as_ref(), Some(forwarded), "{state:?}");
    }
    // Only short members: removed from the end. 32 of 24 characters are 799 with commas;
    // 20 (499) fit, 21 (524) do not.
    let members: Vec<String> = (0..32)
        .map(|i| format!("k{i:02}={}", "v".repeat(20)))
        .collect();
    let headers = call_once(
        &app,
        &recorder,
        &[
            ("traceparent", &incoming),
            ("tracestate", &members.join(",")),
        ],
    )
    .await;
    assert_eq!(tracestate(&headers), Some(members[..20].join(",")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_tracestate_fields_are_combined() {
    let (app, recorder) = setup().await;
    let incoming = format!("00-{TRACE}-{PARENT}-01");
    let response = app
        .client
        .post(app.url("/_test/w3c"))
        .header("traceparent", &incoming)
        .header("tracestate", "foo=1")
        .header("tracestate", "bar=2")
        .json(&serde_json::json!([{"url": format!("{}/callee", recorder.base), "arguments": []}]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (_, headers, _) = recorder.take().remove(0);
    assert_eq!(tracestate(&headers).as_deref(), Some("foo=1,bar=2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_made_in_order_each_with_its_own_client_span() {
    let (app, recorder) = setup().await;
    let incoming = format!("00-{TRACE}-{PARENT}-01");
    let calls: Vec<serde_json::Value> = (1..=3)
        .map(|i| {
            serde_json::json!({
                "url": format!("{}/call/{i}", recorder.base),
                "arguments": [{"url": "http://nested.example/", "arguments": [i]}],
            })
        })
        .collect();
    let response = app
        .client
        .post(app.url("/_test/w3c"))
        .header("traceparent", &incoming)
        .header("tracestate", "foo=1")
        .json(&calls)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "[200,200,200]");
    let received = recorder.take();
    let paths: Vec<&str> = received.iter().map(|(p, _, _)| p.as_str()).collect();
    assert_eq!(paths, ["/call/1", "/call/2", "/call/3"]);
    let mut parents = Vec::new();
    for (i, (_, headers, body)) in received.iter().enumerate() {
        let (_, trace, parent, _) = traceparent(headers);
        assert_eq!(trace, TRACE);
        assert_eq!(tracestate(headers).as_deref(), Some("foo=1"));
        assert_eq!(
            body,
            &serde_json::json!([{"url": "http://nested.example/", "arguments": [i + 1]}]),
            "the arguments are posted as JSON"
        );
        parents.push(parent);
    }
    parents.dedup();
    assert_eq!(parents.len(), 3, "one CLIENT span per call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_callee_does_not_fail_the_test_request() {
    let (app, recorder) = setup().await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let response = app
        .client
        .post(app.url("/_test/w3c"))
        .json(&serde_json::json!([
            {"url": format!("http://{closed}/"), "arguments": []},
            {"url": format!("{}/after", recorder.base), "arguments": []},
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "[null,200]");
    assert_eq!(recorder.take().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_test_requests_are_rejected() {
    let (app, _recorder) = setup().await;
    for body in ["{}", "[{\"arguments\": []}]", "not json"] {
        let response = app
            .client
            .post(app.url("/_test/w3c"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_route_is_absent_unless_enabled() {
    let app = spawn_app(&[]).await;
    let response = app
        .client
        .post(app.url("/_test/w3c"))
        .json(&serde_json::json!([]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_not_known_to_be_loopback_are_refused() {
    // Served without connection info, the peer address is unknown: refused like a remote one.
    let (telemetry, _guard, _receiver) = crate::common::test_telemetry(&[]).await;
    let database = crate::common::TestDatabase::create(crate::common::Db::Sqlite).await;
    let mut config = crate::common::shop_config(telemetry.config(), &database, &[]);
    config.conformance = Some(shop::config::Conformance::W3c);
    let app = shop::app::build(&config, &telemetry).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let response = reqwest::Client::new()
        .post(format!("http://{address}/_test/w3c"))
        .json(&serde_json::json!([{"url": "http://127.0.0.1:9/", "arguments": []}]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "conformance.loopback_only");
}

/// This machine's address on its default route, if it has one besides loopback (a UDP
/// "connection" sends nothing; it only picks the source address).
fn non_loopback_address() -> Option<std::net::IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_clients_are_refused() {
    let Some(ip) = non_loopback_address() else {
        eprintln!("skipped: this machine has no non-loopback address");
        return;
    };
    let (telemetry, _guard, _receiver) = crate::common::test_telemetry(&[]).await;
    let database = crate::common::TestDatabase::create(crate::common::Db::Sqlite).await;
    let mut config = crate::common::shop_config(telemetry.config(), &database, &[]);
    config.conformance = Some(shop::config::Conformance::W3c);
    let app = shop::app::build(&config, &telemetry).await.unwrap();
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(shop::serve(listener, app, std::future::pending()));
    let recorder = Recorder::start().await;
    let response = reqwest::Client::new()
        .post(format!("http://{address}/_test/w3c"))
        .json(&serde_json::json!([{"url": format!("{}/callee", recorder.base), "arguments": []}]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403, "a client at {ip} is not loopback");
    assert!(recorder.take().is_empty(), "nothing was called");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cloud_persona_refuses_app_conformance() {
    let database = crate::common::TempDatabase::new();
    let mut command = Command::new(env!("CARGO_BIN_EXE_shop"));
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("OTEL_") || key.starts_with("APP_") || key.starts_with("K_") {
            command.env_remove(key);
        }
    }
    let output = command
        .env("APP_ENV", "cloud")
        .env("APP_GCP_METADATA", "off")
        .env("APP_PII_KEY", "test-pseudonym-key-0123456789")
        .env("APP_CONFORMANCE", "w3c")
        .env("PORT", "0")
        .env("DATABASE_URL", database.url())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::task::spawn_blocking(move || output.wait_with_output()),
    )
    .await
    .expect("shop exits on a refused configuration")
    .unwrap()
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "stderr: {stderr}");
    assert!(stderr.contains("APP_CONFORMANCE"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_whitespace_around_traceparent_is_not_part_of_it() {
    let (app, recorder) = setup().await;
    for incoming in [
        format!(" 00-{TRACE}-{PARENT}-01"),
        format!("\t00-{TRACE}-{PARENT}-01"),
        format!("00-{TRACE}-{PARENT}-01 "),
        format!("00-{TRACE}-{PARENT}-01\t"),
        format!("\t 00-{TRACE}-{PARENT}-01 \t"),
    ] {
        let headers = call_once(&app, &recorder, &[("traceparent", &incoming)]).await;
        assert_eq!(traceparent(&headers).1, TRACE, "{incoming:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misnamed_headers_are_not_trace_context() {
    let (app, recorder) = setup().await;
    let incoming = format!("00-{TRACE}-{PARENT}-01");
    for name in ["trace-parent", "trace.parent"] {
        let headers = call_once(&app, &recorder, &[(name, &incoming)]).await;
        assert_ne!(traceparent(&headers).1, TRACE, "{name}");
    }
    for name in ["trace-state", "trace.state"] {
        let headers = call_once(
            &app,
            &recorder,
            &[("traceparent", &incoming), (name, "foo=1")],
        )
        .await;
        assert_eq!(tracestate(&headers), None, "{name}");
    }
    for name in ["TraceParent", "TRACEPARENT"] {
        let headers = call_once(&app, &recorder, &[(name, &incoming)]).await;
        assert_eq!(
            traceparent(&headers).1,
            TRACE,
            "header names are case-insensitive"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_allowed_tracestate_character_is_kept() {
    let (app, recorder) = setup().await;
    let incoming = format!("00-{TRACE}-{PARENT}-00");
    let key: String = ('a'..='z').chain('0'..='9').chain("_-*/".chars()).collect();
    let value: String = (0x20u8..=0x7e)
        .filter(|b| *b != b',' && *b != b'=')
        .map(char::from)
        .collect();
    for key in [
        key.clone(),
        format!("{key}@a-z0-9_-*/"),
        format!("0{key}@@@"),
        format!("9@{key}"),
    ] {
        let state = format!("{key}={value}");
        let headers = call_once(
            &app,
            &recorder,
            &[("traceparent", &incoming), ("tracestate", &state)],
        )
        .await;
        assert_eq!(tracestate(&headers).as_deref(), Some(state.as_str()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracestate_rules_apply_across_repeated_fields() {
    let (app, recorder) = setup().await;
    let incoming = format!("00-{TRACE}-{PARENT}-00");
    let members: Vec<String> = (1..=33).map(|i| format!("bar{i:02}={i:02}")).collect();
    let thirty_two = [
        members[..10].join(","),
        members[10..20].join(","),
        members[20..30].join(","),
        members[30..32].join(","),
    ];
    let thirty_three = [
        members[..10].join(","),
        members[10..20].join(","),
        members[20..30].join(","),
        members[30..33].join(","),
    ];
    let long_key = format!("{}=1", "z".repeat(256));
    let cases: Vec<(Vec<&str>, Option<String>)> = vec![
        (vec!["foo=1", ""], Some("foo=1".into())),
        (vec!["", "foo=1"], Some("foo=1".into())),
        (vec![""], None),
        (vec!["foo=1", "foo=1"], Some("foo=1".into())),
        (vec!["foo=1", "foo=2"], Some("foo=1".into())),
        (
            thirty_two.iter().map(String::as_str).collect(),
            Some(members[..32].join(",")),
        ),
        (thirty_three.iter().map(String::as_str).collect(), None),
        (vec!["foo=1", &long_key], Some(format!("foo=1,{long_key}"))),
    ];
    let too_long_key = format!("{}=1", "z".repeat(257));
    let mut cases = cases;
    // An invalid member is dropped alone: `foo=1` stays.
    cases.push((vec!["foo=1", too_long_key.as_str()], Some("foo=1".into())));
    // No tenant/system split any more: these were refused by the old grammar (and by
    // OpenTelemetry 0.33's `TraceState`) and are valid now.
    let tenant_system = format!("{}@{}=1", "t".repeat(241), "v".repeat(14));
    let long_tenant = format!("{}@v=1", "t".repeat(242));
    let long_system = format!("t@{}=1", "v".repeat(15));
    for good in [&tenant_system, &long_tenant, &long_system] {
        cases.push((vec!["foo=1", good.as_str()], Some(format!("foo=1,{good}"))));
    }
    for (fields, expected) in cases {
        let mut headers = vec![("traceparent", incoming.as_str())];
        headers.extend(fields.iter().map(|f| ("tracestate", *f)));
        let received = call_once(&app, &recorder, &headers).await;
        assert_eq!(traceparent(&received).1, TRACE);
        assert_eq!(tracestate(&received), expected, "{fields:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_gets_its_own_parent_id_with_or_without_a_valid_parent() {
    let (app, recorder) = setup().await;
    let calls: Vec<serde_json::Value> = (0..3)
        .map(|i| serde_json::json!({"url": format!("{}/{i}", recorder.base), "arguments": []}))
        .collect();
    for incoming in [None, Some(format!("00-{}-{PARENT}-01", "0".repeat(32)))] {
        let mut request = app.client.post(app.url("/_test/w3c")).json(&calls);
        if let Some(incoming) = &incoming {
            request = request.header("traceparent", incoming);
        }
        assert_eq!(request.send().await.unwrap().status(), 200);
        let received = recorder.take();
        let ids: Vec<(String, String)> = received
            .iter()
            .map(|(_, headers, _)| {
                let (_, trace, parent, _) = traceparent(headers);
                (trace, parent)
            })
            .collect();
        let traces: std::collections::HashSet<&str> = ids.iter().map(|(t, _)| t.as_str()).collect();
        let parents: std::collections::HashSet<&str> =
            ids.iter().map(|(_, p)| p.as_str()).collect();
        assert_eq!(
            traces.len(),
            1,
            "one new trace for the request ({incoming:?})"
        );
        assert_eq!(parents.len(), 3, "one parent id per call ({incoming:?})");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_random_flag_of_a_continued_trace_is_propagated() {
    let (app, recorder) = setup().await;
    for flags in ["00", "01", "02", "03"] {
        let incoming = format!("00-{TRACE}-{PARENT}-{flags}");
        let headers = call_once(&app, &recorder, &[("traceparent", &incoming)]).await;
        let (_, trace, _, sent) = traceparent(&headers);
        assert_eq!(trace, TRACE);
        assert_eq!(sent, flags, "sampled and random as received ({incoming})");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_root_trace_sets_the_random_flag() {
    let (app, recorder) = setup().await;
    let invalid = format!("00-{}-{PARENT}-01", "0".repeat(32));
    for incoming in [None, Some(invalid.as_str())] {
        let mut request = app.client.post(app.url("/_test/w3c")).json(
            &serde_json::json!([{"url": format!("{}/callee", recorder.base), "arguments": []}]),
        );
        if let Some(incoming) = incoming {
            request = request.header("traceparent", incoming);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        let returned = response.headers()["traceparent"]
            .to_str()
            .unwrap()
            .to_owned();
        let flags = u8::from_str_radix(&returned[53..55], 16).unwrap();
        assert_eq!(flags & 0x02, 0x02, "the response's traceparent {returned}");
        let (_, headers, _) = recorder.take().remove(0);
        let (_, trace, _, sent) = traceparent(&headers);
        assert_eq!(trace, returned[3..35], "the call continues the new trace");
        let sent = u8::from_str_radix(&sent, 16).unwrap();
        assert_eq!(sent & 0x02, 0x02, "the outbound traceparent ({incoming:?})");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exact_tracestate_is_exported_on_the_server_and_client_spans() {
    let (app, recorder) = setup().await;
    let incoming = format!("00-{TRACE}-{PARENT}-01");
    // Keys OpenTelemetry 0.33's `TraceState` refuses, with optional whitespace, an invalid
    // member and a duplicate: what is kept is exported and forwarded byte for byte.
    let state = "foo@@bar=1 , Bad=2,congo=t61rcWkgMzE,foo@@bar=3,t@abcdefghijklmn=x y";
    let kept = "foo@@bar=1,congo=t61rcWkgMzE,t@abcdefghijklmn=x y";
    let headers = call_once(
        &app,
        &recorder,
        &[("traceparent", &incoming), ("tracestate", state)],
    )
    .await;
    assert_eq!(tracestate(&headers).as_deref(), Some(kept));
    app.guard.shutdown().await;
    let spans = app.receiver.spans();
    let server = spans
        .iter()
        .find(|s| s.kind == SpanKind::Server && s.name == "POST /_test/w3c")
        .unwrap();
    assert_eq!(server.trace_state, kept);
    let client = spans
        .iter()
        .find(|s| s.kind == SpanKind::Client && s.name == "POST")
        .unwrap();
    assert_eq!(client.parent_span_id, server.span_id);
    assert_eq!(client.trace_state, kept);
}
