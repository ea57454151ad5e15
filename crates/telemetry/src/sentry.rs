//! Sentry error reporting, off unless `SENTRY_DSN` is set (and the crate's `sentry` feature is
//! on; without it a set `SENTRY_DSN` stops start-up rather than being ignored).
//!
//! The events come from the one error observation point and nowhere else: when a request ends
//! with a 5xx or a panic, `InFlight::finish` hands the same [`Failure`] that the metrics, the
//! SERVER span and the access line read to `SentryReporter::report`. 4xx answers, cancelled
//! requests and log lines are never reported.
//!
//! What an event carries, all of it already bounded and scrubbed by the facts and the
//! observation (the same PII rules as every other signal): `exception` {type = `app.error.code`,
//! value = the scrubbed detail, mechanism `panic` (unhandled) or `http.server`}, tags
//! `trace_id`, `span_id`, `request_id`, `error.type`, `error.code`, `http.request.method`,
//! `http.route` (when matched), `http.response.status_code`, `service.name`; the `trace` context
//! (trace and span id of the SERVER span); `transaction` = the span's name; `user.id` = the
//! pseudonym (`enduser.pseudo.id`), or the raw id only in `APP_PII_MODE=full`; `extra`
//! `url.path`; `release` = `service.version`, `environment` = `deployment.environment.name`;
//! fingerprint `error.type`, `error.code`, route. Never headers, query strings, bodies,
//! client addresses or raw emails.
//!
//! The request thread only copies these values into a bounded queue ([`SENTRY_QUEUE`]
//! reports) with `try_send`: when it is full the report is dropped and counted
//! (`app.telemetry.dropped{signal="sentry"}`), and the request never waits. One task on the
//! app's tokio runtime turns each report into an event with sentry-core's [`Client`]
//! (`sentry_core::Client::capture_event`, never bound to Sentry's global hub), serialises the
//! envelope and posts it to the DSN's envelope endpoint over the library's reqwest client, one
//! at a time, each within [`SENTRY_TIMEOUT`]. A failed post is counted
//! (`app.telemetry.export.failures{signal="sentry"}`) and not retried; a `429` answer's
//! `Retry-After` is honoured by dropping reports until then. Shutdown sends what is queued
//! within the shutdown budget.
//!
//! [`Failure`]: crate::layer
//! [`Client`]: https://docs.rs/sentry-core

use crate::config::{ConfigError, EnvReader, Secret};

/// Reports held for sending; beyond this the newest report is dropped and counted.
pub const SENTRY_QUEUE: usize = 64;
/// The deadline of one envelope post.
pub const SENTRY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// `SENTRY_DSN`, checked at start-up.
#[derive(Debug, Clone)]
pub struct SentryConfig {
    /// The DSN (`https://<public key>@<host>/<project id>`); never printed.
    pub dsn: Secret,
}

/// Reads `SENTRY_DSN` (unset or empty: Sentry is off).
pub(crate) fn from_env(env: &EnvReader<'_>) -> Result<Option<SentryConfig>, ConfigError> {
    let Some(dsn) = env.get("SENTRY_DSN") else {
        return Ok(None);
    };
    check_dsn(&dsn)?;
    Ok(Some(SentryConfig {
        dsn: Secret::new(dsn),
    }))
}

#[cfg(not(feature = "sentry"))]
fn check_dsn(_dsn: &str) -> Result<(), ConfigError> {
    Err(ConfigError::new(
        "SENTRY_DSN",
        "[REDACTED]",
        "unset: this build has no Sentry support (the telemetry crate's `sentry` feature is off)",
    ))
}

#[cfg(feature = "sentry")]
fn check_dsn(dsn: &str) -> Result<(), ConfigError> {
    parse_dsn(dsn).map(|_| ())
}

#[cfg(feature = "sentry")]
fn parse_dsn(dsn: &str) -> Result<sentry_core::types::Dsn, ConfigError> {
    let invalid = |why: &str| {
        ConfigError::new(
            "SENTRY_DSN",
            "[REDACTED]",
            format!("a Sentry DSN, https://<public key>@<host>/<project id> ({why})"),
        )
    };
    let parsed: sentry_core::types::Dsn = dsn.parse().map_err(|_| invalid("this is not one"))?;
    let loopback = matches!(parsed.host(), "localhost" | "127.0.0.1" | "[::1]" | "::1");
    if parsed.scheme() == sentry_core::types::Scheme::Http && !loopback {
        return Err(invalid(
            "http:// is accepted only for a loopback host; events carry error details",
        ));
    }
    Ok(parsed)
}

#[cfg(feature = "sentry")]
pub(crate) use enabled::SentryReporter;

#[cfg(not(feature = "sentry"))]
pub(crate) use disabled::SentryReporter;

/// What one failed request gives Sentry: copied on the request thread, turned into an event on
/// the sender task.
#[derive(Debug)]
#[cfg_attr(not(feature = "sentry"), allow(dead_code))]
pub(crate) struct Report {
    pub(crate) trace_id: [u8; 16],
    pub(crate) span_id: [u8; 8],
    pub(crate) request_id: std::sync::Arc<str>,
    pub(crate) method: &'static str,
    pub(crate) route: Option<std::sync::Arc<str>>,
    pub(crate) path: std::sync::Arc<str>,
    pub(crate) status: u16,
    pub(crate) kind: &'static str,
    pub(crate) code: std::borrow::Cow<'static, str>,
    /// Already scrubbed (the `Failure`'s detail).
    pub(crate) detail: String,
    pub(crate) panic: bool,
    /// The user attribute as the PII mode allows it (`enduser.pseudo.id` / `enduser.id`).
    pub(crate) user: Option<String>,
    pub(crate) time: std::time::SystemTime,
}

#[cfg(not(feature = "sentry"))]
mod disabled {
    use super::Report;

    /// Without the `sentry` feature nothing is ever reported (`SENTRY_DSN` cannot be set).
    #[derive(Debug)]
    pub(crate) enum SentryReporter {}

    impl SentryReporter {
        /// Never called: without the feature, `SENTRY_DSN` stops start-up.
        pub(crate) fn start(
            _config: &crate::config::TelemetryConfig,
            _sentry: &super::SentryConfig,
        ) -> Result<Self, String> {
            Err("this build has no Sentry support".to_owned())
        }

        pub(crate) fn report(&self, _report: Report) {
            match *self {}
        }

        pub(crate) fn stats(&self) -> (u64, u64) {
            match *self {}
        }

        pub(crate) async fn shutdown(&self, _budget: std::time::Duration) {
            match *self {}
        }
    }
}

#[cfg(feature = "sentry")]
mod enabled {
    use std::borrow::Cow;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use sentry_core::protocol::{
        Context, Event, Exception, Level, Map, Mechanism, SpanId, SpanStatus, TraceContext,
        TraceId, User,
    };
    use sentry_core::{Client, ClientOptions, Envelope, Transport};
    use tokio::sync::{Notify, mpsc};

    use super::{Report, SENTRY_QUEUE, SENTRY_TIMEOUT, SentryConfig, parse_dsn};
    use crate::config::TelemetryConfig;

    /// The request path's handle: a bounded queue to the sender task.
    #[derive(Debug)]
    pub(crate) struct SentryReporter {
        queue: mpsc::Sender<Report>,
        stats: Arc<Stats>,
        close: Arc<Notify>,
        worker: Mutex<Option<tokio::task::JoinHandle<()>>>,
    }

    #[derive(Debug, Default)]
    struct Stats {
        dropped: AtomicU64,
        failed: AtomicU64,
    }

    /// sentry-core hands the finished envelope to its transport synchronously; the sender task
    /// takes it from here right after `capture_event` returns and posts it.
    #[derive(Debug, Default)]
    struct Handover(Mutex<Vec<Envelope>>);

    impl Transport for Handover {
        fn send_envelope(&self, envelope: Envelope) {
            if let Ok(mut pending) = self.0.lock() {
                pending.push(envelope);
            }
        }
    }

    impl Handover {
        fn take(&self) -> Vec<Envelope> {
            self.0
                .lock()
                .map(|mut pending| std::mem::take(&mut *pending))
                .unwrap_or_default()
        }
    }

    impl SentryReporter {
        /// Starts the sender task on the current tokio runtime (the caller checked there is
        /// one). Fails only if the DSN, checked at start-up, no longer parses.
        pub(crate) fn start(
            config: &TelemetryConfig,
            sentry: &SentryConfig,
        ) -> Result<Self, String> {
            let dsn = parse_dsn(sentry.dsn.expose()).map_err(|e| e.to_string())?;
            let handover = Arc::new(Handover::default());
            let mut options = ClientOptions::default();
            options.dsn = Some(dsn.clone());
            options.release = Some(config.service_version.clone().into());
            options.environment = Some(config.deployment_environment.clone().into());
            options.send_default_pii = false;
            options.default_integrations = false;
            options.transport = Some(Arc::new(Arc::clone(&handover)));
            let client = Client::with_options(options);
            let user_agent = client.options().user_agent.to_string();
            let auth = dsn.to_auth(Some(&user_agent)).to_string();
            let http = reqwest::Client::builder()
                .timeout(SENTRY_TIMEOUT)
                .pool_max_idle_per_host(1)
                .build()
                .map_err(|e| format!("cannot build the Sentry HTTP client: {e}"))?;
            let (queue, receiver) = mpsc::channel(SENTRY_QUEUE);
            let stats = Arc::new(Stats::default());
            let close = Arc::new(Notify::new());
            let sender = Sender {
                client,
                handover,
                http,
                url: dsn.envelope_api_url().to_string(),
                auth,
                service: config.service_name.clone(),
                stats: Arc::clone(&stats),
                quiet_until: None,
            };
            let worker = tokio::spawn(sender.run(receiver, Arc::clone(&close)));
            Ok(Self {
                queue,
                stats,
                close,
                worker: Mutex::new(Some(worker)),
            })
        }

        /// Queues `report` without waiting; a full queue drops it (counted).
        pub(crate) fn report(&self, report: Report) {
            if self.queue.try_send(report).is_err() {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }

        /// (reports dropped, envelope posts failed) since start.
        pub(crate) fn stats(&self) -> (u64, u64) {
            (
                self.stats.dropped.load(Ordering::Relaxed),
                self.stats.failed.load(Ordering::Relaxed),
            )
        }

        /// Sends what is queued, then stops the task; gives up after `budget`.
        pub(crate) async fn shutdown(&self, budget: Duration) {
            let worker = self.worker.lock().ok().and_then(|mut w| w.take());
            let Some(worker) = worker else {
                return;
            };
            self.close.notify_one();
            let abort = worker.abort_handle();
            if tokio::time::timeout(budget, worker).await.is_err() {
                abort.abort();
            }
        }
    }

    struct Sender {
        client: Client,
        handover: Arc<Handover>,
        http: reqwest::Client,
        url: String,
        auth: String,
        service: String,
        stats: Arc<Stats>,
        /// After a `429`: reports are dropped until then.
        quiet_until: Option<Instant>,
    }

    impl Sender {
        async fn run(mut self, mut receiver: mpsc::Receiver<Report>, close: Arc<Notify>) {
            loop {
                tokio::select! {
                    biased;
                    report = receiver.recv() => match report {
                        Some(report) => self.send(report).await,
                        None => return,
                    },
                    () = close.notified() => {
                        receiver.close();
                        while let Some(report) = receiver.recv().await {
                            self.send(report).await;
                        }
                        return;
                    }
                }
            }
        }

        async fn send(&mut self, report: Report) {
            if self.quiet_until.is_some_and(|until| Instant::now() < until) {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            self.quiet_until = None;
            self.client
                .capture_event(event(report, &self.service), None);
            for envelope in self.handover.take() {
                let mut body = Vec::with_capacity(2048);
                if envelope.to_writer(&mut body).is_err() {
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let response = self
                    .http
                    .post(&self.url)
                    .header("x-sentry-auth", &self.auth)
                    .header(http::header::CONTENT_TYPE, "application/x-sentry-envelope")
                    .body(body)
                    .send()
                    .await;
                match response {
                    Ok(response) if response.status().is_success() => {}
                    Ok(response) if response.status() == http::StatusCode::TOO_MANY_REQUESTS => {
                        self.stats.failed.fetch_add(1, Ordering::Relaxed);
                        let seconds = response
                            .headers()
                            .get(http::header::RETRY_AFTER)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.trim().parse::<u64>().ok())
                            .unwrap_or(60)
                            .min(3_600);
                        self.quiet_until = Some(Instant::now() + Duration::from_secs(seconds));
                    }
                    _ => {
                        self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }

    /// The Sentry event of one failed request (see the module documentation).
    fn event(report: Report, service: &str) -> Event<'static> {
        let trace_id = hex(&report.trace_id);
        let span_id = hex(&report.span_id);
        let route = report.route.as_deref().map(str::to_owned);
        let transaction = match &route {
            Some(route) => format!("{} {route}", report.method),
            None => report.method.to_owned(),
        };
        let mut tags = Map::new();
        tags.insert("trace_id".to_owned(), trace_id);
        tags.insert("span_id".to_owned(), span_id);
        tags.insert("request_id".to_owned(), report.request_id.to_string());
        tags.insert("error.type".to_owned(), report.kind.to_owned());
        tags.insert("error.code".to_owned(), report.code.to_string());
        tags.insert("http.request.method".to_owned(), report.method.to_owned());
        if let Some(route) = &route {
            tags.insert("http.route".to_owned(), route.clone());
        }
        tags.insert(
            "http.response.status_code".to_owned(),
            report.status.to_string(),
        );
        tags.insert("service.name".to_owned(), service.to_owned());
        let mut contexts = Map::new();
        contexts.insert(
            "trace".to_owned(),
            Context::from(TraceContext {
                trace_id: TraceId::from(report.trace_id),
                span_id: SpanId::from(report.span_id),
                op: Some("http.server".to_owned()),
                status: Some(if report.panic {
                    SpanStatus::InternalError
                } else {
                    status(report.status)
                }),
                ..TraceContext::default()
            }),
        );
        let mut extra = Map::new();
        extra.insert(
            "url.path".to_owned(),
            serde_json::Value::String(report.path.to_string()),
        );
        let fingerprint: Vec<Cow<'static, str>> = vec![
            report.kind.into(),
            report.code.to_string().into(),
            route
                .clone()
                .unwrap_or_else(|| "(no route)".to_owned())
                .into(),
        ];
        Event {
            level: Level::Error,
            timestamp: report.time,
            logger: Some("telemetry".to_owned()),
            transaction: Some(transaction),
            exception: vec![Exception {
                ty: report.code.to_string(),
                value: Some(report.detail),
                mechanism: Some(Mechanism {
                    ty: if report.panic { "panic" } else { "http.server" }.to_owned(),
                    handled: Some(!report.panic),
                    ..Mechanism::default()
                }),
                ..Exception::default()
            }]
            .into(),
            tags,
            contexts,
            extra,
            fingerprint: fingerprint.into(),
            user: report.user.map(|id| User {
                id: Some(id),
                ..User::default()
            }),
            ..Event::default()
        }
    }

    fn status(status: u16) -> SpanStatus {
        match status {
            501 => SpanStatus::Unimplemented,
            503 => SpanStatus::Unavailable,
            504 => SpanStatus::DeadlineExceeded,
            _ => SpanStatus::InternalError,
        }
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(all(test, feature = "sentry"))]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn read(dsn: &str) -> Result<Option<SentryConfig>, ConfigError> {
        let dsn = dsn.to_owned();
        from_env(&EnvReader::new(move |key| {
            (key == "SENTRY_DSN").then(|| dsn.clone())
        }))
    }

    #[test]
    fn dsns_are_checked_and_never_printed() {
        assert!(read("").unwrap().is_none());
        assert!(
            read("https://abc123@o1.ingest.sentry.io/42")
                .unwrap()
                .is_some()
        );
        assert!(read("http://abc123@127.0.0.1:9000/42").unwrap().is_some());
        for bad in [
            "not a dsn",
            "https://o1.ingest.sentry.io/42",
            "http://abc123@sentry.example/42",
        ] {
            let err = read(bad).unwrap_err();
            assert_eq!(err.variable, "SENTRY_DSN", "{bad}");
            assert!(!err.to_string().contains("abc123"), "{err}");
        }
        let config = read("https://secretkey@o1.ingest.sentry.io/42").unwrap();
        assert!(!format!("{config:?}").contains("secretkey"));
    }
}
