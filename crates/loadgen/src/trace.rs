//! W3C trace context per journey: every journey is one trace with a fresh random trace id,
//! every request a fresh span id under it, flags `03` (sampled, and the trace id is random —
//! W3C Trace Context level 2). When `OTEL_EXPORTER_OTLP_ENDPOINT` is set, the journey is a
//! root INTERNAL span and each request a CLIENT span, exported through the workspace's
//! `telemetry` crate; the `traceparent` sent is then the CLIENT span's.

use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt as _, TraceFlags, TraceId,
    TraceState, Tracer as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::Span as SdkSpan;
use rand::Rng;
use telemetry::Telemetry;
use telemetry::trace_context::format_traceparent;

/// Sampled (0x01) and random trace id (0x02).
const FLAGS: TraceFlags = TraceFlags::new(0x03);

/// Span export of the run (present when OTLP export is configured).
#[derive(Debug, Clone)]
pub(crate) struct Exporter {
    telemetry: Telemetry,
    server_address: String,
    server_port: i64,
    base_url: String,
}

impl Exporter {
    pub(crate) fn new(telemetry: Telemetry, authority: &str, base_url: &str) -> Self {
        let (host, port) = authority.rsplit_once(':').unwrap_or((authority, "80"));
        Self {
            telemetry,
            server_address: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            server_port: port.parse().unwrap_or(80),
            base_url: base_url.to_owned(),
        }
    }
}

/// The trace of one journey.
#[derive(Debug)]
pub(crate) struct JourneyTrace {
    pub(crate) trace_id: [u8; 16],
    exported: Option<(SdkSpan, Context)>,
}

/// The span of one request.
#[derive(Debug)]
pub(crate) struct RequestSpan {
    /// The `traceparent` header value to send.
    pub(crate) traceparent: [u8; 55],
    exported: Option<SdkSpan>,
}

impl JourneyTrace {
    /// A new trace: a random id, or the id of a new exported root span.
    pub(crate) fn start(exporter: Option<&Exporter>, journey: &str, rng: &mut impl Rng) -> Self {
        let Some(exporter) = exporter else {
            let mut trace_id = [0u8; 16];
            while trace_id == [0; 16] {
                rng.fill(&mut trace_id);
            }
            return Self {
                trace_id,
                exported: None,
            };
        };
        let tracer = exporter.telemetry.tracer();
        let span = tracer
            .span_builder(format!("journey {journey}"))
            .with_kind(SpanKind::Internal)
            .with_attributes([KeyValue::new("app.loadgen.journey", journey.to_owned())])
            .start(tracer);
        let context = span.span_context();
        // Children carry the random-trace-id flag too (the SDK's own contexts only know
        // "sampled").
        let parent = SpanContext::new(
            context.trace_id(),
            context.span_id(),
            FLAGS,
            true,
            TraceState::NONE,
        );
        let trace_id = context.trace_id().to_bytes();
        Self {
            trace_id,
            exported: Some((span, Context::new().with_remote_span_context(parent))),
        }
    }

    /// A span for the next request of the journey.
    pub(crate) fn request(
        &self,
        exporter: Option<&Exporter>,
        method: &'static str,
        template: &str,
        path: &str,
        rng: &mut impl Rng,
    ) -> RequestSpan {
        match (exporter, &self.exported) {
            (Some(exporter), Some((_, parent))) => {
                let tracer = exporter.telemetry.tracer();
                let span = tracer
                    .span_builder(method)
                    .with_kind(SpanKind::Client)
                    .with_attributes([
                        KeyValue::new("http.request.method", method),
                        KeyValue::new("server.address", exporter.server_address.clone()),
                        KeyValue::new("server.port", exporter.server_port),
                        KeyValue::new("url.full", format!("{}{path}", exporter.base_url)),
                        KeyValue::new("url.template", template.to_owned()),
                    ])
                    .start_with_context(tracer, parent);
                let context = span.span_context();
                RequestSpan {
                    traceparent: format_traceparent(
                        context.trace_id(),
                        context.span_id(),
                        context.trace_flags(),
                    ),
                    exported: Some(span),
                }
            }
            _ => {
                let mut span_id = [0u8; 8];
                while span_id == [0; 8] {
                    rng.fill(&mut span_id);
                }
                RequestSpan {
                    traceparent: format_traceparent(
                        TraceId::from_bytes(self.trace_id),
                        SpanId::from_bytes(span_id),
                        FLAGS,
                    ),
                    exported: None,
                }
            }
        }
    }

    /// Ends the journey's span.
    pub(crate) fn end(self) {
        if let Some((mut span, _)) = self.exported {
            span.end();
        }
    }
}

impl RequestSpan {
    /// Ends the request's span with its outcome: a status, or the transport failure.
    pub(crate) fn end(self, status: Result<u16, &'static str>) {
        let Some(mut span) = self.exported else {
            return;
        };
        match status {
            Ok(status) => {
                span.set_attribute(KeyValue::new(
                    "http.response.status_code",
                    i64::from(status),
                ));
                if status >= 400 {
                    span.set_attribute(KeyValue::new("error.type", status.to_string()));
                    span.set_status(Status::error(status.to_string()));
                }
            }
            Err(failure) => {
                span.set_attribute(KeyValue::new("error.type", failure));
                span.set_status(Status::error(failure));
            }
        }
        span.end();
    }
}

/// The trace id of a `traceparent` header value, if it is valid.
pub(crate) fn trace_id_of(traceparent: &[u8]) -> Option<[u8; 16]> {
    telemetry::trace_context::parse_traceparent(traceparent).map(|(id, _, _)| id.to_bytes())
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn each_journey_is_a_fresh_trace_and_each_request_a_fresh_span() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        let a = JourneyTrace::start(None, "j", &mut rng);
        let b = JourneyTrace::start(None, "j", &mut rng);
        assert_ne!(a.trace_id, b.trace_id);
        let first = a.request(None, "GET", "/", "/", &mut rng);
        let second = a.request(None, "GET", "/", "/", &mut rng);
        let first = std::str::from_utf8(&first.traceparent).unwrap().to_owned();
        let second = std::str::from_utf8(&second.traceparent).unwrap().to_owned();
        assert!(
            first.starts_with(&format!("00-{}-", hex(&a.trace_id))),
            "{first}"
        );
        assert!(first.ends_with("-03"), "{first}");
        assert_eq!(first[..36], second[..36]);
        assert_ne!(first[36..52], second[36..52]);
        assert_eq!(trace_id_of(first.as_bytes()), Some(a.trace_id));
    }
}
