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

/// The error kinds: the value of `error.type` on spans, logs and `app.errors`.
///
/// The library's own set is closed and generic; an application adds the kinds of its domain as
/// [`ErrorKind::App`] values made by [`app_error_kind!`](crate::app_error_kind), which checks
/// them at compile time. `error.type` is a metric attribute, so its values must stay bounded:
/// every possible value is a constant somewhere in the program, and none is built from request
/// data.
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
    /// State conflict: a resource already exists, a precondition no longer holds (409).
    Conflict,
    /// A dependency is unavailable or overloaded (502/503).
    Unavailable,
    /// A dependency was too slow (504).
    Timeout,
    /// A bug or unexpected failure (500).
    Internal,
    /// A handler panicked (500).
    Panic,
    /// A kind of the application's domain, declared with [`app_error_kind!`](crate::app_error_kind).
    App(AppErrorKind),
}

/// The library's generic kinds, in their documented order.
pub const GENERIC_ERROR_KINDS: [ErrorKind; 9] = [
    ErrorKind::Validation,
    ErrorKind::Unauthenticated,
    ErrorKind::Forbidden,
    ErrorKind::NotFound,
    ErrorKind::Conflict,
    ErrorKind::Unavailable,
    ErrorKind::Timeout,
    ErrorKind::Internal,
    ErrorKind::Panic,
];

/// `error.type` values the library uses besides the kinds (`cancelled` on spans of requests
/// whose client went away, `_OTHER` per semantic conventions): an application kind cannot
/// take them either.
const RESERVED_NAMES: [&str; 2] = ["cancelled", "_OTHER"];

/// Longest name of an application kind.
pub const MAX_APP_ERROR_KIND_LEN: usize = 32;

impl ErrorKind {
    /// The `error.type` value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Validation => "validation",
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::Internal => "internal",
            Self::Panic => "panic",
            Self::App(kind) => kind.name,
        }
    }

    /// The generic kind an unexplained error status maps to (a response without an
    /// [`ErrorObservation`]: application kinds are never guessed from a status).
    pub fn from_status(status: StatusCode) -> Self {
        match status.as_u16() {
            401 => Self::Unauthenticated,
            403 => Self::Forbidden,
            404 | 405 | 410 => Self::NotFound,
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
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Self::Internal | Self::Panic => StatusCode::INTERNAL_SERVER_ERROR,
            Self::App(kind) => kind.status(),
        }
    }
}

/// An application's own error kind: a name for `error.type` and its status code, checked when
/// the program is compiled. Made only by [`app_error_kind!`](crate::app_error_kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AppErrorKind {
    name: &'static str,
    status: u16,
}

impl AppErrorKind {
    /// Checks an application kind; used by [`app_error_kind!`](crate::app_error_kind) inside
    /// a `const` block, so a bad name or status is a compile error, never a runtime panic.
    ///
    /// The name is 1–32 characters of `[a-z0-9_]` starting with a letter, and none of the
    /// library's kinds or reserved values; the status is 400–599.
    #[doc(hidden)]
    pub const fn checked(name: &'static str, status: u16) -> Self {
        let bytes = name.as_bytes();
        assert!(
            !bytes.is_empty() && bytes.len() <= MAX_APP_ERROR_KIND_LEN,
            "an application error kind has 1 to 32 characters"
        );
        assert!(
            bytes[0].is_ascii_lowercase(),
            "an application error kind starts with a lowercase letter"
        );
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            assert!(
                b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_',
                "an application error kind is made of a-z, 0-9 and _"
            );
            i += 1;
        }
        let mut k = 0;
        while k < GENERIC_ERROR_KINDS.len() {
            assert!(
                !same(GENERIC_ERROR_KINDS[k].as_str(), name),
                "an application error kind cannot reuse a generic kind's name"
            );
            k += 1;
        }
        let mut r = 0;
        while r < RESERVED_NAMES.len() {
            assert!(
                !same(RESERVED_NAMES[r], name),
                "an application error kind cannot use a reserved error.type value"
            );
            r += 1;
        }
        assert!(
            status >= 400 && status <= 599,
            "an application error kind's status is 400 to 599"
        );
        Self { name, status }
    }

    /// The `error.type` value.
    pub const fn name(self) -> &'static str {
        self.name
    }

    /// The status code answered for this kind.
    pub fn status(self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Declares an application error kind: `app_error_kind!("name", status)` is an
/// [`ErrorKind::App`], checked at compile time (1–32 characters of `[a-z0-9_]` starting with a
/// letter, not a generic kind's name, status 400–599).
///
/// ```
/// use telemetry::{ErrorKind, app_error_kind};
///
/// /// 402: the payment provider declined the charge.
/// pub const PAYMENT_DECLINED: ErrorKind = app_error_kind!("payment_declined", 402);
///
/// assert_eq!(PAYMENT_DECLINED.as_str(), "payment_declined");
/// assert_eq!(PAYMENT_DECLINED.status(), http::StatusCode::PAYMENT_REQUIRED);
/// ```
///
/// A bad declaration does not compile:
///
/// ```compile_fail
/// const BAD: telemetry::ErrorKind = telemetry::app_error_kind!("Payment Declined", 402);
/// ```
///
/// ```compile_fail
/// const SHADOWS: telemetry::ErrorKind = telemetry::app_error_kind!("timeout", 504);
/// ```
///
/// ```compile_fail
/// // Even outside a `const` item: the check runs in a `const` block.
/// fn kind() -> telemetry::ErrorKind { telemetry::app_error_kind!("ok", 200) }
/// ```
#[macro_export]
macro_rules! app_error_kind {
    ($name:expr, $status:expr $(,)?) => {
        $crate::error::ErrorKind::App(
            const { $crate::error::AppErrorKind::checked($name, $status) },
        )
    };
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
    fn statuses_map_to_generic_kinds_and_back() {
        for kind in GENERIC_ERROR_KINDS {
            if kind != ErrorKind::Panic {
                assert_eq!(ErrorKind::from_status(kind.status()), kind);
            }
        }
        assert_eq!(
            ErrorKind::from_status(StatusCode::BAD_REQUEST),
            ErrorKind::Validation
        );
        // No status names an application kind.
        assert_eq!(
            ErrorKind::from_status(StatusCode::PAYMENT_REQUIRED),
            ErrorKind::Validation
        );
    }

    #[test]
    fn the_generic_kinds_have_distinct_names_and_no_domain_words() {
        let names: Vec<&str> = GENERIC_ERROR_KINDS.iter().map(|k| k.as_str()).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len());
        assert!(!names.contains(&"payment_declined"));
    }

    #[test]
    fn an_app_kind_carries_its_name_and_status() {
        const TEAPOT: ErrorKind = crate::app_error_kind!("teapot_refused", 418);
        assert_eq!(TEAPOT.as_str(), "teapot_refused");
        assert_eq!(TEAPOT.status(), StatusCode::IM_A_TEAPOT);
        assert_ne!(TEAPOT, ErrorKind::Validation);
        assert!(matches!(TEAPOT, ErrorKind::App(kind) if kind.name() == "teapot_refused"));
    }

    /// The checks themselves (run here at runtime to see each message; the macro runs them at
    /// compile time, see its `compile_fail` examples).
    #[test]
    fn invalid_app_kinds_are_refused() {
        for (name, status) in [
            ("", 400),
            ("Upper", 400),
            ("1digit", 400),
            ("with space", 400),
            ("dash-ed", 400),
            ("not_found", 404),
            ("cancelled", 499),
            ("_OTHER", 500),
            ("thirty_three_characters_long_xxxx", 400),
            ("ok", 200),
            ("too_big", 600),
        ] {
            let result = std::panic::catch_unwind(|| AppErrorKind::checked(name, status));
            assert!(result.is_err(), "{name:?} {status}");
        }
        let longest = "a".repeat(MAX_APP_ERROR_KIND_LEN);
        let longest: &'static str = Box::leak(longest.into_boxed_str());
        assert_eq!(AppErrorKind::checked(longest, 400).name(), longest);
    }
}
