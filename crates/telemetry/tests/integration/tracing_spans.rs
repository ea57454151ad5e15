//! `tracing` spans as OpenTelemetry spans, asserted on what a real server exports: INTERNAL
//! child spans with the right parents and attributes, nesting, `.instrument()` across
//! `tokio::spawn`, PII rules on span fields, spans outside requests, the span id on log lines,
//! nothing extra for requests without spans, and the span queue's bound.
#![allow(clippy::unwrap_used)]

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use telemetry::config::OtlpProtocol;
use telemetry::log_sink::LogSink;
use telemetry::testkit::{CapturedSpan, OtlpReceiver, SpanKind};
use telemetry::{RequestContext, Telemetry};
use tracing::Instrument as _;
use tracing::field::Empty;

use crate::common::{Harness, config, prometheus_value, routes};

/// The test routes plus handlers that use `tracing` spans.
fn span_routes() -> Router {
    routes()
        .route("/nested/{id}", get(nested))
        .route("/spawned", get(spawned))
        .route("/secrets", get(secrets))
        .route("/many/{n}", get(many))
        .route("/parents", get(parents))
        .route("/chatty", get(chatty))
}

/// A value whose `Debug` logs: rendering it for a span must not deadlock on the span.
struct Chatty;

impl std::fmt::Debug for Chatty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        tracing::info!("rendering chatty");
        f.write_str("chatty")
    }
}

async fn chatty() -> &'static str {
    let span = tracing::info_span!("chatty", created = ?Chatty, recorded = Empty);
    let _entered = span.enter();
    span.record("recorded", tracing::field::debug(Chatty));
    "ok"
}

async fn nested(Path(id): Path<u64>) -> String {
    let total = load_order(id).await;
    format!("{total}")
}

#[tracing::instrument(fields(order.lines = Empty))]
async fn load_order(id: u64) -> u64 {
    tracing::info!("loading order");
    tracing::Span::current().record("order.lines", 3);
    price(id).await * 3
}

#[tracing::instrument(fields(currency = "EUR"))]
async fn price(id: u64) -> u64 {
    tracing::info!(cents = id * 100, "priced");
    id * 100
}

/// Spawns work on another task, instrumented with a span created here: the task has no
/// request context of its own. Answers whether it had one.
async fn spawned() -> String {
    let span = tracing::info_span!("background_job", job.kind = "receipt");
    let had_context = tokio::spawn(
        async {
            tracing::info!("in the background");
            background_step().await;
            RequestContext::current().is_some()
        }
        .instrument(span),
    )
    .await
    .unwrap();
    // And onto a plain OS thread, entering a span created here.
    let thread_span = tracing::info_span!("on_a_thread");
    std::thread::spawn(move || {
        thread_span.in_scope(|| {
            let _step = tracing::info_span!("thread_step").entered();
            tracing::info!("on another thread");
        })
    })
    .join()
    .unwrap();
    format!("{had_context}")
}

#[tracing::instrument]
async fn background_step() {
    tracing::info!("background step");
}

async fn secrets() -> &'static str {
    let long = "x".repeat(5000);
    let span = tracing::info_span!(
        "sign_in",
        password = "hunter2-secret",
        user.email = "carol@example.com",
        note = %"call ann@example.com now",
        long = %long,
        api_token = Empty,
    );
    let _entered = span.enter();
    span.record("api_token", "tok_live_verysecret");
    tracing::info!("signing in");
    "ok"
}

/// `n` spans in one request.
async fn many(Path(n): Path<u32>) -> &'static str {
    for i in 0..n {
        let _span = tracing::info_span!("step", i).entered();
    }
    "ok"
}

/// The parent a `Telemetry::tracer()` span would get (what the database and outbound helpers
/// use), outside and inside a `tracing` span, as `outside,inside` span ids.
async fn parents() -> String {
    let outside = telemetry::tracing_spans::current_span_context().unwrap();
    let inside = async {
        telemetry::tracing_spans::current_span_context()
            .unwrap()
            .span_id()
    }
    .instrument(tracing::info_span!("lookup"))
    .await;
    format!("{},{}", outside.span_id(), inside)
}

async fn start() -> Harness {
    Harness::start_with(&[], OtlpProtocol::Grpc, span_routes()).await
}

fn internal<'a>(spans: &'a [CapturedSpan], name: &str) -> &'a CapturedSpan {
    let found: Vec<_> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(found.len(), 1, "one {name} span expected in {spans:#?}");
    assert_eq!(found[0].kind, SpanKind::Internal);
    found[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instrumented_functions_are_child_spans_with_their_fields() {
    let mut h = start().await;
    let response = h.get("/nested/7").await;
    assert_eq!(response.status(), 200);
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(response.text().await.unwrap(), "2100");
    h.flush().await;

    let spans = h.receiver.spans();
    let server = &h.server_spans()[0];
    let load = internal(&spans, "load_order");
    let price = internal(&spans, "price");
    assert_eq!(spans.len(), 3, "{spans:#?}");
    // load_order is a child of the SERVER span, price of load_order, all in one trace.
    assert_eq!(load.parent_span_id, server.span_id);
    assert_eq!(price.parent_span_id, load.span_id);
    assert_eq!(load.trace_id, server.trace_id);
    assert_eq!(price.trace_id, server.trace_id);
    // Nested spans lie within their parent.
    assert!(load.start_unix_nanos >= server.start_unix_nanos);
    assert!(price.start_unix_nanos >= load.start_unix_nanos);
    assert!(price.end_unix_nanos <= load.end_unix_nanos);
    // Fields as attributes: the argument, a declared field, a recorded one, the callsite.
    assert_eq!(load.attr("id").and_then(|v| v.as_i64()), Some(7));
    assert_eq!(load.attr("order.lines").and_then(|v| v.as_i64()), Some(3));
    assert_eq!(price.str_attr("currency"), Some("EUR"));
    assert!(
        load.str_attr("code.file.path")
            .is_some_and(|f| f.ends_with("tracing_spans.rs")),
        "{load:#?}"
    );
    assert!(load.attr("code.line.number").and_then(|v| v.as_i64()) > Some(0));
    assert_eq!(load.scope_name, "telemetry");
    assert_eq!(load.resource["service.name"].as_str(), Some("test-svc"));

    // Log lines inside a span carry its span id (stdout and OTLP), and the request's ids.
    let lines = h.log_lines();
    let line = |message: &str| {
        lines
            .iter()
            .find(|l| l["message"] == message)
            .unwrap_or_else(|| panic!("no {message:?} line in {lines:#?}"))
            .clone()
    };
    let loading = line("loading order");
    assert_eq!(loading["span_id"], load.span_id.as_str());
    assert_eq!(loading["trace_id"], server.trace_id.as_str());
    assert_eq!(loading["request_id"], request_id.as_str());
    let priced = line("priced");
    assert_eq!(priced["span_id"], price.span_id.as_str());
    assert_eq!(priced["cents"], 700);
    let access = h.access_lines();
    assert_eq!(access[0]["span_id"], server.span_id.as_str());
    let logs = h.receiver.logs();
    let record = logs
        .iter()
        .find(|l| l.body_str() == Some("priced"))
        .unwrap();
    assert_eq!(record.span_id, price.span_id);
    assert_eq!(record.trace_id, server.trace_id);
    assert_eq!(record.str_attr("app.request.id"), Some(request_id.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawned_tasks_keep_their_parent_and_route_their_events() {
    let mut h = start().await;
    let response = h.get("/spawned").await;
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    // The premise: the spawned task had no request context of its own.
    assert_eq!(response.text().await.unwrap(), "false");
    h.flush().await;

    let spans = h.receiver.spans();
    let server = &h.server_spans()[0];
    let job = internal(&spans, "background_job");
    let step = internal(&spans, "background_step");
    assert_eq!(job.parent_span_id, server.span_id);
    assert_eq!(step.parent_span_id, job.span_id);
    assert_eq!(step.trace_id, server.trace_id);
    assert_eq!(job.str_attr("job.kind"), Some("receipt"));

    // The task's events went to this instance, with the span's ids and the request's id.
    let lines = h.log_lines();
    let background = lines
        .iter()
        .find(|l| l["message"] == "in the background")
        .unwrap_or_else(|| panic!("{lines:#?}"));
    assert_eq!(background["span_id"], job.span_id.as_str());
    assert_eq!(background["trace_id"], server.trace_id.as_str());
    assert_eq!(background["request_id"], request_id.as_str());
    let step_line = lines
        .iter()
        .find(|l| l["message"] == "background step")
        .unwrap();
    assert_eq!(step_line["span_id"], step.span_id.as_str());
    // The OS thread: same parentage, same routing.
    let on_thread = internal(&spans, "on_a_thread");
    let thread_step = internal(&spans, "thread_step");
    assert_eq!(on_thread.parent_span_id, server.span_id);
    assert_eq!(thread_step.parent_span_id, on_thread.span_id);
    assert_eq!(thread_step.trace_id, server.trace_id);
    let thread_line = lines
        .iter()
        .find(|l| l["message"] == "on another thread")
        .unwrap();
    assert_eq!(thread_line["span_id"], thread_step.span_id.as_str());
    assert_eq!(thread_line["request_id"], request_id.as_str());
    let logs = h.receiver.logs();
    let record = logs
        .iter()
        .find(|l| l.body_str() == Some("in the background"))
        .unwrap();
    assert_eq!(record.span_id, job.span_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn span_fields_follow_the_pii_rules() {
    let mut h = start().await;
    assert_eq!(h.get("/secrets").await.status(), 200);
    h.flush().await;

    let spans = h.receiver.spans();
    let span = internal(&spans, "sign_in");
    assert_eq!(span.str_attr("password"), Some("[REDACTED]"));
    assert_eq!(span.str_attr("api_token"), Some("[REDACTED]"));
    assert_eq!(span.str_attr("user.email"), Some("[REDACTED]@example.com"));
    assert_eq!(
        span.str_attr("note"),
        Some("call [REDACTED_EMAIL] now"),
        "{span:#?}"
    );
    assert_eq!(
        span.str_attr("long").map(str::len),
        Some(telemetry::tracing_spans::MAX_ATTRIBUTE_LEN)
    );
    let everything = format!(
        "{}\n{}",
        h.receiver.dump_all(),
        h.telemetry.log_sink().captured()
    );
    for raw in ["hunter2", "verysecret", "carol@", "ann@example.com"] {
        assert!(!everything.contains(raw), "{raw} leaked");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_whose_debug_logs_is_recorded_without_deadlock() {
    let mut h = start().await;
    // A deadlock would hang the request: fail clearly instead.
    let response = tokio::time::timeout(std::time::Duration::from_secs(30), h.get("/chatty"))
        .await
        .expect("the request hung: recording the span deadlocked");
    assert_eq!(response.status(), 200);
    h.flush().await;
    let spans = h.receiver.spans();
    let span = internal(&spans, "chatty");
    assert_eq!(span.str_attr("created"), Some("chatty"));
    assert_eq!(span.str_attr("recorded"), Some("chatty"));
    // The line logged while recording is inside the span.
    let lines = h.log_lines();
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "rendering chatty" && l["span_id"] == span.span_id.as_str()),
        "{lines:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_spans_exports_what_it_did_before() {
    let mut h = start().await;
    assert_eq!(h.get("/items/1").await.status(), 200);
    // An unsampled request's spans are not exported either.
    let unsampled = h
        .client
        .get(format!("{}/nested/2", h.base))
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(unsampled.status(), 200);
    h.flush().await;

    let spans = h.receiver.spans();
    assert_eq!(spans.len(), 1, "{spans:#?}");
    assert_eq!(spans[0].kind, SpanKind::Server);
    // The handler's event and the access line, both on the SERVER span.
    let item_logs: Vec<_> = h
        .receiver
        .logs()
        .into_iter()
        .filter(|l| l.trace_id == spans[0].trace_id)
        .collect();
    assert_eq!(item_logs.len(), 2, "{item_logs:#?}");
    assert!(item_logs.iter().all(|l| l.span_id == spans[0].span_id));
    // The unsampled request's lines still carry its span ids (not sampled, not exported).
    let lines = h.log_lines();
    let priced = lines.iter().find(|l| l["message"] == "priced").unwrap();
    assert_eq!(priced["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_ne!(priced["span_id"], "00f067aa0ba902b7");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helpers_parent_their_spans_on_the_current_tracing_span() {
    let mut h = start().await;
    let body = h.get("/parents").await.text().await.unwrap();
    h.flush().await;
    let spans = h.receiver.spans();
    let server = &h.server_spans()[0];
    let lookup = internal(&spans, "lookup");
    assert_eq!(body, format!("{},{}", server.span_id, lookup.span_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_never_see_each_others_spans() {
    let mut a = Harness::start_with(
        &[("OTEL_SERVICE_NAME", "svc-a")],
        OtlpProtocol::Grpc,
        span_routes(),
    )
    .await;
    let mut b = Harness::start_with(
        &[("OTEL_SERVICE_NAME", "svc-b")],
        OtlpProtocol::Grpc,
        span_routes(),
    )
    .await;
    let (ra, rb, rc) = tokio::join!(a.get("/nested/1"), b.get("/spawned"), a.get("/nested/2"));
    for response in [ra, rb, rc] {
        assert_eq!(response.status(), 200);
    }
    a.flush().await;
    b.flush().await;
    let a_spans = a.receiver.spans();
    let b_spans = b.receiver.spans();
    let names = |spans: &[CapturedSpan]| {
        let mut names: Vec<String> = spans
            .iter()
            .filter(|s| s.kind == SpanKind::Internal)
            .map(|s| s.name.clone())
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        names(&a_spans),
        ["load_order", "load_order", "price", "price"]
    );
    assert_eq!(
        names(&b_spans),
        [
            "background_job",
            "background_step",
            "on_a_thread",
            "thread_step"
        ]
    );
    assert!(
        a_spans
            .iter()
            .all(|s| s.resource["service.name"].as_str() == Some("svc-a"))
    );
    assert!(
        b_spans
            .iter()
            .all(|s| s.resource["service.name"].as_str() == Some("svc-b"))
    );
    // Every INTERNAL span's trace is one of its own instance's requests.
    for spans in [&a_spans, &b_spans] {
        let traces: Vec<&str> = spans
            .iter()
            .filter(|s| s.kind == SpanKind::Server)
            .map(|s| s.trace_id.as_str())
            .collect();
        assert!(spans.iter().all(|s| traces.contains(&s.trace_id.as_str())));
    }
    assert!(
        b.log_lines()
            .iter()
            .all(|l| l["message"] != "loading order" && l["message"] != "priced")
    );
    assert!(
        a.log_lines()
            .iter()
            .all(|l| l["message"] != "in the background")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_span_queue_bound_holds_and_drops_are_counted() {
    let mut h = Harness::start_with(
        &[
            ("OTEL_BSP_MAX_QUEUE_SIZE", "4"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4"),
        ],
        OtlpProtocol::Grpc,
        span_routes(),
    )
    .await;
    // A collector that never answers: the first export hangs, the queue (4 spans) fills.
    h.receiver.never_answer();
    for _ in 0..5 {
        assert_eq!(h.get("/many/20").await.status(), 200);
    }
    let metrics = h.get("/metrics").await.text().await.unwrap();
    // 105 spans (5 × 20 INTERNAL + 5 SERVER); at most the queue (4, exports in flight
    // included) escapes the count.
    let dropped = prometheus_value(&metrics, "app_telemetry_dropped_total{signal=\"spans\"}")
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(dropped >= 97.0, "{metrics}");
    h.receiver.accept();
    h.flush().await;
    assert!(
        h.receiver.spans().len() <= 8,
        "{}",
        h.receiver.spans().len()
    );
}

/// An instance with its own fallback subscriber on this thread (as an app's
/// `install_global_subscriber` would be), exporting to `receiver`.
fn standalone(
    receiver: &OtlpReceiver,
    pairs: &[(&str, &str)],
) -> (Telemetry, telemetry::TelemetryGuard) {
    Telemetry::builder(config(pairs).with_otlp(receiver.grpc_endpoint(), OtlpProtocol::Grpc))
        .log_sink(LogSink::memory())
        .build()
        .unwrap()
}

#[tracing::instrument]
fn nightly_job(batch: u32) {
    tracing::info!("job ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_outside_requests_are_new_traces_by_default() {
    use tracing_subscriber::layer::SubscriberExt as _;
    let receiver = OtlpReceiver::start().await.unwrap();
    let (telemetry, guard) = standalone(&receiver, &[]);
    {
        let subscriber = tracing_subscriber::registry().with(telemetry.log_layer());
        let _default = tracing::subscriber::set_default(subscriber);
        nightly_job(3);
        nightly_job(4);
    }
    guard.shutdown().await;
    let spans = receiver.spans();
    assert_eq!(spans.len(), 2, "{spans:#?}");
    for span in &spans {
        assert_eq!(span.name, "nightly_job");
        assert_eq!(span.kind, SpanKind::Internal);
        assert_eq!(span.parent_span_id, "");
    }
    assert_ne!(spans[0].trace_id, spans[1].trace_id);
    let lines: Vec<serde_json::Value> = telemetry
        .log_sink()
        .captured()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|l: &serde_json::Value| l["message"] == "job ran")
        .collect();
    assert_eq!(lines.len(), 2);
    for line in &lines {
        assert!(
            spans.iter().any(|s| line["span_id"] == s.span_id.as_str()
                && line["trace_id"] == s.trace_id.as_str()),
            "{line}"
        );
        assert_eq!(line["request_id"], "");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_outside_requests_can_be_dropped() {
    use tracing_subscriber::layer::SubscriberExt as _;
    let receiver = OtlpReceiver::start().await.unwrap();
    let (telemetry, guard) = standalone(&receiver, &[("APP_SPANS_OUTSIDE_REQUESTS", "drop")]);
    {
        let subscriber = tracing_subscriber::registry().with(telemetry.log_layer());
        let _default = tracing::subscriber::set_default(subscriber);
        nightly_job(5);
    }
    guard.shutdown().await;
    assert!(receiver.spans().is_empty(), "{:#?}", receiver.spans());
    let captured = telemetry.log_sink().captured();
    let line: serde_json::Value = captured
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .find(|l: &serde_json::Value| l["message"] == "job ran")
        .unwrap();
    assert!(line.get("span_id").is_none(), "{line}");
    // The line still went out as an OTLP log record, without trace context.
    assert!(
        receiver
            .logs()
            .iter()
            .any(|l| l.body_str() == Some("job ran") && l.span_id.is_empty())
    );
}

/// A query inside an `#[instrument]` function.
#[tracing::instrument(skip(db))]
async fn reserve_stock(db: &telemetry::db::DbInstruments, product: u64) {
    let _ = db
        .operation("UPDATE", "products")
        .run(async { Ok::<_, ()>(()) }, |_| "other")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_spans_nest_under_the_enclosing_tracing_span() {
    telemetry::testkit::install_test_subscriber();
    let receiver = OtlpReceiver::start().await.unwrap();
    let (telemetry, guard) = standalone(&receiver, &[]);
    let db = telemetry::db::DbInstruments::new(&telemetry, "sqlite");
    let app = telemetry.observe_router(Router::new().route(
        "/reserve",
        get(move || {
            let db = db.clone();
            async move {
                // One query in the span, one outside it.
                reserve_stock(&db, 7).await;
                let _ = db
                    .statement("COMMIT")
                    .run(async { Ok::<_, ()>(()) }, |_| "other")
                    .await;
                "ok"
            }
        }),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let response = reqwest::get(format!("{base}/reserve")).await.unwrap();
    assert_eq!(response.status(), 200);
    guard.shutdown().await;

    let spans = receiver.spans();
    let server = spans.iter().find(|s| s.kind == SpanKind::Server).unwrap();
    let reserve = internal(&spans, "reserve_stock");
    let update = spans.iter().find(|s| s.name == "UPDATE products").unwrap();
    let commit = spans.iter().find(|s| s.name == "COMMIT").unwrap();
    assert_eq!(reserve.parent_span_id, server.span_id);
    assert_eq!(update.kind, SpanKind::Client);
    assert_eq!(update.parent_span_id, reserve.span_id);
    assert_eq!(update.trace_id, server.trace_id);
    assert_eq!(commit.parent_span_id, server.span_id);
    assert_eq!(reserve.attr("product").and_then(|v| v.as_i64()), Some(7));
    assert!(reserve.attr("db").is_none());
}
