//! No secret or raw identity that a client sends ever reaches any signal: stdout lines and
//! every exported OTLP span, metric and log are scanned for the raw values.
#![allow(clippy::unwrap_used)]

use crate::common::spawn_app;

const SECRETS: [&str; 6] = [
    "ann.secret@example.com",
    "tok_live_7f3a9c",
    "query-secret-value",
    "cookie-secret-value",
    "4111111111111111",
    "hunter2-password",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_signal_contains_what_the_client_sent_in_any_pii_mode() {
    // `full` may show raw user ids, but never secrets, query strings or raw emails either.
    for mode in ["pseudonym", "off", "full"] {
        let app = spawn_app(&[("APP_PII_MODE", mode)]).await;
        let paths = [
            "/v1/products?token=query-secret-value&email=ann.secret@example.com".to_owned(),
            "/v1/products/ann.secret@example.com".to_owned(),
            "/v1/products/4111111111111111".to_owned(),
            "/nowhere/4111111111111111?password=hunter2-password".to_owned(),
            "/v1/products/1?card=4111111111111111".to_owned(),
            "/v1/products?per_page=0&secret=query-secret-value".to_owned(),
            "/v1/me?token=query-secret-value".to_owned(),
        ];
        for path in &paths {
            let response = app
                .client
                .get(app.url(path))
                .header("authorization", "Bearer tok_live_7f3a9c")
                .header("cookie", "session=cookie-secret-value")
                .header("x-api-key", "tok_live_7f3a9c")
                .send()
                .await
                .unwrap();
            assert!(
                response.status().as_u16() < 500,
                "{path}: {}",
                response.status()
            );
        }
        let stdout = app.telemetry.log_sink().captured();
        let receiver = app.receiver.clone();
        app.guard.shutdown().await;
        assert!(
            !receiver.spans().is_empty() && !receiver.logs().is_empty(),
            "{mode}: nothing exported"
        );
        let everything = format!("{stdout}\n{}", receiver.dump_all());
        for secret in SECRETS {
            assert!(!everything.contains(secret), "{mode}: {secret} leaked");
        }
        if mode == "off" {
            assert!(
                receiver
                    .spans()
                    .iter()
                    .all(|s| s.attr("client.address").is_none())
            );
        }
    }
}

/// Records every envelope posted to a Sentry-like intake on 127.0.0.1:0; returns the DSN.
async fn recording_sentry() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use axum::routing::post;
    let envelopes = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let recorded = envelopes.clone();
    let app = axum::Router::new().route(
        "/api/{project}/envelope/",
        post(move |body: axum::body::Bytes| {
            let recorded = recorded.clone();
            async move {
                recorded
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&body).into_owned());
                "{}"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://shopkey@{address}/7"), envelopes)
}

/// The shop is built with Sentry: a checkout the provider fails (502) is one event, with the
/// request's trace id and the buyer's pseudonym, and without the email or bearer token; the
/// 4xx around it are none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_checkout_reaches_sentry_once_without_pii() {
    let (dsn, envelopes) = recording_sentry().await;
    let faults = shop::payments::simulator::Faults {
        error_rate: 1.0,
        ..Default::default()
    };
    let app = crate::common::spawn_app_with_faults(
        crate::common::Db::Sqlite,
        faults,
        &[("SENTRY_DSN", &dsn), ("PAYMENTS_BREAKER_THRESHOLD", "100")],
    )
    .await;
    let token = app.sign_up("ann.secret@example.com").await;
    // 4xx: no event.
    let unauthenticated = app
        .client
        .get(app.url("/v1/me"))
        .bearer_auth("tok_live_7f3a9c")
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
    assert_eq!(app.get("/v1/products/999999").await.status(), 404);
    let response = app
        .client
        .post(app.url("/v1/orders"))
        .bearer_auth(&token)
        .header("idempotency-key", "sentry-1")
        .json(&serde_json::json!({"items": [{"product_id": 1, "quantity": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    let receiver = app.receiver.clone();
    app.guard.shutdown().await;

    let envelopes = envelopes.lock().unwrap().clone();
    assert_eq!(envelopes.len(), 1, "{envelopes:#?}");
    let raw = &envelopes[0];
    for secret in ["ann.secret@example.com", "tok_live_7f3a9c", &token] {
        assert!(!raw.contains(secret), "{secret} leaked: {raw}");
    }
    let event: serde_json::Value = raw
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|v| v.get("exception").is_some())
        .unwrap();
    let span = receiver
        .spans()
        .into_iter()
        .find(|s| s.name == "POST /v1/orders")
        .unwrap();
    assert_eq!(event["tags"]["trace_id"], span.trace_id.as_str());
    assert_eq!(event["tags"]["error.code"], "payment.unavailable");
    assert_eq!(event["tags"]["error.type"], "unavailable");
    assert_eq!(
        event["user"]["id"],
        span.str_attr("enduser.pseudo.id").unwrap(),
        "the pseudonym, as on the span"
    );
}
