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

mod access_log;
pub mod client_address;
mod error_observation;
pub(crate) mod facts;
mod fallback;
pub mod request_id;
mod request_metrics;
pub(crate) mod server_span;

use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use axum::body::Body;
use axum::response::Response;
use futures_util::FutureExt as _;
use futures_util::future::CatchUnwind;
use http::{HeaderName, HeaderValue, Request};
use http_body::Body as _;

use crate::config::{IncomingTrace, SamplerConfig, TelemetryConfig};
use crate::context::{RequestContext, Scoped, enter, scope};
use crate::exemplars::SpanRef;
use crate::log_emitter::LogEmitter;
use crate::metrics::{HttpServerInstruments, RouteInstruments};
use crate::otlp::queue::RecordPusher;
use crate::sentry::{Report, SentryReporter};
use crate::trace_context::{TRACEPARENT, extract_headers, traceparent_from_hex};
use facts::{Outcome, RequestFacts, Started};
use request_id::REQUEST_ID_HEADER;
use request_metrics::ActiveRequest;
use server_span::ServerSpan;

pub use facts::{MAX_HOST_LEN, MAX_METHOD_LEN, MAX_PATH_LEN, MAX_USER_AGENT_LEN};
pub use fallback::{ErrorBody, error_body, method_not_allowed_fallback, not_found_fallback};

/// What the middleware needs of its telemetry instance, and nothing else.
#[derive(Debug)]
pub(crate) struct LayerHandles {
    sampler: SamplerConfig,
    incoming_trace: IncomingTrace,
    access_log_exclude: Vec<String>,
    proxies: client_address::TrustedProxies,
    /// Routes whose requests are not traced (`APP_PROBE_ROUTES` unless `APP_TRACE_PROBES=on`).
    untraced_routes: Vec<String>,
    http: Arc<HttpServerInstruments>,
    /// The span queue (SERVER spans), when export is on.
    spans: Option<RecordPusher>,
    /// Where access lines and the request's events go.
    logs: Arc<LogEmitter>,
    /// Where 5xx and panics are reported, when `SENTRY_DSN` is set.
    sentry: Option<Arc<SentryReporter>>,
}

impl LayerHandles {
    /// The HTTP server instruments (and their exemplars), for `/metrics`.
    pub(crate) fn http(&self) -> &HttpServerInstruments {
        &self.http
    }

    pub(crate) fn new(
        config: &TelemetryConfig,
        http: Arc<HttpServerInstruments>,
        spans: Option<RecordPusher>,
        logs: Arc<LogEmitter>,
        sentry: Option<Arc<SentryReporter>>,
    ) -> Self {
        Self {
            sampler: config.sampler,
            incoming_trace: config.incoming_trace,
            access_log_exclude: config.access_log_exclude.clone(),
            proxies: config.trusted_proxies.clone(),
            untraced_routes: config.untraced_routes.clone(),
            http,
            spans,
            logs,
            sentry,
        }
    }
}

/// Applies the telemetry middleware (see the module docs). Build it with
/// [`crate::Telemetry::layer`] or use [`crate::Telemetry::observe_router`].
#[derive(Debug, Clone)]
pub struct TelemetryLayer {
    handles: Arc<LayerHandles>,
}

impl TelemetryLayer {
    pub(crate) fn new(handles: Arc<LayerHandles>) -> Self {
        Self { handles }
    }
}

impl<S> tower::Layer<S> for TelemetryLayer {
    type Service = TelemetryService<S>;

    fn layer(&self, service: S) -> Self::Service {
        TelemetryService {
            service,
            handles: Arc::clone(&self.handles),
            routes: Arc::default(),
        }
    }
}

/// The service [`TelemetryLayer`] wraps around each route.
#[derive(Debug, Clone)]
pub struct TelemetryService<S> {
    service: S,
    handles: Arc<LayerHandles>,
    routes: Arc<RouteInstruments>,
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
        let started = Started::now();
        let handles = &self.handles;
        let facts = RequestFacts::gather(
            &request,
            handles.logs.pii(),
            &handles.proxies,
            &self.routes,
            started.time,
        );
        // Probes (`APP_PROBE_ROUTES`) are not traced unless `APP_TRACE_PROBES=on`: no SERVER
        // span, and no child span either (`RequestContext::untraced`, read by the sampler).
        let traced = !facts.route.as_deref().is_some_and(|route| {
            handles
                .untraced_routes
                .iter()
                .any(|untraced| untraced == route)
        });
        let span = ServerSpan::for_request(
            handles.sampler,
            handles.incoming_trace,
            extract_headers(request.headers()),
            started.time,
            traced,
        );
        let context = Arc::new(RequestContext::new(
            Arc::clone(&handles.logs),
            span.context(),
            Arc::clone(&facts.request_id),
            !traced,
        ));
        request.extensions_mut().insert(Arc::clone(&context));
        // Created before the inner call so the gauge comes back down however the request ends
        // (completion, client disconnect dropping the future, or a panic inside `call`).
        let active = ActiveRequest::start(&handles.http, facts.method);

        // EAGER: the context is current before any inner code runs, including `call`.
        let future = {
            let _entered = enter(&context);
            self.service.call(request)
        };
        ResponseFuture {
            future: AssertUnwindSafe(scope(Arc::clone(&context), future)).catch_unwind(),
            state: Some(InFlight {
                span: SpanGuard {
                    span: Some(span),
                    facts,
                    handles: Arc::clone(handles),
                },
                context,
                started,
                active,
                routes: Arc::clone(&self.routes),
            }),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`TelemetryService`].
    pub struct ResponseFuture<F> {
        #[pin]
        future: CatchUnwind<AssertUnwindSafe<Scoped<F>>>,
        state: Option<InFlight>,
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
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
            Err(payload) => (
                fallback::panic_response(),
                Some(error_observation::panic_message(payload.as_ref())),
            ),
        };
        if let Some(state) = this.state.take() {
            state.finish(&mut response, panic);
        }
        Poll::Ready(Ok(response))
    }
}

/// What a request in flight holds until its response is ready.
struct InFlight {
    context: Arc<RequestContext>,
    /// The SERVER span, with the request's facts.
    span: SpanGuard,
    started: Started,
    active: ActiveRequest,
    routes: Arc<RouteInstruments>,
}

/// Holds the SERVER span, and the request's facts it is encoded from, until the request
/// finishes. A request whose future is dropped (the client went away) still exports its span,
/// marked `error.type=cancelled`.
struct SpanGuard {
    span: Option<ServerSpan>,
    facts: RequestFacts,
    handles: Arc<LayerHandles>,
}

impl SpanGuard {
    fn take(&mut self) -> ServerSpan {
        match self.span.take() {
            Some(span) => span,
            None => unreachable!("the span is taken once, by InFlight::finish"),
        }
    }
}

impl Drop for SpanGuard {
    fn drop(&mut self) {
        if let Some(mut span) = self.span.take() {
            span.cancel();
            export_span(
                &self.handles,
                &span,
                &self.facts,
                std::time::SystemTime::now(),
            );
        }
    }
}

/// Encodes a finished SERVER span into the export queue (when sampled and export is on).
fn export_span(
    handles: &LayerHandles,
    span: &ServerSpan,
    facts: &RequestFacts,
    end: std::time::SystemTime,
) {
    if let (true, Some(queue)) = (span.is_sampled(), &handles.spans) {
        queue.push(crate::semconv::SCOPE_NAME, |w| span.encode(w, end, facts));
    }
}

static REQUEST_ID: HeaderName = HeaderName::from_static(REQUEST_ID_HEADER);

impl InFlight {
    /// The end of the request: response headers, then each consumer reads the facts and the
    /// outcome once — metrics, the SERVER span, the access line.
    fn finish(self, response: &mut Response, panic: Option<String>) {
        let InFlight {
            context,
            span: mut span_guard,
            started,
            active,
            routes,
        } = self;
        let mut span = span_guard.take();
        let facts = &span_guard.facts;
        let handles = &*span_guard.handles;
        let failure = error_observation::observe(response, panic, facts.route.is_some());

        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&context.request_id) {
            headers.insert(REQUEST_ID.clone(), value);
        }
        let traceparent =
            traceparent_from_hex(&context.trace_id_hex, &context.span_id_hex, context.flags);
        if let Ok(value) = HeaderValue::from_bytes(&traceparent) {
            headers.insert(TRACEPARENT.clone(), value);
        }
        let elapsed = started.at.elapsed();
        let outcome = Outcome {
            status: response.status(),
            response_size: response.body().size_hint().exact(),
            elapsed,
            end: started.time + elapsed,
            failure,
        };

        // An exemplar only points at a trace that is exported (sampled, and export on).
        let exemplar = (span.is_sampled() && handles.spans.is_some()).then_some(SpanRef {
            trace_id: context.trace_id,
            span_id: context.span_id,
        });
        request_metrics::record(&handles.http, &routes, facts, &outcome, exemplar);
        drop(active);

        span.end_with(&outcome, context.user.get());
        export_span(handles, &span, facts, outcome.end);

        // Exactly one access line (successful requests on excluded routes are skipped).
        if !access_log::excluded(&handles.access_log_exclude, facts, &outcome) {
            access_log::write(&context, facts, &outcome);
        }

        // 5xx and panics, to Sentry (when configured): the same observation, queued.
        if let (Some(sentry), Some(failure)) = (&handles.sentry, &outcome.failure)
            && outcome.status.is_server_error()
        {
            sentry.report(Report {
                trace_id: context.trace_id.to_bytes(),
                span_id: context.span_id.to_bytes(),
                request_id: Arc::clone(&facts.request_id),
                method: facts.method,
                route: facts.route.clone(),
                path: Arc::from(facts.path()),
                status: outcome.status.as_u16(),
                kind: failure.observation.kind.as_str(),
                code: failure.observation.code.clone(),
                detail: failure.detail.clone(),
                panic: matches!(failure.observation.kind, crate::error::ErrorKind::Panic),
                user: context.user.get().map(|(_, id)| id.clone()),
                time: outcome.end,
            });
        }
    }
}
