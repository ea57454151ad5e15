//! The embedded telemetry console, through `shop::run` (the binary's path): what it shows for a
//! checkout equals what the OTLP receiver captured, both services in one trace; its own
//! requests are not shop traffic; absent in the cloud persona and with `APP_CONSOLE=off`.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use telemetry::serve::ShutdownBudget;
use telemetry::testkit::{AttrValue, Attributes, OtlpReceiver};

use crate::common::TempDatabase;

/// A shop started as the binary starts it (in-process simulator, stdout logs), with `env` on
/// top of a fresh SQLite database, port 0 and fast OTLP schedules to `receiver`.
struct Running {
    base: String,
    client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    serving: Option<tokio::task::JoinHandle<telemetry::serve::Stopped>>,
    _database: TempDatabase,
}

impl Running {
    async fn start(receiver: Option<&OtlpReceiver>, env: &[(&str, &str)]) -> Self {
        let database = TempDatabase::new();
        let mut vars: HashMap<String, String> = HashMap::from([
            ("PORT".to_owned(), "0".to_owned()),
            ("DATABASE_URL".to_owned(), database.url()),
            ("APP_LOG_FORMAT".to_owned(), "json".to_owned()),
            ("OTEL_BSP_SCHEDULE_DELAY".to_owned(), "100".to_owned()),
            ("OTEL_BLRP_SCHEDULE_DELAY".to_owned(), "100".to_owned()),
            ("OTEL_METRIC_EXPORT_INTERVAL".to_owned(), "200".to_owned()),
            ("APP_CONSOLE_METRIC_INTERVAL".to_owned(), "200".to_owned()),
        ]);
        if let Some(receiver) = receiver {
            vars.insert(
                "OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(),
                receiver.grpc_endpoint(),
            );
        }
        for (key, value) in env {
            vars.insert((*key).to_owned(), (*value).to_owned());
        }
        let settings = shop::run::Settings::from_lookup(|key| vars.get(key).cloned()).unwrap();
        let budget = ShutdownBudget::CLOUD_RUN;
        let started = shop::run::start(settings, budget).await.unwrap();
        let base = format!("http://127.0.0.1:{}", started.address.port());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(started.serve(
            async move {
                let _ = stopped.await;
            },
            budget,
        ));
        Self {
            base,
            client: reqwest::Client::new(),
            stop: Some(stop),
            serving: Some(serving),
            _database: database,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Stops serving and flushes telemetry (everything exported reaches the receiver).
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(serving) = self.serving.take() {
            let _ = serving.await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn eventually<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// The receiver's value as the console renders it (bytes as hex).
fn json_of(value: &AttrValue) -> Value {
    match value {
        AttrValue::Str(s) => json!(s),
        AttrValue::Bool(b) => json!(b),
        AttrValue::Int(i) => json!(i),
        AttrValue::Double(d) => json!(d),
        AttrValue::Array(values) => Value::Array(values.iter().map(json_of).collect()),
        AttrValue::Bytes(bytes) => {
            json!(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
        }
        AttrValue::Map(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), json_of(v))).collect())
        }
    }
}

/// The receiver's attributes as the console's JSON, through JSON text as the console's answer
/// came (so both sides' floats go through the same parser).
fn json_attributes(attributes: &Attributes) -> Value {
    let value = Value::Object(
        attributes
            .iter()
            .map(|(k, v)| (k.clone(), json_of(v)))
            .collect(),
    );
    serde_json::from_str(&value.to_string()).unwrap()
}

fn kind_name(kind: telemetry::testkit::SpanKind) -> &'static str {
    use telemetry::testkit::SpanKind;
    match kind {
        SpanKind::Server => "SERVER",
        SpanKind::Client => "CLIENT",
        SpanKind::Internal => "INTERNAL",
        SpanKind::Producer => "PRODUCER",
        SpanKind::Consumer => "CONSUMER",
        SpanKind::Unspecified => "UNSPECIFIED",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_exactly_what_the_otlp_receiver_captured_for_a_checkout() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let shop = Running::start(Some(&receiver), &[]).await;
    let signed: Value = shop
        .client
        .post(shop.url("/v1/users"))
        .json(&json!({"email": "console@example.com", "name": "Console"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = signed["token"].as_str().unwrap();
    let response = shop
        .client
        .post(shop.url("/v1/orders"))
        .bearer_auth(token)
        .header("idempotency-key", "console-checkout-1")
        .json(&json!({"items": [{"product_id": 1, "quantity": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let traceparent = response.headers()["traceparent"]
        .to_str()
        .unwrap()
        .to_owned();
    let trace_id = traceparent.split('-').nth(1).unwrap().to_owned();

    // The console has the checkout as a request, and its trace across both services.
    let path = format!("/_console/api/traces/{trace_id}");
    let complete = eventually(|| async {
        let (status, trace) = shop.get(&path).await;
        status == 200 && trace["services"] == json!(["payments-sim", "shop"])
    })
    .await;
    let (_, trace) = shop.get(&path).await;
    assert!(complete, "{trace}");
    let (_, requests) = shop
        .get(&format!("/_console/api/requests?q={trace_id}"))
        .await;
    let checkout = requests["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["service"] == "shop")
        .unwrap_or_else(|| panic!("{requests}"));
    assert_eq!(checkout["route"], "/v1/orders");
    assert_eq!(checkout["method"], "POST");
    assert_eq!(checkout["status"], 201);

    // Both are fed from the same export requests: wait until they agree on which records
    // the trace has, then compare every field.
    let converged = eventually(|| async {
        let (_, trace) = shop.get(&path).await;
        let mut ours: Vec<String> = trace["spans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["span_id"].as_str().unwrap().to_owned())
            .collect();
        let mut theirs: Vec<String> = receiver
            .spans()
            .into_iter()
            .filter(|s| s.trace_id == trace_id)
            .map(|s| s.span_id)
            .collect();
        ours.sort();
        theirs.sort();
        let logs = receiver
            .logs()
            .into_iter()
            .filter(|l| l.trace_id == trace_id)
            .count();
        ours == theirs && trace["logs"].as_array().unwrap().len() == logs && logs > 0
    })
    .await;
    let console_trace = shop.get(&path).await.1;
    assert!(
        converged,
        "console: {console_trace}\nreceiver: {}",
        receiver.dump_all()
    );
    shop.stop().await;
    let captured: Vec<_> = receiver
        .spans()
        .into_iter()
        .filter(|s| s.trace_id == trace_id)
        .collect();
    let spans = console_trace["spans"].as_array().unwrap();
    assert_eq!(
        spans.len(),
        captured.len(),
        "console: {console_trace}\nreceiver: {captured:#?}"
    );
    assert!(
        spans.len() >= 4,
        "SERVER, DB, CLIENT and the simulator's SERVER: {console_trace}"
    );
    for span in spans {
        let id = span["span_id"].as_str().unwrap();
        let theirs = captured
            .iter()
            .find(|c| c.span_id == id)
            .unwrap_or_else(|| panic!("span {id} not captured: {span}"));
        assert_eq!(span["name"], theirs.name.as_str());
        assert_eq!(span["kind"], kind_name(theirs.kind));
        assert_eq!(
            span["attributes"],
            json_attributes(&theirs.attributes),
            "{id}"
        );
        assert_eq!(span["resource"], json_attributes(&theirs.resource), "{id}");
        assert_eq!(
            span["parent_span_id"],
            if theirs.parent_span_id.is_empty() {
                Value::Null
            } else {
                json!(theirs.parent_span_id)
            }
        );
        assert_eq!(span["start_unix_nano"], theirs.start_unix_nanos.to_string());
        assert_eq!(span["end_unix_nano"], theirs.end_unix_nanos.to_string());
        assert_eq!(span["status"]["message"], theirs.status_message.as_str());
        assert_eq!(span["scope"], theirs.scope_name.as_str());
        let events: Vec<Value> = theirs
            .events
            .iter()
            .map(|e| json!({"name": e.name, "attributes": json_attributes(&e.attributes)}))
            .collect();
        let ours: Vec<Value> = span["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| json!({"name": e["name"], "attributes": e["attributes"]}))
            .collect();
        assert_eq!(ours, events, "{id}");
    }
    let services: Vec<&str> = spans
        .iter()
        .map(|s| s["service"].as_str().unwrap())
        .collect();
    assert!(services.contains(&"shop") && services.contains(&"payments-sim"));

    let captured_logs: Vec<_> = receiver
        .logs()
        .into_iter()
        .filter(|l| l.trace_id == trace_id)
        .collect();
    let logs = console_trace["logs"].as_array().unwrap();
    assert!(!logs.is_empty(), "{console_trace}");
    assert_eq!(
        logs.len(),
        captured_logs.len(),
        "{console_trace}\n{captured_logs:#?}"
    );
    for log in logs {
        let time = log["time_unix_nano"].as_str().unwrap();
        let theirs = captured_logs
            .iter()
            .find(|c| {
                let t = if c.time_unix_nanos != 0 {
                    c.time_unix_nanos
                } else {
                    c.observed_time_unix_nanos
                };
                t.to_string() == time && json!(c.span_id) == log["span_id"]
            })
            .unwrap_or_else(|| panic!("log not captured: {log}"));
        assert_eq!(
            log["attributes"],
            json_attributes(&theirs.attributes),
            "{log}"
        );
        assert_eq!(
            log["body"],
            theirs.body.as_ref().map_or(json!(""), json_of),
            "{log}"
        );
        assert_eq!(log["severity_number"], theirs.severity_number);
        assert_eq!(log["severity_text"], theirs.severity_text.as_str());
        assert_eq!(log["target"], theirs.scope_name.as_str());
    }
    // The access line of the checkout is one of them, with the request's span.
    assert!(
        logs.iter()
            .any(|l| l["target"] == "access" && l["span_id"] == checkout["span_id"]),
        "{console_trace}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consoles_own_requests_are_not_shop_traffic() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let shop = Running::start(Some(&receiver), &[]).await;
    let (status, _) = shop.get("/v1/products/1").await;
    assert_eq!(status, 200);
    for path in [
        "/_console/",
        "/_console/api/requests",
        "/_console/api/logs",
        "/_console/api/metrics",
        "/_console/api/traces/0123456789abcdef0123456789abcdef",
    ] {
        let response = shop.client.get(shop.url(path)).send().await.unwrap();
        assert!(
            response.headers().get("x-request-id").is_none(),
            "{path} is not observed"
        );
        assert!(response.headers().get("traceparent").is_none(), "{path}");
    }
    let seen =
        eventually(|| async { shop.get("/_console/api/requests").await.1["total"] == 1 }).await;
    let (_, requests) = shop.get("/_console/api/requests").await;
    assert!(seen, "only the product request: {requests}");
    let metrics = shop
        .client
        .get(shop.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!metrics.contains("_console"), "{metrics}");
    // No access line, no request log of the console (the start-up lines name its URL).
    let (_, logs) = shop.get("/_console/api/logs?limit=2000").await;
    for log in logs["logs"].as_array().unwrap() {
        let path = log["attributes"]["url.path"].as_str().unwrap_or("");
        assert!(!path.starts_with("/_console"), "{log}");
    }
    assert_eq!(
        logs["logs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["target"] == "access")
            .count(),
        1,
        "{logs}"
    );
    shop.stop().await;
    assert!(
        !receiver.spans().iter().any(|s| s.name.contains("_console")
            || s.attributes
                .values()
                .any(|v| v.as_str().is_some_and(|v| v.contains("/_console")))),
        "{}",
        receiver.dump_all()
    );
    assert!(
        receiver.logs().iter().all(|l| !l
            .attr("url.path")
            .and_then(AttrValue::as_str)
            .is_some_and(|p| p.starts_with("/_console"))),
        "{}",
        receiver.dump_all()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_absent_when_off_and_in_the_cloud_persona() {
    for env in [
        vec![("APP_CONSOLE", "off")],
        vec![
            ("APP_ENV", "cloud"),
            ("APP_HOST", "127.0.0.1"),
            ("APP_PII_KEY", "a-test-key-of-enough-length"),
            ("OTEL_SDK_DISABLED", "true"),
        ],
    ] {
        let shop = Running::start(None, &env).await;
        for path in ["/_console/", "/_console/api/requests", "/_console"] {
            let (status, _) = shop.get(path).await;
            assert_eq!(status, 404, "{env:?} {path}");
        }
        let (status, _) = shop.get("/v1/products/1").await;
        assert_eq!(status, 200);
        shop.stop().await;
    }
    // And on by default locally.
    let shop = Running::start(None, &[]).await;
    let (status, body) = shop.get("/_console/api/requests").await;
    assert_eq!(status, 200, "{body}");
    shop.stop().await;
    // Asking for it in the cloud persona stops start-up, naming the variable.
    let error = shop::run::Settings::from_lookup(|key| match key {
        "APP_ENV" => Some("cloud".to_owned()),
        "APP_PII_KEY" => Some("a-test-key-of-enough-length".to_owned()),
        "APP_CONSOLE" => Some("on".to_owned()),
        _ => None,
    })
    .unwrap_err();
    assert_eq!(error.variable, "APP_CONSOLE");
}
