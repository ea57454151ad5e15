//! The simulator's error answers: `{"error": {"code", "message", "field"?}}` (the provider's
//! wire shape, not the shop's), observed once through [`ErrorObservation`].

use std::borrow::Cow;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use telemetry::{ErrorKind, ErrorObservation};

/// One failed simulator request.
#[derive(Debug)]
pub(super) struct SimError {
    pub(super) status: StatusCode,
    pub(super) kind: ErrorKind,
    pub(super) code: &'static str,
    pub(super) message: Cow<'static, str>,
    pub(super) field: Option<Cow<'static, str>>,
}

impl SimError {
    pub(super) fn new(
        status: StatusCode,
        kind: ErrorKind,
        code: &'static str,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            kind,
            code,
            message: message.into(),
            field: None,
        }
    }

    /// A 422 `validation` error for one input `field`.
    pub(super) fn invalid(
        code: &'static str,
        field: impl Into<Cow<'static, str>>,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            field: Some(field.into()),
            ..Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorKind::Validation,
                code,
                message,
            )
        }
    }

    pub(super) fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: Body<'a>,
}

#[derive(Serialize)]
struct Body<'a> {
    code: &'static str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl IntoResponse for SimError {
    fn into_response(self) -> Response {
        let body = Envelope {
            error: Body {
                code: self.code,
                message: &self.message,
                field: self.field.as_deref(),
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        // The message is fixed text or names a field: safe for telemetry as it is.
        response.extensions_mut().insert(ErrorObservation::new(
            self.kind,
            self.code,
            self.message.clone(),
        ));
        response
    }
}
