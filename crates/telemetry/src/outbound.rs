//! Outbound HTTP: a CLIENT span per call (child of the request being served), W3C
//! `traceparent`/`tracestate` propagation, and `http.client.request.duration`, for reqwest.
//!
//! ```no_run
//! use telemetry::Telemetry;
//! use telemetry::outbound::HttpClientInstruments;
//!
//! # async fn call(telemetry: &Telemetry) -> Result<(), reqwest::Error> {
//! let outbound = HttpClientInstruments::new(telemetry);
//! let client = reqwest::Client::new();
//! let response = outbound
//!     .send(client.post("http://127.0.0.1:9000/charge").json(&[1, 2]))
//!     .await?;
//! # drop(response); Ok(()) }
//! ```
//!
//! The span and the metric follow the HTTP client semantic conventions: the span is named by
//! the method, carries `url.full` without query string, fragment or credentials, and is an
//! error for a 4xx/5xx answer or a transport failure (`error.type` is the status code, or
//! `timeout` / `connect` / `_OTHER`). The metric carries only `http.request.method`,
//! `server.address`, `server.port`, `http.response.status_code` and `error.type`.
//!
//! Propagation: the callee receives `traceparent` naming the CLIENT span, with the sampling
//! decision and Level 2's `random` flag as the parent had it (set when the call starts a new
//! trace), and the parent's `tracestate` byte for byte as
//! [`TracestateHeader`](crate::trace_context::TracestateHeader) kept it. A `traceparent` or
//! `tracestate` already on the request is replaced.

use std::time::Instant;

use http::HeaderValue;
use opentelemetry::metrics::Histogram;
use opentelemetry::trace::{
    Span as _, SpanContext, SpanKind, Status, TraceContextExt as _, TraceFlags, Tracer as _,
};
use opentelemetry::{Context as OtelContext, KeyValue};

use crate::Telemetry;
use crate::metrics::HTTP_SERVER_DURATION_BOUNDARIES;
use crate::semconv::known_method;
use crate::trace_context::{
    RANDOM_FLAG, TRACEPARENT, TRACESTATE, format_traceparent, tracestate_header,
};

/// The outbound HTTP instruments of one telemetry instance. Cheap to clone.
#[derive(Debug, Clone)]
pub struct HttpClientInstruments {
    telemetry: Telemetry,
    duration: Histogram<f64>,
}

impl HttpClientInstruments {
    /// Instruments recording into `telemetry` (`http.client.request.duration`, in seconds, with
    /// the same bucket boundaries as the server histogram).
    pub fn new(telemetry: &Telemetry) -> Self {
        let duration = telemetry
            .meter()
            .f64_histogram("http.client.request.duration")
            .with_unit("s")
            .with_description("Duration of HTTP client requests.")
            .with_boundaries(HTTP_SERVER_DURATION_BOUNDARIES.to_vec())
            .build();
        Self {
            telemetry: telemetry.clone(),
            duration,
        }
    }

    /// Sends `request` inside a CLIENT span: a child of the current `tracing` span or else of
    /// the current request's SERVER span ([`crate::tracing_spans::current_span_context`]), or
    /// of `parent` given to [`Self::send_from`].
    pub async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let parent = crate::tracing_spans::current_span_context();
        self.send_from(parent.as_ref(), request).await
    }

    /// Like [`Self::send`], for a retry: `resend_count` is how many times this request was
    /// sent before (`http.request.resend_count` on the span, per semantic conventions; 0 is the
    /// first attempt and records no attribute). Each attempt is a CLIENT span of its own.
    pub async fn send_attempt(
        &self,
        request: reqwest::RequestBuilder,
        resend_count: u32,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let parent = crate::tracing_spans::current_span_context();
        self.send_inner(parent.as_ref(), request, resend_count)
            .await
    }

    /// Like [`Self::send`], with an explicit parent (`None`: a new trace).
    pub async fn send_from(
        &self,
        parent: Option<&SpanContext>,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, reqwest::Error> {
        self.send_inner(parent, request, 0).await
    }

    async fn send_inner(
        &self,
        parent: Option<&SpanContext>,
        request: reqwest::RequestBuilder,
        resend_count: u32,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let (client, request) = request.build_split();
        let mut request = request?;
        let method = known_method(request.method());
        let url = request.url();
        let server_address = url.host_str().unwrap_or("").to_owned();
        let server_port = url.port_or_known_default().map(i64::from);
        let mut full = url.clone();
        full.set_query(None);
        full.set_fragment(None);
        let _ = full.set_username("");
        let _ = full.set_password(None);

        let mut attributes = Vec::with_capacity(6);
        attributes.push(KeyValue::new("http.request.method", method));
        attributes.push(KeyValue::new("server.address", server_address.clone()));
        if let Some(port) = server_port {
            attributes.push(KeyValue::new("server.port", port));
        }
        attributes.push(KeyValue::new("url.full", String::from(full)));
        if resend_count > 0 {
            attributes.push(KeyValue::new(
                "http.request.resend_count",
                i64::from(resend_count),
            ));
        }
        let parent_flags = parent.map(SpanContext::trace_flags);
        let parent = match parent {
            Some(parent) => OtelContext::new().with_remote_span_context(parent.clone()),
            None => OtelContext::new(),
        };
        let tracer = self.telemetry.tracer();
        let name = if method == "_OTHER" { "HTTP" } else { method };
        let mut span = tracer
            .span_builder(name)
            .with_kind(SpanKind::Client)
            .with_attributes(attributes)
            .start_with_context(tracer, &parent);

        // Propagation: the CLIENT span is the parent of whatever the callee records.
        let context = span.span_context().clone();
        let headers = request.headers_mut();
        let flags = propagated_flags(parent_flags, context.trace_flags());
        let traceparent = format_traceparent(context.trace_id(), context.span_id(), flags);
        if let Ok(value) = HeaderValue::from_bytes(&traceparent) {
            headers.insert(TRACEPARENT.clone(), value);
        }
        headers.remove(&TRACESTATE);
        // The exact list received (never the SDK's re-serialisation, see `trace_context`).
        let trace_state = tracestate_header(context.trace_state());
        if !trace_state.is_empty()
            && let Ok(value) = HeaderValue::from_str(&trace_state)
        {
            headers.insert(TRACESTATE.clone(), value);
        }

        let started = Instant::now();
        let result = client.execute(request).await;
        let seconds = started.elapsed().as_secs_f64();

        let mut metric_attributes = Vec::with_capacity(5);
        metric_attributes.push(KeyValue::new("http.request.method", method));
        metric_attributes.push(KeyValue::new("server.address", server_address));
        if let Some(port) = server_port {
            metric_attributes.push(KeyValue::new("server.port", port));
        }
        let error_type: Option<std::borrow::Cow<'static, str>> = match &result {
            Ok(response) => {
                let status = response.status().as_u16();
                let code = KeyValue::new("http.response.status_code", i64::from(status));
                metric_attributes.push(code.clone());
                span.set_attribute(code);
                (status >= 400).then(|| status.to_string().into())
            }
            Err(error) if error.is_timeout() => Some("timeout".into()),
            Err(error) if error.is_connect() => Some("connect".into()),
            Err(_) => Some("_OTHER".into()),
        };
        if let Some(error_type) = error_type {
            metric_attributes.push(KeyValue::new("error.type", error_type.clone()));
            span.set_attribute(KeyValue::new("error.type", error_type.clone()));
            span.set_status(Status::error(error_type));
        }
        self.duration.record(seconds, &metric_attributes);
        span.end();
        result
    }
}

/// The flags of the CLIENT span's `traceparent`: the SDK's sampling decision, plus Level 2's
/// `random` flag as the parent had it (the SDK clears it when it drops the span), or set for a
/// new root (the SDK's trace ids are random).
fn propagated_flags(parent: Option<TraceFlags>, client: TraceFlags) -> TraceFlags {
    let random = parent.map_or(RANDOM_FLAG, |p| p.to_u8() & RANDOM_FLAG);
    let sampled = client.to_u8() & TraceFlags::SAMPLED.to_u8();
    TraceFlags::new(sampled | random)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_random_flag_survives_the_sdk_and_new_roots_set_it() {
        let sampled = TraceFlags::SAMPLED;
        let none = TraceFlags::default();
        // The caller's random bit is kept whatever the SDK decided.
        assert_eq!(
            propagated_flags(Some(TraceFlags::new(0x03)), sampled).to_u8(),
            0x03
        );
        assert_eq!(
            propagated_flags(Some(TraceFlags::new(0x02)), none).to_u8(),
            0x02
        );
        // A caller without it does not gain it.
        assert_eq!(
            propagated_flags(Some(TraceFlags::new(0x01)), sampled).to_u8(),
            0x01
        );
        assert_eq!(propagated_flags(Some(none), none).to_u8(), 0x00);
        // A new root: random ids.
        assert_eq!(propagated_flags(None, sampled).to_u8(), 0x03);
        assert_eq!(propagated_flags(None, none).to_u8(), 0x02);
    }
}
