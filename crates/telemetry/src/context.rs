//! The request-scoped context: trace ids, request id and the telemetry instance serving the
//! request, current on whichever thread polls the request's future.
//!
//! The middleware makes it current from its first line (EAGER), so every log record emitted
//! while serving the request — from handlers, domain code, database helpers — carries
//! `trace_id`, `span_id` and `request_id` without anyone passing a logger around. Work spawned
//! onto other tasks keeps it with [`InRequest::in_request`].

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

use crate::log_emitter::{LogEmitter, RecordTrace};
use crate::log_format::Correlation;
use crate::trace_context::{span_id_hex, trace_id_hex};

/// What every signal of one request shares. Handlers reach it with
/// `Extension<Arc<RequestContext>>` or [`RequestContext::current`].
pub struct RequestContext {
    pub(crate) trace_id: TraceId,
    pub(crate) span_id: SpanId,
    pub(crate) flags: TraceFlags,
    pub(crate) trace_state: TraceState,
    pub(crate) trace_id_hex: [u8; 32],
    pub(crate) span_id_hex: [u8; 16],
    pub(crate) request_id: Arc<str>,
    /// The log output of the instance serving the request.
    pub(crate) logs: Arc<LogEmitter>,
    pub(crate) user: OnceLock<(&'static str, String)>,
    /// A probe that is not traced (`APP_PROBE_ROUTES`): the instance's sampler drops every
    /// span started in it.
    pub(crate) untraced: bool,
}

impl std::fmt::Debug for RequestContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestContext")
            .field("trace_id", &self.trace_id)
            .field("span_id", &self.span_id)
            .field("request_id", &self.request_id)
            .finish_non_exhaustive()
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<RequestContext>>> = const { RefCell::new(None) };
}

impl RequestContext {
    pub(crate) fn new(
        logs: Arc<LogEmitter>,
        span_context: &SpanContext,
        request_id: Arc<str>,
        untraced: bool,
    ) -> Self {
        Self {
            trace_id: span_context.trace_id(),
            span_id: span_context.span_id(),
            flags: span_context.trace_flags(),
            trace_state: span_context.trace_state().clone(),
            trace_id_hex: trace_id_hex(span_context.trace_id()),
            span_id_hex: span_id_hex(span_context.span_id()),
            request_id,
            logs,
            user: OnceLock::new(),
            untraced,
        }
    }

    /// The context of the request being served on this thread, if any.
    pub fn current() -> Option<Arc<RequestContext>> {
        CURRENT.with(|c| c.borrow().clone())
    }

    pub(crate) fn with_current<R>(f: impl FnOnce(Option<&RequestContext>) -> R) -> R {
        CURRENT.with(|c| f(c.borrow().as_deref()))
    }

    /// The request id (`x-request-id`).
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// The trace id of the request's SERVER span.
    pub fn trace_id(&self) -> TraceId {
        self.trace_id
    }

    /// The SERVER span's id.
    pub fn span_id(&self) -> SpanId {
        self.span_id
    }

    /// The SERVER span's context: the parent for client spans started while serving the request.
    pub fn span_context(&self) -> SpanContext {
        SpanContext::new(
            self.trace_id,
            self.span_id,
            self.flags,
            false,
            self.trace_state.clone(),
        )
    }

    /// Records the authenticated user, as the PII mode allows (`enduser.pseudo.id`,
    /// `enduser.id`, or nothing). It lands on the SERVER span and the access-log line.
    /// The first call wins.
    pub fn set_user(&self, user_id: &str) {
        if let Some(attribute) = self.logs.pii().user_attribute(user_id) {
            let _ = self.user.set(attribute);
        }
    }
}

impl RequestContext {
    /// The trace fields of the request's stdout lines.
    pub(crate) fn correlation(&self) -> Correlation<'_> {
        Correlation {
            trace_id: &self.trace_id_hex,
            span_id: &self.span_id_hex,
            sampled: self.flags.is_sampled(),
            request_id: &self.request_id,
        }
    }

    /// The trace fields of the request's OTLP log records.
    pub(crate) fn record_trace(&self) -> RecordTrace<'_> {
        RecordTrace {
            trace_id: self.trace_id.to_bytes(),
            span_id: self.span_id.to_bytes(),
            flags: self.flags.to_u8(),
            request_id: Some(&self.request_id),
        }
    }
}

/// Makes `context` current while `future` is polled.
pub(crate) fn scope<F: Future>(context: Arc<RequestContext>, future: F) -> Scoped<F> {
    Scoped {
        context: Some(context),
        future,
    }
}

pin_project_lite::pin_project! {
    /// A future that makes a request context current on every poll.
    #[derive(Debug)]
    pub struct Scoped<F> {
        context: Option<Arc<RequestContext>>,
        #[pin]
        future: F,
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _guard = this.context.as_ref().map(enter);
        this.future.poll(cx)
    }
}

/// Restores the previous context on drop (also when a poll panics).
pub(crate) struct EnterGuard {
    previous: Option<Arc<RequestContext>>,
}

pub(crate) fn enter(context: &Arc<RequestContext>) -> EnterGuard {
    let previous = CURRENT.with(|c| c.borrow_mut().replace(Arc::clone(context)));
    EnterGuard { previous }
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        CURRENT.with(|c| *c.borrow_mut() = previous);
    }
}

/// Carries the current request context into spawned work.
///
/// ```no_run
/// use telemetry::context::InRequest;
/// # async fn handler() {
/// tokio::spawn(async { tracing::info!("still correlated with the request") }.in_request());
/// # }
/// ```
pub trait InRequest: Future + Sized {
    /// Wraps the future so the current request context (if any) is current when it runs.
    fn in_request(self) -> Scoped<Self>;
}

impl<F: Future> InRequest for F {
    fn in_request(self) -> Scoped<Self> {
        Scoped {
            context: RequestContext::current(),
            future: self,
        }
    }
}
