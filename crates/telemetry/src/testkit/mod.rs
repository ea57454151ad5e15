//! Test utilities: an in-process OTLP receiver that captures exported spans, metrics and
//! logs for assertions.
//!
//! [`OtlpReceiver::start`] binds an OTLP/gRPC and an OTLP/HTTP listener on `127.0.0.1`
//! (ephemeral ports), serves them on the current tokio runtime and converts every received
//! export request into plain owned data ([`CapturedSpan`], [`CapturedMetric`],
//! [`CapturedLog`]) at receive time.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use std::time::Duration;
//! use telemetry::testkit::OtlpReceiver;
//!
//! let receiver = OtlpReceiver::start().await?;
//! // ... point an OTLP exporter at `receiver.grpc_endpoint()` or `receiver.http_endpoint()`,
//! // run the code under test, flush the exporter ...
//! let seen = receiver
//!     .wait_for_spans(Duration::from_secs(5), |spans| {
//!         spans.iter().any(|s| s.name == "GET /items")
//!     })
//!     .await;
//! assert!(seen, "{}", receiver.dump_all());
//! # Ok(())
//! # }
//! ```
//!
//! [`OtlpReceiver::start_tls`] serves both listeners over TLS instead ([`ReceiverTls`], with
//! the committed test PKI of [`TestPki`]; optionally requiring a client certificate), so
//! exporters can be tested against `https://` endpoints.
//!
//! Compression: uncompressed and gzip requests are accepted (gRPC `grpc-encoding: gzip`, HTTP
//! `content-encoding: gzip`; collectors such as rotel always compress); any other encoding is
//! rejected. Limitations: OTLP/HTTP accepts only
//! the binary protobuf encoding (`application/json` is answered with
//! `415 Unsupported Media Type`).
//!
//! The listeners stop when the last clone of the [`OtlpReceiver`] is dropped (graceful
//! shutdown: open connections are drained) or when the runtime shuts down.
//!
//! # Fault injection
//!
//! A receiver can play a collector in trouble, switched at any time (also while requests are
//! in flight) with its setters:
//!
//! | setter | gRPC | HTTP | captured? |
//! |---|---|---|---|
//! | [`accept`](OtlpReceiver::accept) (the default) | `OK` | `200` | yes |
//! | [`count_only`](OtlpReceiver::count_only) | `OK` | `200` | counted only |
//! | [`answer_slowly`](OtlpReceiver::answer_slowly)`(delay)` | `OK` after `delay` | `200` after `delay` | yes, when answered |
//! | [`answer_unavailable`](OtlpReceiver::answer_unavailable) | `UNAVAILABLE` | `503` | counted only |
//! | [`never_answer`](OtlpReceiver::never_answer) | held | held | counted only |
//!
//! Every request is counted ([`OtlpReceiver::export_requests`]) when it arrives, whatever the
//! behaviour, so a test can tell that the exporter tried; while a request waits for its answer
//! it counts as being handled, and [`OtlpReceiver::max_concurrent_requests`] tells how many of
//! a signal were at once (how many exports a client keeps in flight). A request held by `never_answer` is
//! released, with `UNAVAILABLE` / `503`, when the behaviour is changed again or the receiver
//! is dropped. For "nothing listens at all", bind a `std::net::TcpListener` on port 0, note
//! its address and drop it.

mod grpc;
mod http;
mod model;
mod tls;

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use model::{
    AttrValue, Attributes, CapturedEvent, CapturedLink, CapturedLog, CapturedMetric, CapturedSpan,
    ExpHistogramPoint, ExportCounts, HistogramPoint, MetricData, NumberPoint, SignalCounts,
    SpanKind, StatusCode, SummaryPoint,
};
pub use tls::{ReceiverTls, TestPki, TlsListener};

/// Interval between two checks of the `wait_for_*` predicates.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Largest accepted export request body, for both transports.
pub(crate) const MAX_REQUEST_BYTES: usize = 64 * 1024 * 1024;

/// An in-process OTLP receiver (gRPC and HTTP/protobuf) capturing every exported signal.
///
/// Cloning is cheap and yields another handle to the same receiver; the listeners stop when
/// the last handle is dropped.
#[derive(Clone)]
pub struct OtlpReceiver {
    inner: Arc<Inner>,
}

/// State owned by the handles only (the served tasks hold just [`Shared`]), so that dropping
/// the last handle drops `shutdown` and thereby stops the servers.
struct Inner {
    shared: Arc<Shared>,
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    /// `http` or `https`.
    scheme: &'static str,
    /// Dropping the sender completes [`shutdown_signal`] in both server tasks.
    _shutdown: watch::Sender<()>,
}

impl OtlpReceiver {
    /// Binds gRPC and HTTP listeners on `127.0.0.1:0` and serves them on the current tokio
    /// runtime.
    ///
    /// # Panics
    ///
    /// Panics if called outside a tokio runtime.
    pub async fn start() -> std::io::Result<OtlpReceiver> {
        Self::start_with(None).await
    }

    /// Like [`OtlpReceiver::start`], serving both listeners over TLS with `tls`: the endpoints
    /// are `https://127.0.0.1:PORT`. A client that does not trust the certificate (or, with
    /// [`ReceiverTls::require_client_certificate`], presents none) fails its handshake, and
    /// nothing it sent is counted or captured.
    ///
    /// # Panics
    ///
    /// Panics if called outside a tokio runtime.
    pub async fn start_tls(tls: ReceiverTls) -> std::io::Result<OtlpReceiver> {
        Self::start_with(Some(tls)).await
    }

    async fn start_with(tls: Option<ReceiverTls>) -> std::io::Result<OtlpReceiver> {
        if let Some(tls) = &tls {
            // Invalid files fail here, not in the served tasks.
            tls.server_config()?;
        }
        let localhost = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let grpc_listener = TcpListener::bind(localhost).await?;
        let http_listener = TcpListener::bind(localhost).await?;
        let grpc_addr = grpc_listener.local_addr()?;
        let http_addr = http_listener.local_addr()?;

        let shared = Arc::new(Shared::default());
        let (shutdown, shutdown_rx) = watch::channel(());
        let grpc_tls = tls.as_ref().map(|tls| {
            let mut config = tonic::transport::ServerTlsConfig::new().identity(
                tonic::transport::Identity::from_pem(&tls.certificate, &tls.key),
            );
            if let Some(ca) = &tls.client_ca {
                config = config.client_ca_root(tonic::transport::Certificate::from_pem(ca));
            }
            config
        });
        tokio::spawn(grpc::serve(
            grpc_listener,
            grpc_tls,
            Arc::clone(&shared),
            shutdown_signal(shutdown_rx.clone()),
        ));
        match &tls {
            None => {
                tokio::spawn(http::serve(
                    http_listener,
                    Arc::clone(&shared),
                    shutdown_signal(shutdown_rx),
                ));
            }
            Some(tls) => {
                tokio::spawn(http::serve(
                    TlsListener::new(http_listener, tls)?,
                    Arc::clone(&shared),
                    shutdown_signal(shutdown_rx),
                ));
            }
        }

        Ok(OtlpReceiver {
            inner: Arc::new(Inner {
                shared,
                grpc_addr,
                http_addr,
                scheme: if tls.is_some() { "https" } else { "http" },
                _shutdown: shutdown,
            }),
        })
    }

    /// Stops capturing: requests are still decoded, counted ([`OtlpReceiver::export_requests`])
    /// and answered with success, but nothing is kept. For load tests and benchmarks, where
    /// storing every signal would cost more than producing it.
    pub fn count_only(&self) {
        self.inner.shared.set_behaviour(Behaviour::CountOnly);
    }

    /// Back to normal (the initial behaviour): capture every request and answer success at
    /// once. After a fault, this is the collector's recovery; requests held by
    /// [`never_answer`](Self::never_answer) are released with an error.
    pub fn accept(&self) {
        self.inner.shared.set_behaviour(Behaviour::Accept);
    }

    /// A slow collector: every request is answered with success (and captured) `delay` after
    /// it arrived. Requests are served concurrently, so this does not serialise them.
    pub fn answer_slowly(&self, delay: Duration) {
        self.inner.shared.set_behaviour(Behaviour::Slow(delay));
    }

    /// A collector that is up but refusing work: every request is counted and answered at
    /// once with gRPC status `UNAVAILABLE` or HTTP `503 Service Unavailable`, and not captured.
    pub fn answer_unavailable(&self) {
        self.inner.shared.set_behaviour(Behaviour::Unavailable);
    }

    /// A hung collector: connections are accepted and every request is read, counted and then
    /// held without an answer, until the behaviour is changed again or the receiver is dropped
    /// (then it is answered `UNAVAILABLE` / `503`). Nothing is captured. The exporter sees
    /// only its own timeout.
    pub fn never_answer(&self) {
        self.inner.shared.set_behaviour(Behaviour::NeverAnswer);
    }

    /// The OTLP/gRPC endpoint, `http://127.0.0.1:PORT` (`https://` when started with
    /// [`OtlpReceiver::start_tls`]; serves `TraceService`, `MetricsService` and `LogsService`).
    pub fn grpc_endpoint(&self) -> String {
        format!("{}://{}", self.inner.scheme, self.inner.grpc_addr)
    }

    /// The OTLP/HTTP base endpoint, `http://127.0.0.1:PORT` (`https://` when started with
    /// [`OtlpReceiver::start_tls`]; serves `POST /v1/traces`, `/v1/metrics` and `/v1/logs`
    /// with `content-type: application/x-protobuf`).
    pub fn http_endpoint(&self) -> String {
        format!("{}://{}", self.inner.scheme, self.inner.http_addr)
    }

    /// Every captured span, in arrival order.
    pub fn spans(&self) -> Vec<CapturedSpan> {
        self.store().spans.clone()
    }

    /// Every metric from every export request, in arrival order (a metric exported
    /// periodically appears once per export).
    pub fn metrics(&self) -> Vec<CapturedMetric> {
        self.store().metrics.clone()
    }

    /// Every captured log record, in arrival order.
    pub fn logs(&self) -> Vec<CapturedLog> {
        self.store().logs.clone()
    }

    /// The latest data point of every metric stream, one entry per stream.
    ///
    /// A stream is identified by (metric name, point attribute set); each returned
    /// [`CapturedMetric`] holds exactly one data point, taken from the last export that
    /// contained the stream, together with that export's metadata, resource and scope.
    /// Entries are ordered by the first appearance of their stream. With cumulative
    /// temporality this is the current value of each stream, and `len()` counts the series;
    /// with delta temporality the point is only the last delta, not an accumulation.
    pub fn latest_metric_points(&self) -> Vec<CapturedMetric> {
        let metrics = self.metrics();
        let mut index: HashMap<(String, String), usize> = HashMap::new();
        let mut latest: Vec<CapturedMetric> = Vec::new();
        for point in metrics.iter().flat_map(CapturedMetric::split_points) {
            // `Attributes` is a `BTreeMap`, so its `Debug` rendering is canonical.
            let attributes = point
                .point_attribute_sets()
                .first()
                .map(|a| format!("{a:?}"))
                .unwrap_or_default();
            match index.entry((point.name.clone(), attributes)) {
                Entry::Occupied(slot) => latest[*slot.get()] = point,
                Entry::Vacant(slot) => {
                    slot.insert(latest.len());
                    latest.push(point);
                }
            }
        }
        latest
    }

    /// How many export requests were received, per signal and per transport.
    pub fn export_requests(&self) -> ExportCounts {
        self.store().counts
    }

    /// The most export requests of each signal (both transports together) that were being
    /// handled at once, arrived and not yet answered, since the start or the last
    /// [`clear`](Self::clear). With [`answer_slowly`](Self::answer_slowly) or
    /// [`never_answer`](Self::never_answer), how many exports a client keeps in flight.
    pub fn max_concurrent_requests(&self) -> SignalCounts {
        self.store().most_handled
    }

    /// Every captured export request rendered as text, in arrival order: the `Debug` output
    /// of the decoded protobuf messages, including resource and scope attributes and every
    /// attribute value, one request per block.
    ///
    /// Meant for "this raw value must never appear anywhere" scans. Note that `Debug`
    /// escapes quotes, backslashes and control characters in strings, and renders bytes
    /// (including trace and span ids) as decimal arrays.
    pub fn dump_all(&self) -> String {
        self.store().dumps.join("\n")
    }

    /// Forgets every captured signal, dump and request count.
    pub fn clear(&self) {
        *self.store() = Store::default();
    }

    /// Polls every 20 ms until `pred(&captured_spans)` holds or `timeout` passes; returns
    /// whether it held.
    pub async fn wait_for_spans(
        &self,
        timeout: Duration,
        pred: impl Fn(&[CapturedSpan]) -> bool,
    ) -> bool {
        poll_until(timeout, || pred(&self.spans())).await
    }

    /// Polls every 20 ms until `pred(&captured_logs)` holds or `timeout` passes; returns
    /// whether it held.
    pub async fn wait_for_logs(
        &self,
        timeout: Duration,
        pred: impl Fn(&[CapturedLog]) -> bool,
    ) -> bool {
        poll_until(timeout, || pred(&self.logs())).await
    }

    /// Polls every 20 ms until `pred(&captured_metrics)` holds or `timeout` passes; returns
    /// whether it held. The predicate sees [`metrics`](Self::metrics), i.e. every export.
    pub async fn wait_for_metrics(
        &self,
        timeout: Duration,
        pred: impl Fn(&[CapturedMetric]) -> bool,
    ) -> bool {
        poll_until(timeout, || pred(&self.metrics())).await
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        self.inner.shared.store()
    }
}

impl fmt::Debug for OtlpReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpReceiver")
            .field("grpc_addr", &self.inner.grpc_addr)
            .field("http_addr", &self.inner.http_addr)
            .field("export_requests", &self.export_requests())
            .finish_non_exhaustive()
    }
}

/// Checks `cond` immediately, then every [`POLL_INTERVAL`] until it holds or `timeout`
/// passes (with a last check at the deadline).
async fn poll_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return false;
        }
        tokio::time::sleep(POLL_INTERVAL.min(deadline - now)).await;
    }
}

/// Completes when the sender side (held by [`Inner`]) is dropped.
async fn shutdown_signal(mut rx: watch::Receiver<()>) {
    while rx.changed().await.is_ok() {}
}

/// The transport an export request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    Grpc,
    Http,
}

/// A decoded export request, of any signal.
#[derive(Debug)]
pub(crate) enum ExportRequest {
    Traces(ExportTraceServiceRequest),
    Metrics(ExportMetricsServiceRequest),
    Logs(ExportLogsServiceRequest),
}

/// How the receiver currently treats export requests (the fault-injection hook): each
/// variant has a setter on [`OtlpReceiver`], is decided in [`Shared::receive`] and mapped to a
/// wire response by each transport from [`Outcome`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Behaviour {
    /// Capture every request and answer success.
    #[default]
    Accept,
    /// Count every request and answer success, keeping nothing (for load and benchmarks).
    CountOnly,
    /// Wait this long, then capture and answer success.
    Slow(Duration),
    /// Answer `UNAVAILABLE` / 503 at once, capturing nothing.
    Unavailable,
    /// Hold the request until the behaviour changes or the receiver stops.
    NeverAnswer,
}

/// What a transport must answer to one export request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Answer success with an empty `Export*ServiceResponse`.
    Accepted,
    /// Answer gRPC `UNAVAILABLE` / HTTP 503.
    Unavailable,
}

/// State shared between the handles and the served tasks.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    store: Mutex<Store>,
    behaviour: Mutex<Behaviour>,
    /// Woken whenever the behaviour changes or the receiver stops (releases held requests).
    changed: tokio::sync::Notify,
    stopped: std::sync::atomic::AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Release held requests, so the graceful shutdown of the listeners can complete.
        self.shared
            .stopped
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.shared.changed.notify_waiters();
    }
}

impl Shared {
    fn store(&self) -> MutexGuard<'_, Store> {
        // A panicking test thread must not hide the captured data from the others.
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn behaviour(&self) -> Behaviour {
        *self
            .behaviour
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn set_behaviour(&self, behaviour: Behaviour) {
        *self
            .behaviour
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = behaviour;
        self.changed.notify_waiters();
    }

    /// Counts one decoded export request and, depending on the current [`Behaviour`],
    /// captures it; returns (possibly much later) what the transport must answer.
    pub(crate) async fn receive(&self, transport: Transport, request: ExportRequest) -> Outcome {
        let behaviour = self.behaviour();
        self.store().count(transport, &request);
        let _handling = Handling::start(self, &request);
        match behaviour {
            Behaviour::Accept => {
                self.store().capture(transport, request);
                Outcome::Accepted
            }
            Behaviour::CountOnly => Outcome::Accepted,
            Behaviour::Slow(delay) => {
                tokio::time::sleep(delay).await;
                self.store().capture(transport, request);
                Outcome::Accepted
            }
            Behaviour::Unavailable => Outcome::Unavailable,
            Behaviour::NeverAnswer => {
                loop {
                    let changed = self.changed.notified();
                    if self.behaviour() != Behaviour::NeverAnswer
                        || self.stopped.load(std::sync::atomic::Ordering::SeqCst)
                    {
                        break;
                    }
                    changed.await;
                }
                Outcome::Unavailable
            }
        }
    }
}

/// One request being handled (arrived, not yet answered), counted in [`Store::handled`]
/// until dropped (answered, or its connection gone).
struct Handling<'a> {
    shared: &'a Shared,
    /// 1 for the request's signal, 0 for the others.
    one: SignalCounts,
}

impl<'a> Handling<'a> {
    fn start(shared: &'a Shared, request: &ExportRequest) -> Self {
        let mut one = SignalCounts::default();
        match request {
            ExportRequest::Traces(_) => one.traces = 1,
            ExportRequest::Metrics(_) => one.metrics = 1,
            ExportRequest::Logs(_) => one.logs = 1,
        }
        let mut store = shared.store();
        let store = &mut *store;
        store.handled.traces += one.traces;
        store.handled.metrics += one.metrics;
        store.handled.logs += one.logs;
        store.most_handled.traces = store.most_handled.traces.max(store.handled.traces);
        store.most_handled.metrics = store.most_handled.metrics.max(store.handled.metrics);
        store.most_handled.logs = store.most_handled.logs.max(store.handled.logs);
        Self { shared, one }
    }
}

impl Drop for Handling<'_> {
    fn drop(&mut self) {
        let mut store = self.shared.store();
        // `clear` may have reset the count meanwhile.
        store.handled.traces = store.handled.traces.saturating_sub(self.one.traces);
        store.handled.metrics = store.handled.metrics.saturating_sub(self.one.metrics);
        store.handled.logs = store.handled.logs.saturating_sub(self.one.logs);
    }
}

/// Everything captured so far.
#[derive(Debug, Default)]
struct Store {
    spans: Vec<CapturedSpan>,
    metrics: Vec<CapturedMetric>,
    logs: Vec<CapturedLog>,
    /// `Debug` text of every captured request, for [`OtlpReceiver::dump_all`].
    dumps: Vec<String>,
    counts: ExportCounts,
    /// Requests being handled now, and the most at once.
    handled: SignalCounts,
    most_handled: SignalCounts,
}

impl Store {
    fn count(&mut self, transport: Transport, request: &ExportRequest) {
        let counts = match transport {
            Transport::Grpc => &mut self.counts.grpc,
            Transport::Http => &mut self.counts.http,
        };
        match request {
            ExportRequest::Traces(_) => counts.traces += 1,
            ExportRequest::Metrics(_) => counts.metrics += 1,
            ExportRequest::Logs(_) => counts.logs += 1,
        }
    }

    fn capture(&mut self, transport: Transport, request: ExportRequest) {
        self.dumps.push(format!("{transport:?} {request:?}"));
        match &request {
            ExportRequest::Traces(request) => {
                self.spans.extend(model::spans_from_request(request));
            }
            ExportRequest::Metrics(request) => {
                self.metrics.extend(model::metrics_from_request(request));
            }
            ExportRequest::Logs(request) => {
                self.logs.extend(model::logs_from_request(request));
            }
        }
    }
}

/// Installs, once per process, a global `tracing` subscriber that routes every event to the
/// telemetry instance serving the current request ([`crate::TelemetryLogLayer::requests_only`]),
/// so tests running several instances side by side each see only their own log lines.
pub fn install_test_subscriber() {
    use tracing_subscriber::layer::SubscriberExt;
    static INSTALLED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    INSTALLED.get_or_init(|| {
        let subscriber =
            tracing_subscriber::registry().with(crate::TelemetryLogLayer::requests_only());
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
}
