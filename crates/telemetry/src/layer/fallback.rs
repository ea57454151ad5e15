//! The JSON error body every failure shares, and the 404 / 405 fallbacks that answer with it.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::header::{CONTENT_TYPE, HeaderValue};

use crate::error::{ErrorKind, ErrorObservation};

/// The JSON error body `{"error": {"kind", "code", "message"}}`, answered as
/// `content-type: application/json`. Build it with [`error_body`]; pair it with a status:
///
/// ```
/// use axum::response::IntoResponse;
/// let response =
///     (http::StatusCode::FORBIDDEN, telemetry::layer::error_body("forbidden", "x.refused", "no"))
///         .into_response();
/// assert_eq!(response.headers()["content-type"], "application/json");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorBody(String);

impl ErrorBody {
    /// The JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl IntoResponse for ErrorBody {
    fn into_response(self) -> Response {
        let mut response = self.0.into_response();
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    }
}

/// The JSON error body for `kind`, `code` and the client-safe `message` (escaped).
pub fn error_body(kind: &str, code: &str, message: &str) -> ErrorBody {
    let mut out = Vec::with_capacity(96);
    out.extend_from_slice(b"{\"error\":{\"kind\":");
    crate::log_format::json_str(&mut out, kind);
    out.extend_from_slice(b",\"code\":");
    crate::log_format::json_str(&mut out, code);
    out.extend_from_slice(b",\"message\":");
    crate::log_format::json_str(&mut out, message);
    out.extend_from_slice(b"}}");
    ErrorBody(String::from_utf8(out).unwrap_or_default())
}

/// A JSON error response carrying the observation the middleware records.
fn observed_error(
    status: StatusCode,
    kind: ErrorKind,
    code: &'static str,
    message: &'static str,
    detail: &'static str,
) -> Response {
    let mut response = (status, error_body(kind.as_str(), code, message)).into_response();
    response
        .extensions_mut()
        .insert(ErrorObservation::new(kind, code, detail));
    response
}

/// The answer to a panicking handler: 500 with the JSON error body (`handler.panic`). The
/// middleware records the panic itself, so this carries no observation.
pub(crate) fn panic_response() -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        error_body("internal", "handler.panic", "internal server error"),
    )
        .into_response()
}

/// A fallback for a known path with a method it does not serve, answering 405 with the JSON
/// error body (`route.method_not_allowed`). Use with `Router::method_not_allowed_fallback`.
pub async fn method_not_allowed_fallback() -> Response {
    observed_error(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorKind::NotFound,
        "route.method_not_allowed",
        "this path does not accept this method",
        "no handler for this method on the matched path",
    )
}

/// A fallback for unmatched routes answering 404 with the JSON error body
/// (`route.not_found`). Use with `Router::fallback`.
pub async fn not_found_fallback() -> Response {
    observed_error(
        StatusCode::NOT_FOUND,
        ErrorKind::NotFound,
        "route.not_found",
        "no such route",
        "no route matches the request path",
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    async fn body_json(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn the_body_escapes_its_values() {
        let body = error_body("validation", "a\"b", "line\nbreak");
        let v: serde_json::Value = serde_json::from_str(body.as_str()).unwrap();
        assert_eq!(v["error"]["code"], "a\"b");
        assert_eq!(v["error"]["message"], "line\nbreak");
    }

    #[tokio::test]
    async fn error_bodies_are_answered_as_json() {
        let response = (
            StatusCode::FORBIDDEN,
            error_body("forbidden", "x.refused", "no"),
        )
            .into_response();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(body_json(response).await["error"]["kind"], "forbidden");
    }

    #[tokio::test]
    async fn fallbacks_answer_json_and_carry_their_observation() {
        for (response, status, code) in [
            (not_found_fallback().await, 404, "route.not_found"),
            (
                method_not_allowed_fallback().await,
                405,
                "route.method_not_allowed",
            ),
            (panic_response(), 500, "handler.panic"),
        ] {
            assert_eq!(response.status().as_u16(), status);
            assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
            let observed = response
                .extensions()
                .get::<ErrorObservation>()
                .map(|o| o.code.clone());
            if status == 500 {
                assert!(observed.is_none(), "the middleware observes panics itself");
            } else {
                assert_eq!(observed.as_deref(), Some(code));
            }
            assert_eq!(body_json(response).await["error"]["code"], code);
        }
    }
}
