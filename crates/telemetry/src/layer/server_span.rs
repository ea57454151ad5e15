//! The SERVER span of a request, recorded by the middleware itself and encoded straight into
//! the span export queue when the request ends.
//!
//! Every request has exactly one SERVER span whose whole life the middleware owns, so the
//! SDK's general machinery (span builder, shared span state, `SpanData`, a channel to the
//! batch thread, conversion for the exporter) buys nothing here and cost about 6,000
//! instructions per request. Child spans (database, outbound calls, custom spans) still go
//! through the SDK tracer with this span as their parent, and both reach the same Collector.
//!
//! What the span carries is decided here and only here: its name and attributes from the
//! request's [`RequestFacts`], the response's from the [`Outcome`] when it ends. The facts are
//! not copied into the span: they are written straight into the OTLP `Span` when it is encoded
//! (no attribute vector, no name string, no shared-string clones per request).
//!
//! Sampling follows `OTEL_TRACES_SAMPLER` exactly as the SDK samplers do: `parentbased_*`
//! follows a valid parent's sampled flag; `traceidratio` compares the trace id's low 63 bits
//! with the ratio.

use std::time::SystemTime;

use opentelemetry::KeyValue;
use opentelemetry::trace::{
    Event, Link, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};

use crate::config::{IncomingTrace, SamplerConfig};
use crate::otlp::protobuf::{Scalar, Writer};
use crate::otlp::span::{SpanName, SpanRecord, encode_span_with};
use crate::semconv::{
    APP_ERROR_CODE, CLIENT_ADDRESS, ERROR_TYPE, ERROR_TYPE_CANCELLED, EXCEPTION_MESSAGE,
    EXCEPTION_TYPE, HTTP_REQUEST_HEADER_X_REQUEST_ID, HTTP_REQUEST_METHOD,
    HTTP_REQUEST_METHOD_ORIGINAL, HTTP_RESPONSE_STATUS_CODE, HTTP_ROUTE, NETWORK_PROTOCOL_VERSION,
    SERVER_ADDRESS, URL_PATH, URL_SCHEME, USER_AGENT_ORIGINAL, span_method,
};

use super::facts::{Outcome, RequestFacts};

/// A SERVER span being recorded. Its name and its request attributes are not copied into it:
/// they are written from the request's [`RequestFacts`] when the span is encoded.
#[derive(Debug)]
pub(crate) struct ServerSpan {
    context: SpanContext,
    parent_span_id: Option<SpanId>,
    start: SystemTime,
    /// `http.response.status_code`, once the response is ready.
    status_code: Option<u16>,
    /// What the outcome adds beyond the status code: the user, `error.type`, `app.error.code`
    /// (empty, and unallocated, for most requests).
    outcome_attributes: Vec<KeyValue>,
    link: Option<Link>,
    /// The `exception` event, for 5xx and panics.
    exception: Option<Event>,
    /// `Error` (description = `app.error.code`) for 5xx and panics, else unset.
    status: Status,
}

impl ServerSpan {
    /// The SERVER span of a request started at `start`: a child of the caller's span `remote`
    /// (or a new root linked to it, as `incoming` says), or a new root.
    ///
    /// An untraced request (a probe: `APP_PROBE_ROUTES`) keeps its trace id but is never
    /// sampled, whatever the sampler and the caller say.
    pub(crate) fn for_request(
        sampler: SamplerConfig,
        incoming: IncomingTrace,
        remote: Option<SpanContext>,
        start: SystemTime,
        traced: bool,
    ) -> Self {
        let (parent, link) = match (remote, incoming) {
            (Some(remote), IncomingTrace::Continue) => (Some(remote), None),
            (Some(remote), IncomingTrace::Link) => (None, Some(remote)),
            (None, _) => (None, None),
        };
        Self::start(sampler, parent.as_ref(), link, start, traced)
    }

    /// Starts a span: a child of `parent` when given, else a new root (linked to `link`).
    fn start(
        sampler: SamplerConfig,
        parent: Option<&SpanContext>,
        link: Option<SpanContext>,
        start: SystemTime,
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
            start,
            status_code: None,
            outcome_attributes: Vec::new(),
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
        self.status_code = Some(outcome.status.as_u16());
        if let Some((key, value)) = user {
            self.outcome_attributes
                .push(KeyValue::new(*key, value.clone()));
        }
        if let Some(failure) = &outcome.failure {
            let observation = &failure.observation;
            self.outcome_attributes
                .push(KeyValue::new(ERROR_TYPE, observation.kind.as_str()));
            self.outcome_attributes
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
        self.outcome_attributes
            .push(KeyValue::new(ERROR_TYPE, ERROR_TYPE_CANCELLED));
    }

    /// The body of an OTLP `Span` message for this span of the request with `facts`, ended at
    /// `end`. Named `{method} {route}`, or `{method}`; an unknown method is named `HTTP`.
    pub(crate) fn encode(&self, w: &mut Writer, end: SystemTime, facts: &RequestFacts) {
        let method = span_method(facts.method);
        let name = match &facts.route {
            Some(route) => SpanName::MethodRoute(method, route),
            None => SpanName::Whole(method),
        };
        let record = SpanRecord {
            context: &self.context,
            parent_span_id: self.parent_span_id.unwrap_or(SpanId::INVALID),
            // A SERVER span's parent is always the caller's: remote.
            parent_is_remote: self.parent_span_id.is_some(),
            name,
            kind: SpanKind::Server,
            start: self.start,
            end,
            attributes: &self.outcome_attributes,
            dropped_attributes: 0,
            events: self.exception.as_slice(),
            dropped_events: 0,
            links: self.link.as_slice(),
            dropped_links: 0,
            status: &self.status,
        };
        encode_span_with(w, &record, |w| {
            request_attributes(w, facts);
            if let Some(code) = self.status_code {
                w.scalar_key_value(9, HTTP_RESPONSE_STATUS_CODE, Scalar::Int(i64::from(code)));
            }
        });
    }
}

/// The span's attributes from the request's facts, as `Span.attributes` (field 9).
fn request_attributes(w: &mut Writer, facts: &RequestFacts) {
    let mut string =
        |key: &str, value: &str| w.scalar_key_value(9, key, Scalar::Str(value.as_bytes()));
    string(HTTP_REQUEST_METHOD, facts.method);
    if let Some(original) = facts.method_original() {
        string(HTTP_REQUEST_METHOD_ORIGINAL, original);
    }
    if let Some(route) = &facts.route {
        string(HTTP_ROUTE, route);
    }
    string(URL_PATH, facts.path());
    string(URL_SCHEME, facts.scheme);
    string(NETWORK_PROTOCOL_VERSION, facts.protocol_version);
    if let Some(host) = facts.server_address() {
        string(SERVER_ADDRESS, host);
    }
    if let Some(address) = facts.client_address() {
        string(CLIENT_ADDRESS, address);
    }
    if let Some(ua) = facts.user_agent() {
        string(USER_AGENT_ORIGINAL, ua);
    }
    // `http.request.header.<key>` is a string array (one element per header value).
    w.string_array_key_value(
        9,
        HTTP_REQUEST_HEADER_X_REQUEST_ID,
        &[facts.request_id.as_bytes()],
    );
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
            SystemTime::now(),
            true,
        );
        assert_eq!(child.context.trace_id(), parent.trace_id());
        assert_eq!(child.parent_span_id, Some(parent.span_id()));
        let root = ServerSpan::start(
            SamplerConfig::ParentBasedAlwaysOn,
            None,
            None,
            SystemTime::now(),
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
            std::time::SystemTime::now(),
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

    /// The span as a collector receives it: encoded, then decoded with the official types.
    fn decoded(
        span: &ServerSpan,
        facts: &RequestFacts,
    ) -> opentelemetry_proto::tonic::trace::v1::Span {
        use prost::Message as _;
        let mut w = Writer::with_capacity(0);
        span.encode(&mut w, SystemTime::now(), facts);
        opentelemetry_proto::tonic::trace::v1::Span::decode(w.buf.as_slice())
            .unwrap_or_else(|e| unreachable!("{e}"))
    }

    fn attribute(
        span: &opentelemetry_proto::tonic::trace::v1::Span,
        key: &str,
    ) -> Option<opentelemetry_proto::tonic::common::v1::any_value::Value> {
        span.attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.clone())
            .and_then(|v| v.value)
    }

    fn string(span: &opentelemetry_proto::tonic::trace::v1::Span, key: &str) -> Option<String> {
        use opentelemetry_proto::tonic::common::v1::any_value::Value;
        match attribute(span, key) {
            Some(Value::StringValue(s)) => Some(s),
            _ => None,
        }
    }

    #[test]
    fn a_request_span_is_named_and_attributed_from_its_facts() {
        use opentelemetry_proto::tonic::common::v1::any_value::Value;
        let routed = facts(Some("/v1/products/{id}"));
        let span = ServerSpan::for_request(
            SamplerConfig::AlwaysOn,
            IncomingTrace::Continue,
            None,
            SystemTime::now(),
            true,
        );
        let span = decoded(&span, &routed);
        assert_eq!(span.name, "GET /v1/products/{id}");
        assert_eq!(string(&span, "http.request.method").as_deref(), Some("GET"));
        assert_eq!(
            string(&span, "http.route").as_deref(),
            Some("/v1/products/{id}")
        );
        assert_eq!(string(&span, "url.path").as_deref(), Some("/v1/products/7"));
        assert_eq!(string(&span, "url.scheme").as_deref(), Some("http"));
        assert_eq!(
            string(&span, "network.protocol.version").as_deref(),
            Some("1.1")
        );
        assert_eq!(
            string(&span, "server.address").as_deref(),
            Some("shop.example")
        );
        match attribute(&span, "http.request.header.x-request-id") {
            Some(Value::ArrayValue(array)) => assert_eq!(
                array
                    .values
                    .iter()
                    .map(|v| v.value.clone())
                    .collect::<Vec<_>>(),
                [Some(Value::StringValue("req-1".into()))]
            ),
            other => panic!("{other:?}"),
        }
        assert!(attribute(&span, "client.address").is_none(), "PII mode off");
        assert!(
            attribute(&span, "http.response.status_code").is_none(),
            "not ended"
        );
        let unrouted = ServerSpan::for_request(
            SamplerConfig::AlwaysOn,
            IncomingTrace::Continue,
            None,
            SystemTime::now(),
            true,
        );
        let unrouted = decoded(&unrouted, &facts(None));
        assert_eq!(unrouted.name, "GET");
        assert!(attribute(&unrouted, "http.route").is_none());
    }

    #[test]
    fn a_linked_request_is_a_new_root_with_a_link() {
        let span = ServerSpan::for_request(
            SamplerConfig::ParentBasedAlwaysOn,
            IncomingTrace::Link,
            Some(remote(true)),
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
                SystemTime::now(),
                true,
            )
        };
        let facts = facts(None);
        let mut ok = start();
        ok.end_with(
            &outcome(200, None),
            Some(&("enduser.pseudo.id", "abc".into())),
        );
        assert!(ok.status == Status::Unset);
        let ok = decoded(&ok, &facts);
        assert_eq!(
            attribute(&ok, "http.response.status_code"),
            Some(opentelemetry_proto::tonic::common::v1::any_value::Value::IntValue(200))
        );
        assert_eq!(string(&ok, "enduser.pseudo.id").as_deref(), Some("abc"));
        assert!(attribute(&ok, "error.type").is_none());

        let mut conflict = start();
        let observation =
            ErrorObservation::new(ErrorKind::Conflict, "order.out_of_stock", "none left");
        conflict.end_with(&outcome(409, Some(Failure::new(observation))), None);
        assert!(
            conflict.exception.is_none() && conflict.status == Status::Unset,
            "4xx: status unset"
        );
        let conflict = decoded(&conflict, &facts);
        assert_eq!(string(&conflict, "error.type").as_deref(), Some("conflict"));
        assert_eq!(
            string(&conflict, "app.error.code").as_deref(),
            Some("order.out_of_stock")
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
            string(&decoded(&cancelled, &facts), "error.type").as_deref(),
            Some("cancelled")
        );
    }
}
