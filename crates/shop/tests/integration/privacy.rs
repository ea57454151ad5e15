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
