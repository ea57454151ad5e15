//! The single error observation point.
//!
//! Handlers never log errors. They return them; the error's `IntoResponse` puts an
//! [`ErrorObservation`] into the response extensions, and the telemetry middleware observes
//! it exactly once when the response leaves: one `app.errors` increment (`error.type`,
//! `http.route`), span status error with one `exception` event for 5xx, and the request's
//! single access-log line at WARN (4xx) or ERROR (5xx) carrying `error.type` and `error.code`.
//!
//! Responses of 400 and above without an observation (axum's own rejections, the fallback
//! 404) are observed the same way with a kind derived from the status code, and panics are
//! caught and observed as [`ErrorKind::Panic`].

use std::borrow::Cow;

use http::StatusCode;

/// The closed set of error kinds: the value of `error.type` on spans, logs and `app.errors`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Bad input (400/422).
    Validation,
    /// Missing or invalid credentials (401).
    Unauthenticated,
    /// Authenticated but not allowed (403).
    Forbidden,
    /// No such resource or route (404, 405).
    NotFound,
    /// State conflict: out of stock, idempotency key reused (409).
    Conflict,
    /// The payment provider declined (402).
    PaymentDeclined,
    /// A dependency is unavailable or overloaded (502/503).
    Unavailable,
    /// A dependency was too slow (504).
    Timeout,
    /// A bug or unexpected failure (500).
    Internal,
    /// A handler panicked (500).
    Panic,
}

impl ErrorKind {
    /// The `error.type` value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Validation => "validation",
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::PaymentDeclined => "payment_declined",
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::Internal => "internal",
            Self::Panic => "panic",
        }
    }

    /// The kind an unexplained error status maps to.
    pub fn from_status(status: StatusCode) -> Self {
        match status.as_u16() {
            401 => Self::Unauthenticated,
            403 => Self::Forbidden,
            404 | 405 | 410 => Self::NotFound,
            402 => Self::PaymentDeclined,
            409 => Self::Conflict,
            408 | 504 => Self::Timeout,
            502 | 503 | 429 => Self::Unavailable,
            400..=499 => Self::Validation,
            _ => Self::Internal,
        }
    }

    /// The default status code of this kind.
    pub fn status(self) -> StatusCode {
        match self {
            Self::Validation => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Conflict => StatusCode::CONFLICT,
            Self::PaymentDeclined => StatusCode::PAYMENT_REQUIRED,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Self::Internal | Self::Panic => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// What a failed request tells the observation point. Put it in the response extensions
/// (`response.extensions_mut().insert(observation)`) from your error's `IntoResponse`.
///
/// ```
/// use axum::response::{IntoResponse, Response};
/// use telemetry::error::{ErrorKind, ErrorObservation};
///
/// struct NotFound;
/// impl IntoResponse for NotFound {
///     fn into_response(self) -> Response {
///         let mut response = (http::StatusCode::NOT_FOUND, "no such thing").into_response();
///         response
///             .extensions_mut()
///             .insert(ErrorObservation::new(ErrorKind::NotFound, "thing.not_found", "no such thing"));
///         response
///     }
/// }
/// ```
#[derive(Debug, Clone)]
pub struct ErrorObservation {
    /// `error.type`: drives alerting and the `app.errors` counter.
    pub kind: ErrorKind,
    /// `app.error.code`: a stable, finer code for humans and dashboards (spans and logs only).
    pub code: Cow<'static, str>,
    /// Internal detail for operators (scrubbed of PII before it is recorded; never sent to the client).
    pub detail: Cow<'static, str>,
}

impl ErrorObservation {
    /// An observation of `kind` with a stable `code` and operator-facing `detail`.
    pub fn new(
        kind: ErrorKind,
        code: impl Into<Cow<'static, str>>,
        detail: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            kind,
            code: code.into(),
            detail: detail.into(),
        }
    }

    pub(crate) fn from_status(status: StatusCode, matched_route: bool) -> Self {
        let kind = ErrorKind::from_status(status);
        let code: Cow<'static, str> = match status.as_u16() {
            404 if !matched_route => "route.not_found".into(),
            405 => "route.method_not_allowed".into(),
            code => format!("http.{code}").into(),
        };
        Self {
            kind,
            code,
            detail: Cow::Borrowed(status.canonical_reason().unwrap_or("error status")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_kinds_and_back() {
        for kind in [
            ErrorKind::Validation,
            ErrorKind::Unauthenticated,
            ErrorKind::Forbidden,
            ErrorKind::NotFound,
            ErrorKind::Conflict,
            ErrorKind::PaymentDeclined,
            ErrorKind::Unavailable,
            ErrorKind::Timeout,
            ErrorKind::Internal,
        ] {
            assert_eq!(ErrorKind::from_status(kind.status()), kind);
        }
        assert_eq!(
            ErrorKind::from_status(StatusCode::BAD_REQUEST),
            ErrorKind::Validation
        );
    }
}
