//! The attribute keys the library writes, in one place.
//!
//! Keys defined by the OpenTelemetry semantic conventions come from the
//! `opentelemetry-semantic-conventions` crate (the 0.33 release line, like the other
//! opentelemetry crates; feature `semconv_experimental` for the keys the registry still marks
//! as development, such as `http.response.body.size`, `enduser.*`, `cloud.*` and `faas.*`), so
//! a typo cannot ship. Keys of the library's own (`app.*`) are the constants below. Domain keys
//! (`shop.*`) belong to the app.

pub(crate) use opentelemetry_semantic_conventions::attribute::{
    CLIENT_ADDRESS, CLOUD_ACCOUNT_ID, CLOUD_PLATFORM, CLOUD_PROVIDER, CLOUD_REGION,
    DB_COLLECTION_NAME, DB_OPERATION_NAME, DB_QUERY_SUMMARY, DB_SYSTEM_NAME,
    DEPLOYMENT_ENVIRONMENT_NAME, ERROR_TYPE, EXCEPTION_MESSAGE, EXCEPTION_TYPE, FAAS_INSTANCE,
    FAAS_NAME, FAAS_VERSION, HTTP_REQUEST_METHOD, HTTP_REQUEST_METHOD_ORIGINAL,
    HTTP_RESPONSE_BODY_SIZE, HTTP_RESPONSE_STATUS_CODE, HTTP_ROUTE, NETWORK_PROTOCOL_VERSION,
    SERVER_ADDRESS, SERVER_PORT, SERVICE_INSTANCE_ID, SERVICE_NAME, SERVICE_VERSION, URL_PATH,
    URL_SCHEME, USER_AGENT_ORIGINAL,
};

pub(crate) use opentelemetry_semantic_conventions::metric::{
    DB_CLIENT_OPERATION_DURATION, HTTP_SERVER_ACTIVE_REQUESTS, HTTP_SERVER_REQUEST_DURATION,
};

/// `app.errors`: one increment per failed request.
pub const APP_ERRORS: &str = "app.errors";
/// `app.telemetry.dropped`: records dropped before export (full queue).
pub const APP_TELEMETRY_DROPPED: &str = "app.telemetry.dropped";
/// `app.telemetry.export.failures`: OTLP export requests that failed.
pub const APP_TELEMETRY_EXPORT_FAILURES: &str = "app.telemetry.export.failures";
/// `app.telemetry.log_lines.dropped`: stdout lines dropped (the writer could not keep up).
pub const APP_TELEMETRY_LOG_LINES_DROPPED: &str = "app.telemetry.log_lines.dropped";

/// Instrumentation scope name of everything this library records.
pub const SCOPE_NAME: &str = "telemetry";

/// `http.request.header.x-request-id`: the request id on the SERVER span, a string array as
/// the convention for `http.request.header.<key>` requires.
pub const HTTP_REQUEST_HEADER_X_REQUEST_ID: &str = "http.request.header.x-request-id";

/// `app.error.code`: the stable error code (spans and logs, never metrics).
pub const APP_ERROR_CODE: &str = "app.error.code";
/// `app.error.message`: the operator-facing error detail, scrubbed, on the access log record.
pub const APP_ERROR_MESSAGE: &str = "app.error.message";
/// `app.request.id`: the request id on every OTLP log record emitted while serving a request.
pub const APP_REQUEST_ID: &str = "app.request.id";
/// `app.request.duration_ms`: the request's duration on the access log record.
pub const APP_REQUEST_DURATION_MS: &str = "app.request.duration_ms";
/// `signal` of the exporter-health metrics (`spans`, `logs`, `metrics`).
pub const APP_TELEMETRY_SIGNAL: &str = "signal";

/// Event name of the access log record (the OTLP LogRecord's `event_name`).
pub const ACCESS_EVENT_NAME: &str = "app.http.access";

/// The `tracing` field whose value becomes an OTLP log record's `event_name` (and not an
/// attribute: `event.name` as an attribute is deprecated). Stdout lines keep it as a field.
pub const EVENT_NAME_FIELD: &str = "event.name";

/// The value of `error.type` on a SERVER span whose client went away before the response.
pub const ERROR_TYPE_CANCELLED: &str = "cancelled";

/// The request methods the HTTP conventions name; anything else is `_OTHER`.
pub(crate) const METHODS: [&str; 10] = [
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE", "_OTHER",
];

/// `http.request.method` of `method`: its name when the conventions know it, else `_OTHER`.
pub(crate) fn known_method(method: &http::Method) -> &'static str {
    METHODS[method_index(method)]
}

/// The index of `method` in [`METHODS`].
pub(crate) fn method_index(method: &http::Method) -> usize {
    use http::Method;
    match *method {
        Method::GET => 0,
        Method::POST => 1,
        Method::PUT => 2,
        Method::DELETE => 3,
        Method::PATCH => 4,
        Method::HEAD => 5,
        Method::OPTIONS => 6,
        Method::CONNECT => 7,
        Method::TRACE => 8,
        _ => 9,
    }
}

/// The span name's method part: an unknown method is named `HTTP`, never by the raw method.
pub(crate) fn span_method(known: &'static str) -> &'static str {
    if known == "_OTHER" { "HTTP" } else { known }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn known_methods_keep_their_name_and_others_are_other() {
        for name in &METHODS[..9] {
            let method = http::Method::from_bytes(name.as_bytes()).unwrap();
            assert_eq!(known_method(&method), *name);
        }
        let custom = http::Method::from_bytes(b"BREW").unwrap();
        assert_eq!(known_method(&custom), "_OTHER");
        assert_eq!(span_method(known_method(&custom)), "HTTP");
        assert_eq!(span_method("GET"), "GET");
    }
}
