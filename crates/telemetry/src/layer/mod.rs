//! The tower layer that observes every request: request id, W3C trace context, SERVER span,
//! request-scoped logging context, RED metrics, one access line, the single error observation,
//! and panic recovery. One layer, one future per request, so the whole lifecycle costs a few
//! microseconds.
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use telemetry::{Telemetry, TelemetryConfig};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let (telemetry, guard) = Telemetry::init(TelemetryConfig::from_env("my-svc", "1.0.0")?)?;
//! telemetry.install_global_subscriber();
//! let app: Router = telemetry.observe_router(Router::new().route("/hello", get(|| async { "hi" })));
//! # drop(app); guard.shutdown().await; Ok(()) }
//! ```

pub mod request_id;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Instant, SystemTime};

use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath};
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt as _;
use futures_util::future::CatchUnwind;
use http::{HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body::Body as _;
use opentelemetry::KeyValue;
use std::borrow::Cow;
use tracing::Level;

use crate::config::IncomingTrace;
use crate::context::{RequestContext, Scoped, enter, scope};
use crate::error::{ErrorKind, ErrorObservation};
use crate::log_format::{FieldValue, HttpRequestLog, LogLine};
use crate::metrics::RouteInstruments;
use crate::pii::scrub;
use crate::pipeline::TelemetryInner;
use crate::server_span::ServerSpan;
use crate::trace_context::{TRACEPARENT, extract_headers, format_traceparent};
use request_id::{REQUEST_ID_HEADER, generate_request_id, is_valid_request_id};

/// Longest `url.path` recorded (longer paths are cut at a character boundary).
pub const MAX_PATH_LEN: usize = 1024;
/// Longest `user_agent.original` recorded.
pub const MAX_USER_AGENT_LEN: usize = 256;
/// Longest `server.address` recorded.
pub const MAX_HOST_LEN: usize = 255;

/// Applies the telemetry middleware (see the module docs). Build it with
/// [`crate::Telemetry::layer`] or use [`crate::Telemetry::observe_router`].
#[derive(Debug, Clone)]
pub struct TelemetryLayer {
    inner: Arc<TelemetryInner>,
}

impl TelemetryLayer {
    pub(crate) fn new(inner: Arc<TelemetryInner>) -> Self {
        Self { inner }
    }
}

impl<S> tower::Layer<S> for TelemetryLayer {
    type Service = TelemetryService<S>;

    fn layer(&self, service: S) -> Self::Service {
        TelemetryService {
            service,
            telemetry: Arc::clone(&self.inner),
            instruments: Arc::default(),
        }
    }
}

/// The service [`TelemetryLayer`] wraps around each route.
#[derive(Debug, Clone)]
pub struct TelemetryService<S> {
    service: S,
    telemetry: Arc<TelemetryInner>,
    instruments: Arc<RouteInstruments>,
}

impl<S> tower::Service<Request<Body>> for TelemetryService<S>
where
    S: tower::Service<Request<Body>, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.service.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let started = Instant::now();
        let start_time = SystemTime::now();

        let telemetry = &self.telemetry;
        let headers = request.headers();

        let request_id: Arc<str> = match headers.get(&REQUEST_ID) {
            Some(value) if is_valid_request_id(value.as_bytes()) => {
                Arc::from(String::from_utf8_lossy(value.as_bytes()).as_ref())
            }
            _ => generate_request_id(),
        };
        let remote = extract_headers(headers);

        let method = request.method();
        let method_name = known_method(method);
        let route: Option<Arc<str>> = request
            .extensions()
            .get::<MatchedPath>()
            .map(|matched| self.instruments.route(matched.as_str()));
        // Bounded before scrubbing (the scan is linear in what it reads) and after it (a
        // redaction marker can be longer than what it replaces).
        let scrubbed = scrub(bounded(request.uri().path(), MAX_PATH_LEN));
        let path: Arc<str> = Arc::from(bounded(&scrubbed, MAX_PATH_LEN));
        let user_agent: Option<Arc<str>> = headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| Arc::from(bounded(ua, MAX_USER_AGENT_LEN)));
        let client_address: Option<Arc<str>> = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .and_then(|ConnectInfo(addr)| telemetry.pii.client_address(addr.ip()))
            .map(Arc::from);

        // SERVER span, per the HTTP semantic conventions.
        // Unknown methods are named `HTTP` (semantic conventions), never by the raw method.
        let span_method = if method_name == "_OTHER" {
            "HTTP"
        } else {
            method_name
        };
        let name = match &route {
            Some(route) => concat(&[span_method, " ", route]),
            None => span_method.to_owned(),
        };
        let mut attributes = Vec::with_capacity(14);
        attributes.push(KeyValue::new("http.request.method", method_name));
        if method_name == "_OTHER" {
            attributes.push(KeyValue::new(
                "http.request.method_original",
                bounded(method.as_str(), 32).to_owned(),
            ));
        }
        if let Some(route) = &route {
            attributes.push(KeyValue::new("http.route", Arc::clone(route)));
        }
        attributes.push(KeyValue::new("url.path", Arc::clone(&path)));
        attributes.push(KeyValue::new("url.scheme", "http"));
        if let Some(host) = headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
        {
            let host = host.rsplit_once(':').map_or(host, |(h, port)| {
                if port.bytes().all(|b| b.is_ascii_digit()) {
                    h
                } else {
                    host
                }
            });
            attributes.push(KeyValue::new(
                "server.address",
                bounded(host, MAX_HOST_LEN).to_owned(),
            ));
        }
        if let Some(address) = &client_address {
            attributes.push(KeyValue::new("client.address", Arc::clone(address)));
        }
        if let Some(ua) = &user_agent {
            attributes.push(KeyValue::new("user_agent.original", Arc::clone(ua)));
        }
        attributes.push(KeyValue::new(
            "http.request.header.x-request-id",
            Arc::clone(&request_id),
        ));

        let (parent, link) = match (remote, telemetry.config.incoming_trace) {
            (Some(remote), IncomingTrace::Continue) => (Some(remote), None),
            (Some(remote), IncomingTrace::Link) => (None, Some(remote)),
            (None, _) => (None, None),
        };
        let span = ServerSpan::start(
            telemetry.config.sampler,
            parent.as_ref(),
            link,
            name,
            start_time,
            attributes,
        );

        let context = Arc::new(RequestContext::new(
            Arc::clone(telemetry),
            &span.context,
            request_id,
        ));
        request.extensions_mut().insert(Arc::clone(&context));

        telemetry.http.active(method_name).add(1);
        // Created before the inner call so the gauge comes back down however the request ends
        // (completion, client disconnect dropping the future, or a panic inside `call`).
        let active = ActiveRequest {
            telemetry: Arc::clone(telemetry),
            method: method_name,
        };

        // EAGER: the context is current before any inner code runs, including `call`.
        let future = {
            let _entered = enter(&context);
            self.service.call(request)
        };
        ResponseFuture {
            future: AssertUnwindSafe(scope(Arc::clone(&context), future)).catch_unwind(),
            state: Some(Finish {
                span: SpanGuard {
                    span: Some(span),
                    telemetry: Arc::clone(&context.telemetry),
                },
                context,
                started,
                start_time,
                method: method_name,
                route,
                path,
                user_agent,
                client_address,
                active,
                instruments: Arc::clone(&self.instruments),
            }),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`TelemetryService`].
    pub struct ResponseFuture<F> {
        #[pin]
        future: CatchUnwind<AssertUnwindSafe<Scoped<F>>>,
        state: Option<Finish>,
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

struct Finish {
    context: Arc<RequestContext>,
    span: SpanGuard,
    started: Instant,
    start_time: SystemTime,
    method: &'static str,
    route: Option<Arc<str>>,
    path: Arc<str>,
    user_agent: Option<Arc<str>>,
    client_address: Option<Arc<str>>,
    active: ActiveRequest,
    instruments: Arc<RouteInstruments>,
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let outcome = match this.future.poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(outcome) => outcome,
        };
        let (mut response, panic) = match outcome {
            Ok(Ok(response)) => (response, None),
            Ok(Err(never)) => match never {},
            Err(payload) => (panic_response(), Some(panic_message(payload.as_ref()))),
        };
        if let Some(state) = this.state.take() {
            state.finish(&mut response, panic);
        }
        Poll::Ready(Ok(response))
    }
}

/// Decrements `http.server.active_requests` when the request ends, also when its future is
/// dropped because the client went away.
struct ActiveRequest {
    telemetry: Arc<TelemetryInner>,
    method: &'static str,
}

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        self.telemetry.http.active(self.method).add(-1);
    }
}

/// Holds the SERVER span until the request finishes. A request whose future is dropped (the
/// client went away) still exports its span, marked `error.type=cancelled`.
struct SpanGuard {
    span: Option<ServerSpan>,
    telemetry: Arc<TelemetryInner>,
}

impl SpanGuard {
    fn take(&mut self) -> ServerSpan {
        match self.span.take() {
            Some(span) => span,
            None => unreachable!("the span is taken once, by Finish::finish"),
        }
    }
}

impl Drop for SpanGuard {
    fn drop(&mut self) {
        if let Some(mut span) = self.span.take() {
            span.attributes
                .push(KeyValue::new("error.type", "cancelled"));
            export_span(&self.telemetry, &span, SystemTime::now());
        }
    }
}

/// Encodes a finished SERVER span into the export queue (when sampled and export is on).
fn export_span(telemetry: &TelemetryInner, span: &ServerSpan, end: SystemTime) {
    if let (true, Some(queue)) = (span.is_sampled(), &telemetry.span_queue) {
        queue.push(crate::SCOPE_NAME, |w| span.encode(w, end));
    }
}

impl Finish {
    fn finish(self, response: &mut Response, panic: Option<String>) {
        let Finish {
            context,
            span: mut span_guard,
            started,
            start_time,
            method,
            route,
            path,
            user_agent,
            client_address,
            active,
            instruments,
        } = self;
        let telemetry = &context.telemetry;
        let status = response.status();
        let failure = match panic {
            Some(message) => Some(ErrorObservation::new(
                ErrorKind::Panic,
                "handler.panic",
                message,
            )),
            None if status.as_u16() >= 400 => Some(
                response
                    .extensions_mut()
                    .remove::<ErrorObservation>()
                    .unwrap_or_else(|| ErrorObservation::from_status(status, route.is_some())),
            ),
            None => None,
        };

        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&context.request_id) {
            headers.insert(REQUEST_ID.clone(), value);
        }
        let traceparent = format_traceparent(context.trace_id, context.span_id, context.flags);
        if let Ok(value) = HeaderValue::from_bytes(&traceparent) {
            headers.insert(TRACEPARENT.clone(), value);
        }
        let response_size = response.body().size_hint().exact();

        // RED metrics.
        let elapsed = started.elapsed();
        let seconds = elapsed.as_secs_f64();
        let status_code = i64::from(status.as_u16());
        instruments.record_duration(
            &telemetry.http,
            seconds,
            method,
            status.as_u16(),
            failure.as_ref().map(|f| f.kind),
            route.as_ref(),
        );
        drop(active);

        // The single error observation: counter, span status + exception event, log level.
        let detail = failure.as_ref().map(|f| scrub(&f.detail).into_owned());
        if let Some(failure) = &failure {
            let kind = KeyValue::new("error.type", failure.kind.as_str());
            match &route {
                Some(route) => telemetry
                    .http
                    .errors
                    .add(1, &[kind, KeyValue::new("http.route", Arc::clone(route))]),
                None => telemetry.http.errors.add(1, &[kind]),
            }
        }

        let mut span = span_guard.take();
        span.attributes
            .push(KeyValue::new("http.response.status_code", status_code));
        if let Some((key, value)) = context.user.get() {
            span.attributes.push(KeyValue::new(*key, value.clone()));
        }
        if let Some(failure) = &failure {
            span.attributes
                .push(KeyValue::new("error.type", failure.kind.as_str()));
            span.attributes
                .push(KeyValue::new("app.error.code", failure.code.clone()));
            if status.is_server_error() {
                span.exception = Some((
                    SystemTime::now(),
                    vec![
                        KeyValue::new("exception.type", failure.code.clone()),
                        KeyValue::new("exception.message", detail.clone().unwrap_or_default()),
                    ],
                ));
                span.error = Some(failure.code.to_string());
            }
        }
        let now = start_time + elapsed;
        export_span(telemetry, &span, now);

        // Exactly one access line (successful requests on excluded routes are skipped).
        let excluded = failure.is_none()
            && route
                .as_deref()
                .is_some_and(|r| telemetry.config.access_log_exclude.iter().any(|e| e == r));
        if excluded {
            return;
        }
        let level = match status.as_u16() {
            500.. => Level::ERROR,
            400.. => Level::WARN,
            _ => Level::INFO,
        };
        let message = concat(&[
            method,
            " ",
            route.as_deref().unwrap_or(&path),
            " ",
            status.as_str(),
        ]);
        let duration_ms = elapsed.as_secs_f64() * 1000.0;
        let mut fields = [("", FieldValue::Bool(false)); 14];
        let mut count = 0;
        macro_rules! push {
            ($key:expr, $value:expr $(,)?) => {{
                fields[count] = ($key, $value);
                count += 1;
            }};
        }
        push!("method", FieldValue::Static(method));
        match &route {
            Some(route) => push!("route", FieldValue::Shared(route)),
            None => push!("route", FieldValue::Static("")),
        }
        push!("path", FieldValue::Shared(&path));
        push!("status", FieldValue::U64(u64::from(status.as_u16())));
        push!("duration_ms", FieldValue::F64(duration_ms));
        if let Some(size) = response_size {
            push!("response_size", FieldValue::U64(size));
        }
        if let Some(address) = &client_address {
            push!("client.address", FieldValue::Shared(address));
        }
        if let Some(ua) = &user_agent {
            push!("user_agent.original", FieldValue::Shared(ua));
        }
        if let Some((key, value)) = context.user.get() {
            push!(key, FieldValue::Str(value));
        }
        if let Some(failure) = &failure {
            push!("error.type", FieldValue::Static(failure.kind.as_str()));
            push!(
                "error.code",
                match &failure.code {
                    Cow::Borrowed(code) => FieldValue::Static(code),
                    Cow::Owned(code) => FieldValue::Str(code),
                },
            );
            if let Some(detail) = &detail {
                push!("error.message", FieldValue::Str(detail));
            }
        }
        let fields = &fields[..count];
        let line = LogLine {
            time: now,
            level,
            target: "access",
            message: &message,
            correlation: Some(crate::logs::correlation(&context)),
            fields,
            http: Some(HttpRequestLog {
                method,
                path: &path,
                status: status.as_u16(),
                response_size,
                user_agent: user_agent.as_deref().unwrap_or(""),
                remote_ip: client_address.as_deref(),
                latency_secs: seconds,
            }),
        };
        crate::logs::emit_access(telemetry, &context, &line);
    }
}

static REQUEST_ID: HeaderName = HeaderName::from_static(REQUEST_ID_HEADER);

fn known_method(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

/// Concatenation without the formatting machinery.
fn concat(parts: &[&str]) -> String {
    let mut out = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for part in parts {
        out.push_str(part);
    }
    out
}

/// `s` cut to at most `max` bytes at a character boundary.
fn bounded(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

/// The JSON error body every failure shares: `{"error": {"kind", "code", "message"}}`.
pub fn error_body(kind: &str, code: &str, message: &str) -> String {
    let mut out = Vec::with_capacity(96);
    out.extend_from_slice(b"{\"error\":{\"kind\":");
    crate::log_format::json_str(&mut out, kind);
    out.extend_from_slice(b",\"code\":");
    crate::log_format::json_str(&mut out, code);
    out.extend_from_slice(b",\"message\":");
    crate::log_format::json_str(&mut out, message);
    out.extend_from_slice(b"}}");
    String::from_utf8(out).unwrap_or_default()
}

fn panic_response() -> Response {
    json_error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "handler.panic",
        "internal server error",
    )
}

fn json_error_response(status: StatusCode, kind: &str, code: &str, message: &str) -> Response {
    (
        status,
        [(http::header::CONTENT_TYPE, "application/json")],
        error_body(kind, code, message),
    )
        .into_response()
}

/// A fallback for a known path with a method it does not serve, answering 405 with the JSON
/// error body (`route.method_not_allowed`). Use with `Router::method_not_allowed_fallback`.
pub async fn method_not_allowed_fallback() -> Response {
    let mut response = json_error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "not_found",
        "route.method_not_allowed",
        "this path does not accept this method",
    );
    response.extensions_mut().insert(ErrorObservation::new(
        ErrorKind::NotFound,
        "route.method_not_allowed",
        "no handler for this method on the matched path",
    ));
    response
}

/// A fallback for unmatched routes answering 404 with the JSON error body
/// (`route.not_found`). Use with `Router::fallback`.
pub async fn not_found_fallback() -> Response {
    let mut response = json_error_response(
        StatusCode::NOT_FOUND,
        "not_found",
        "route.not_found",
        "no such route",
    );
    response.extensions_mut().insert(ErrorObservation::new(
        ErrorKind::NotFound,
        "route.not_found",
        "no route matches the request path",
    ));
    response
}
