//! The SERVER span of a request, recorded by the middleware itself and encoded straight into
//! the span export queue when the request ends.
//!
//! Every request has exactly one SERVER span whose whole life the middleware owns, so the
//! SDK's general machinery (span builder, shared span state, `SpanData`, a channel to the
//! batch thread, conversion for the exporter) buys nothing here and cost about 6,000
//! instructions per request. Child spans (database, outbound calls, custom spans) still go
//! through the SDK tracer with this span as their parent, and both reach the same Collector.
//!
//! What the span carries is decided here and only here: its attributes from the request's
//! [`RequestFacts`] when it starts, the response's from the [`Outcome`] when it ends.
//!
//! Sampling follows `OTEL_TRACES_SAMPLER` exactly as the SDK samplers do: `parentbased_*`
//! follows a valid parent's sampled flag; `traceidratio` compares the trace id's low 63 bits
//! with the ratio.

use std::sync::Arc;
use std::time::SystemTime;

use opentelemetry::trace::{
    Event, Link, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Array, KeyValue, StringValue};

use crate::config::{IncomingTrace, SamplerConfig};
use crate::otlp::protobuf::Writer;
use crate::otlp::span::{SpanRecord, encode_span};
use crate::semconv::{
    APP_ERROR_CODE, CLIENT_ADDRESS, ERROR_TYPE, ERROR_TYPE_CANCELLED, EXCEPTION_MESSAGE,
    EXCEPTION_TYPE, HTTP_REQUEST_HEADER_X_REQUEST_ID, HTTP_REQUEST_METHOD,
    HTTP_REQUEST_METHOD_ORIGINAL, HTTP_RESPONSE_STATUS_CODE, HTTP_ROUTE, NETWORK_PROTOCOL_VERSION,
    SERVER_ADDRESS, URL_PATH, URL_SCHEME, USER_AGENT_ORIGINAL, span_method,
};

use super::facts::{Outcome, RequestFacts};

/// A SERVER span being recorded.
#[derive(Debug)]
pub(crate) struct ServerSpan {
    context: SpanContext,
    parent_span_id: Option<SpanId>,
    name: String,
    start: SystemTime,
    attributes: Vec<KeyValue>,
    link: Option<Link>,
    /// The `exception` event, for 5xx and panics.
    exception: Option<Event>,
    /// `Error` (description = `app.error.code`) for 5xx and panics, else unset.
    status: Status,
}

impl ServerSpan {
    /// The SERVER span of a request with `facts`, started at `start`: a child of the caller's
    /// span `remote` (or a new root linked to it, as `incoming` says), or a new root.
    ///
    /// An untraced request (a probe: `APP_PROBE_ROUTES`) keeps its trace id but is never
    /// sampled, whatever the sampler and the caller say.
    pub(crate) fn for_request(
        sampler: SamplerConfig,
        incoming: IncomingTrace,
        remote: Option<SpanContext>,
        facts: &RequestFacts,
        start: SystemTime,
        traced: bool,
    ) -> Self {
        let (parent, link) = match (remote, incoming) {
            (Some(remote), IncomingTrace::Continue) => (Some(remote), None),
            (Some(remote), IncomingTrace::Link) => (None, Some(remote)),
            (None, _) => (None, None),
        };
        // Named `{method} {route}`, or `{method}`; an unknown method is named `HTTP`.
        let method = span_method(facts.method);
        let name = match &facts.route {
            Some(route) => {
                let mut name = String::with_capacity(method.len() + 1 + route.len());
                name.push_str(method);
                name.push(' ');
                name.push_str(route);
                name
            }
            None => method.to_owned(),
        };
        let mut attributes = Vec::with_capacity(16);
        attributes.push(KeyValue::new(HTTP_REQUEST_METHOD, facts.method));
        if let Some(original) = &facts.method_original {
            attributes.push(KeyValue::new(
                HTTP_REQUEST_METHOD_ORIGINAL,
                String::from(original.as_ref()),
            ));
        }
        if let Some(route) = &facts.route {
            attributes.push(KeyValue::new(HTTP_ROUTE, Arc::clone(route)));
        }
        attributes.push(KeyValue::new(URL_PATH, Arc::clone(&facts.path)));
        attributes.push(KeyValue::new(URL_SCHEME, facts.scheme));
        attributes.push(KeyValue::new(
            NETWORK_PROTOCOL_VERSION,
            facts.protocol_version,
        ));
        if let Some(host) = &facts.server_address {
            attributes.push(KeyValue::new(SERVER_ADDRESS, Arc::clone(host)));
        }
        if let Some(address) = &facts.client_address {
            attributes.push(KeyValue::new(CLIENT_ADDRESS, Arc::clone(address)));
        }
        if let Some(ua) = &facts.user_agent {
            attributes.push(KeyValue::new(USER_AGENT_ORIGINAL, Arc::clone(ua)));
        }
        // `http.request.header.<key>` is a string array (one element per header value).
        attributes.push(KeyValue::new(
            HTTP_REQUEST_HEADER_X_REQUEST_ID,
            opentelemetry::Value::Array(Array::String(vec![StringValue::from(Arc::clone(
                &facts.request_id,
            ))])),
        ));
        Self::start(
            sampler,
            parent.as_ref(),
            link,
            name,
            start,
            attributes,
            traced,
        )
    }

    /// Starts a span: a child of `parent` when given, else a new root (linked to `link`).
    fn start(
        sampler: SamplerConfig,
        parent: Option<&SpanContext>,
        link: Option<SpanContext>,
        name: String,
        start: SystemTime,
        attributes: Vec<KeyValue>,
        traced: bool,
    ) -> Self {
        let trace_id = match parent {
            Some(parent) => parent.trace_id(),
            None => TraceId::from(non_zero(random_u128)),
        };
        let span_id = SpanId::from(non_zero(|| random_u128() as u64));
        let sampled = traced && should_sample(sampler, parent, trace_id);
        // A continued trace keeps the caller's Level 2 `random` flag (a MUST); a new root sets
        // it, since its trace id is random.
        let random = parent.map_or(crate::trace_context::RANDOM_FLAG, |p| {
            p.trace_flags().to_u8() & crate::trace_context::RANDOM_FLAG
        });
        let sampled_bit = if sampled {
            TraceFlags::SAMPLED.to_u8()
        } else {
            0
        };
        let flags = TraceFlags::new(sampled_bit | random);
        let trace_state = parent.map_or_else(TraceState::default, |p| p.trace_state().clone());
        Self {
            context: SpanContext::new(trace_id, span_id, flags, false, trace_state),
            parent_span_id: parent.map(SpanContext::span_id),
            name,
            start,
            attributes,
            link: link.map(Link::with_context),
            exception: None,
            status: Status::Unset,
        }
    }

    /// The span's context (the request context's trace and span ids).
    pub(crate) fn context(&self) -> &SpanContext {
        &self.context
    }

    /// Whether the span will be exported.
    pub(crate) fn is_sampled(&self) -> bool {
        self.context.is_sampled()
    }

    /// Records how the request ended: the status code, the user (as the PII mode allows), and
    /// for a failure `error.type` and `app.error.code`; a 5xx or panic also gets the error
    /// status and one `exception` event.
    pub(crate) fn end_with(&mut self, outcome: &Outcome, user: Option<&(&'static str, String)>) {
        self.attributes.push(KeyValue::new(
            HTTP_RESPONSE_STATUS_CODE,
            i64::from(outcome.status.as_u16()),
        ));
        if let Some((key, value)) = user {
            self.attributes.push(KeyValue::new(*key, value.clone()));
        }
        if let Some(failure) = &outcome.failure {
            let observation = &failure.observation;
            self.attributes
                .push(KeyValue::new(ERROR_TYPE, observation.kind.as_str()));
            self.attributes
                .push(KeyValue::new(APP_ERROR_CODE, observation.code.clone()));
            if outcome.status.is_server_error() {
                self.exception = Some(Event::new(
                    "exception",
                    SystemTime::now(),
                    vec![
                        KeyValue::new(EXCEPTION_TYPE, observation.code.clone()),
                        KeyValue::new(EXCEPTION_MESSAGE, failure.detail.clone()),
                    ],
                    0,
                ));
                self.status = Status::error(observation.code.clone());
            }
        }
    }

    /// Marks a span whose request never finished (the client went away).
    pub(crate) fn cancel(&mut self) {
        self.attributes
            .push(KeyValue::new(ERROR_TYPE, ERROR_TYPE_CANCELLED));
    }

    #[cfg(test)]
    pub(crate) fn attribute(&self, key: &str) -> Option<&opentelemetry::Value> {
        self.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| &kv.value)
    }

    /// The body of an OTLP `Span` message for this span, ended at `end`.
    pub(crate) fn encode(&self, w: &mut Writer, end: SystemTime) {
        encode_span(w, &self.record(end));
    }

    /// The span as the one span encoder reads it.
    pub(crate) fn record(&self, end: SystemTime) -> SpanRecord<'_> {
        SpanRecord {
            context: &self.context,
            parent_span_id: self.parent_span_id.unwrap_or(SpanId::INVALID),
            // A SERVER span's parent is always the caller's: remote.
            parent_is_remote: self.parent_span_id.is_some(),
            name: &self.name,
            kind: SpanKind::Server,
            start: self.start,
            end,
            attributes: &self.attributes,
            dropped_attributes: 0,
            events: self.exception.as_slice(),
            dropped_events: 0,
            links: self.link.as_slice(),
            dropped_links: 0,
            status: &self.status,
        }
    }
}

/// The sampling decision for a new SERVER span.
pub(crate) fn should_sample(
    sampler: SamplerConfig,
    parent: Option<&SpanContext>,
    trace_id: TraceId,
) -> bool {
    let ratio = |r: f64| {
        // As the SDK's TraceIdRatioBased: the low 63 bits of the trace id against r·2^63.
        let bytes = trace_id.to_bytes();
        let mut low = [0u8; 8];
        low.copy_from_slice(&bytes[8..]);
        let value = u64::from_be_bytes(low) >> 1;
        let bound = (r.clamp(0.0, 1.0) * (1u64 << 63) as f64) as u64;
        r >= 1.0 || value < bound
    };
    let parent = parent.filter(|p| p.is_valid());
    match (sampler, parent) {
        (SamplerConfig::AlwaysOn, _) => true,
        (SamplerConfig::AlwaysOff, _) => false,
        (SamplerConfig::TraceIdRatio(r), _) => ratio(r),
        (
            SamplerConfig::ParentBasedAlwaysOn
            | SamplerConfig::ParentBasedAlwaysOff
            | SamplerConfig::ParentBasedTraceIdRatio(_),
            Some(parent),
        ) => parent.is_sampled(),
        (SamplerConfig::ParentBasedAlwaysOn, None) => true,
        (SamplerConfig::ParentBasedAlwaysOff, None) => false,
        (SamplerConfig::ParentBasedTraceIdRatio(r), None) => ratio(r),
    }
}

fn non_zero<T: Default + PartialEq>(mut next: impl FnMut() -> T) -> T {
    loop {
        let value = next();
        if value != T::default() {
            return value;
        }
    }
}

fn random_u128() -> u128 {
    crate::layer::request_id::fast_random_u128()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(sampled: bool) -> SpanContext {
        let flags = if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        SpanContext::new(
            TraceId::from(5u128),
            SpanId::from(6u64),
            flags,
            true,
            TraceState::default(),
        )
    }

    #[test]
    fn parent_based_samplers_follow_the_parent() {
        for sampler in [
            SamplerConfig::ParentBasedAlwaysOn,
            SamplerConfig::ParentBasedAlwaysOff,
            SamplerConfig::ParentBasedTraceIdRatio(0.5),
        ] {
            assert!(should_sample(
                sampler,
                Some(&remote(true)),
                TraceId::from(5u128)
            ));
            assert!(!should_sample(
                sampler,
                Some(&remote(false)),
                TraceId::from(5u128)
            ));
        }
        assert!(should_sample(
            SamplerConfig::ParentBasedAlwaysOn,
            None,
            TraceId::from(1u128)
        ));
        assert!(!should_sample(
            SamplerConfig::ParentBasedAlwaysOff,
            None,
            TraceId::from(1u128)
        ));
    }

    #[test]
    fn ratio_sampling_keeps_about_the_ratio() {
        let kept = (0..10_000)
            .filter(|_| {
                should_sample(
                    SamplerConfig::TraceIdRatio(0.25),
                    None,
                    TraceId::from(random_u128()),
                )
            })
            .count();
        assert!((2_000..3_000).contains(&kept), "{kept}");
        assert!(!should_sample(
            SamplerConfig::TraceIdRatio(0.0),
            None,
            TraceId::from(random_u128())
        ));
        assert!(should_sample(
            SamplerConfig::TraceIdRatio(1.0),
            None,
            TraceId::from(random_u128())
        ));
    }

    #[test]
    fn children_keep_the_trace_and_roots_get_new_ids() {
        let parent = remote(true);
        let child = ServerSpan::start(
            SamplerConfig::ParentBasedAlwaysOn,
            Some(&parent),
            None,
            "GET".into(),
            SystemTime::now(),
            Vec::new(),
            true,
        );
        assert_eq!(child.context.trace_id(), parent.trace_id());
        assert_eq!(child.parent_span_id, Some(parent.span_id()));
        let root = ServerSpan::start(
            SamplerConfig::ParentBasedAlwaysOn,
            None,
            None,
            "GET".into(),
            SystemTime::now(),
            Vec::new(),
            true,
        );
        assert_ne!(root.context.trace_id(), TraceId::INVALID);
        assert_ne!(root.context.span_id(), SpanId::INVALID);
        assert!(root.parent_span_id.is_none());
    }

    fn facts(route: Option<&str>) -> RequestFacts {
        let pii = crate::pii::PiiPolicy::new(crate::config::PiiMode::Off, None);
        let routes = crate::metrics::RouteInstruments::default();
        let mut request = http::Request::get("/v1/products/7")
            .header("host", "shop.example:8080")
            .header("x-request-id", "req-1")
            .body(())
            .unwrap_or_default();
        if let Some(route) = route {
            request.extensions_mut().insert(matched_path(route));
        }
        RequestFacts::gather(
            &request,
            &pii,
            &crate::layer::client_address::TrustedProxies::Off,
            &routes,
        )
    }

    /// axum's `MatchedPath` can only be made by a router: route one request through one.
    fn matched_path(route: &str) -> axum::extract::MatchedPath {
        use tower::ServiceExt as _;
        let (tx, rx) = std::sync::mpsc::channel();
        let router = axum::Router::new().route(
            route,
            axum::routing::get(move |m: axum::extract::MatchedPath| async move {
                let _ = tx.send(m);
            }),
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap_or_else(|e| unreachable!("{e}"));
        let request = http::Request::get("/v1/products/7")
            .body(axum::body::Body::empty())
            .unwrap_or_default();
        let _ = runtime.block_on(router.oneshot(request));
        rx.recv().unwrap_or_else(|e| unreachable!("{e}"))
    }

    fn string(span: &ServerSpan, key: &str) -> Option<String> {
        span.attribute(key).map(|v| v.as_str().into_owned())
    }

    #[test]
    fn a_request_span_is_named_and_attributed_from_its_facts() {
        let span = ServerSpan::for_request(
            SamplerConfig::AlwaysOn,
            IncomingTrace::Continue,
            None,
            &facts(Some("/v1/products/{id}")),
            SystemTime::now(),
            true,
        );
        assert_eq!(span.name, "GET /v1/products/{id}");
        assert_eq!(string(&span, "http.request.method").as_deref(), Some("GET"));
        assert_eq!(
            string(&span, "http.route").as_deref(),
            Some("/v1/products/{id}")
        );
        assert_eq!(string(&span, "url.path").as_deref(), Some("/v1/products/7"));
        assert_eq!(
            string(&span, "server.address").as_deref(),
            Some("shop.example")
        );
        assert!(span.attribute("client.address").is_none(), "PII mode off");
        let unrouted = ServerSpan::for_request(
            SamplerConfig::AlwaysOn,
            IncomingTrace::Continue,
            None,
            &facts(None),
            SystemTime::now(),
            true,
        );
        assert_eq!(unrouted.name, "GET");
        assert!(unrouted.attribute("http.route").is_none());
    }

    #[test]
    fn a_linked_request_is_a_new_root_with_a_link() {
        let span = ServerSpan::for_request(
            SamplerConfig::ParentBasedAlwaysOn,
            IncomingTrace::Link,
            Some(remote(true)),
            &facts(None),
            SystemTime::now(),
            true,
        );
        assert_ne!(span.context.trace_id(), remote(true).trace_id());
        assert!(span.parent_span_id.is_none());
        assert_eq!(
            span.link.as_ref().map(|l| l.span_context.span_id()),
            Some(remote(true).span_id())
        );
    }

    #[test]
    fn the_outcome_adds_status_error_and_exception_only_for_5xx() {
        use super::super::facts::Failure;
        use crate::error::{ErrorKind, ErrorObservation};
        let outcome = |status: u16, failure: Option<Failure>| Outcome {
            status: http::StatusCode::from_u16(status).unwrap_or_default(),
            response_size: None,
            elapsed: std::time::Duration::from_millis(3),
            end: SystemTime::now(),
            failure,
        };
        let start = || {
            ServerSpan::for_request(
                SamplerConfig::AlwaysOn,
                IncomingTrace::Continue,
                None,
                &facts(None),
                SystemTime::now(),
                true,
            )
        };
        let mut ok = start();
        ok.end_with(
            &outcome(200, None),
            Some(&("enduser.pseudo.id", "abc".into())),
        );
        assert_eq!(
            ok.attribute("http.response.status_code"),
            Some(&opentelemetry::Value::I64(200))
        );
        assert_eq!(string(&ok, "enduser.pseudo.id").as_deref(), Some("abc"));
        assert!(ok.attribute("error.type").is_none() && ok.status == Status::Unset);

        let mut conflict = start();
        let observation =
            ErrorObservation::new(ErrorKind::Conflict, "order.out_of_stock", "none left");
        conflict.end_with(&outcome(409, Some(Failure::new(observation))), None);
        assert_eq!(string(&conflict, "error.type").as_deref(), Some("conflict"));
        assert_eq!(
            string(&conflict, "app.error.code").as_deref(),
            Some("order.out_of_stock")
        );
        assert!(
            conflict.exception.is_none() && conflict.status == Status::Unset,
            "4xx: status unset"
        );

        let mut failed = start();
        let observation =
            ErrorObservation::new(ErrorKind::Internal, "db.unexpected", "at ann@example.com");
        failed.end_with(&outcome(500, Some(Failure::new(observation))), None);
        assert_eq!(failed.status, Status::error("db.unexpected"));
        let event = failed.exception.as_ref().unwrap_or_else(|| unreachable!());
        let message = event
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == "exception.message");
        assert!(message.is_some_and(|kv| !kv.value.as_str().contains("ann@example.com")));

        let mut cancelled = start();
        cancelled.cancel();
        assert_eq!(
            string(&cancelled, "error.type").as_deref(),
            Some("cancelled")
        );
    }
}
