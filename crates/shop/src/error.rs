//! The one error type of the HTTP layer.
//!
//! Handlers return [`ApiError`]; they never log it. Its `IntoResponse` writes the design's JSON
//! shape and puts a [`telemetry::ErrorObservation`] into the response extensions, where the
//! telemetry middleware records it exactly once (span status, `app.errors`, the access line).
//! The client sees the kind, a stable code and a safe message; internal detail goes only into
//! the observation.
//!
//! ```json
//! {"error": {"kind": "validation", "code": "request.invalid_query", "message": "…",
//!            "fields": [{"field": "per_page", "message": "must be an integer between 1 and 100"}]}}
//! ```

use std::borrow::Cow;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use telemetry::{ErrorKind, ErrorObservation};
use utoipa::ToSchema;

use crate::store::StoreError;

/// The shop's own error kind (`error.type` = `payment_declined`, 402): the payment provider
/// declined the charge. The telemetry library's kinds are generic; this one is declared here and
/// checked at compile time by [`telemetry::app_error_kind!`].
pub const PAYMENT_DECLINED: ErrorKind = telemetry::app_error_kind!("payment_declined", 402);

/// Every error kind the shop declares on top of the library's generic ones
/// ([`telemetry::error::GENERIC_ERROR_KINDS`]).
pub const SHOP_ERROR_KINDS: [ErrorKind; 1] = [PAYMENT_DECLINED];

/// One invalid input field: its name as the client sent it and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// Query parameter, path parameter or body field name.
    #[schema(value_type = String, example = "per_page")]
    pub field: Cow<'static, str>,
    /// What would be accepted (never echoes the rejected value).
    #[schema(value_type = String, example = "must be an integer between 1 and 100")]
    pub message: Cow<'static, str>,
}

/// Every way a request can fail, mapped to a status, an `error.type` kind and a stable code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The addressed resource does not exist (404).
    #[error("{code}: {message}")]
    NotFound {
        /// Stable code, e.g. `product.not_found`.
        code: &'static str,
        /// Safe message for the client.
        message: Cow<'static, str>,
    },
    /// The request could not be read at all: malformed JSON (400), a body that is not JSON
    /// (415), a body too large (413). `error.type` is `validation`.
    #[error("{code}: {message}")]
    Rejected {
        /// 400, 413 or 415.
        status: StatusCode,
        /// Stable code, e.g. `request.malformed_json`.
        code: &'static str,
        /// Safe message for the client.
        message: Cow<'static, str>,
    },
    /// No valid credentials (401, with `WWW-Authenticate: Bearer`). The message is the same
    /// whether the token is missing, malformed or unknown.
    #[error("{code}: {message}")]
    Unauthenticated {
        /// Stable code, e.g. `auth.token_invalid`.
        code: &'static str,
        /// Safe message for the client.
        message: Cow<'static, str>,
    },
    /// The request conflicts with the current state, e.g. a unique value already taken (409).
    #[error("{code}: {message}")]
    Conflict {
        /// Stable code, e.g. `user.email_taken`.
        code: &'static str,
        /// Safe message for the client.
        message: Cow<'static, str>,
        /// The fields whose values conflict (may be empty).
        fields: Vec<FieldError>,
    },
    /// The request is well-formed but its values break a rule (422).
    #[error("{code}: {message}")]
    Validation {
        /// Stable code, e.g. `request.invalid_query`.
        code: &'static str,
        /// Safe message for the client.
        message: Cow<'static, str>,
        /// The offending fields (may be empty when no single field is at fault).
        fields: Vec<FieldError>,
    },
    /// The payment provider declined the charge (402).
    #[error("{code}: {message}")]
    PaymentDeclined {
        /// Stable code, e.g. `payment.declined`.
        code: &'static str,
        /// Safe message for the client.
        message: Cow<'static, str>,
    },
    /// An upstream dependency (the payment provider) failed or could not be reached (502);
    /// `error.type` is `unavailable`.
    #[error("{code}: {detail}")]
    BadGateway {
        /// Stable code, e.g. `payment.unavailable`.
        code: &'static str,
        /// Operator-facing detail (telemetry only).
        detail: String,
    },
    /// An upstream dependency did not answer in time (504); `error.type` is `timeout`.
    #[error("{code}: {detail}")]
    GatewayTimeout {
        /// Stable code, e.g. `payment.timeout`.
        code: &'static str,
        /// Operator-facing detail (telemetry only).
        detail: String,
    },
    /// A dependency is down or overloaded (503); alerting looks at these.
    #[error("{code}: {detail}")]
    Unavailable {
        /// Stable code, e.g. `db.unavailable`.
        code: &'static str,
        /// Operator-facing detail (telemetry only).
        detail: String,
    },
    /// A bug or an unexpected failure (500).
    #[error("{code}: {detail}")]
    Internal {
        /// Stable code, e.g. `db.unexpected`.
        code: &'static str,
        /// Operator-facing detail (telemetry only).
        detail: String,
    },
}

impl ApiError {
    /// A 422 with `code` for one invalid `field`.
    pub fn invalid_field(
        code: &'static str,
        field: impl Into<Cow<'static, str>>,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        let field = field.into();
        Self::Validation {
            code,
            message: format!("invalid value for {field}").into(),
            fields: vec![FieldError {
                field,
                message: message.into(),
            }],
        }
    }

    /// A 422 with `code` for several invalid fields, in the order given.
    pub fn invalid_fields(code: &'static str, fields: Vec<FieldError>) -> Self {
        let names: Vec<&str> = fields.iter().map(|f| f.field.as_ref()).collect();
        Self::Validation {
            code,
            message: format!("invalid value for {}", names.join(", ")).into(),
            fields,
        }
    }

    /// The one answer to a missing, malformed or unknown bearer token (401
    /// `auth.token_invalid`).
    pub fn token_invalid() -> Self {
        Self::Unauthenticated {
            code: "auth.token_invalid",
            message: "a valid bearer token is required (Authorization: Bearer <token>)".into(),
        }
    }

    /// The `error.type` kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound { .. } => ErrorKind::NotFound,
            Self::Rejected { .. } | Self::Validation { .. } => ErrorKind::Validation,
            Self::Unauthenticated { .. } => ErrorKind::Unauthenticated,
            Self::Conflict { .. } => ErrorKind::Conflict,
            Self::PaymentDeclined { .. } => PAYMENT_DECLINED,
            Self::BadGateway { .. } | Self::Unavailable { .. } => ErrorKind::Unavailable,
            Self::GatewayTimeout { .. } => ErrorKind::Timeout,
            Self::Internal { .. } => ErrorKind::Internal,
        }
    }

    /// The stable code (`app.error.code`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound { code, .. }
            | Self::Rejected { code, .. }
            | Self::Unauthenticated { code, .. }
            | Self::Conflict { code, .. }
            | Self::Validation { code, .. }
            | Self::PaymentDeclined { code, .. }
            | Self::BadGateway { code, .. }
            | Self::GatewayTimeout { code, .. }
            | Self::Unavailable { code, .. }
            | Self::Internal { code, .. } => code,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::PoolExhausted => Self::Unavailable {
                code: "db.pool_exhausted",
                detail: error.to_string(),
            },
            StoreError::Unavailable(_) => Self::Unavailable {
                code: "db.unavailable",
                detail: error.to_string(),
            },
            StoreError::Unexpected(_) => Self::Internal {
                code: "db.unexpected",
                detail: error.to_string(),
            },
        }
    }
}

/// axum's JSON body rejections, answered with the JSON error shape instead of plain text.
impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let (status, code, message) = match &rejection {
            JsonRejection::JsonSyntaxError(_) => (
                StatusCode::BAD_REQUEST,
                "request.malformed_json",
                "the body is not valid JSON",
            ),
            JsonRejection::JsonDataError(_) => {
                return Self::Validation {
                    code: "request.invalid_body",
                    message: "the body does not have the expected shape (a JSON object)".into(),
                    fields: Vec::new(),
                };
            }
            JsonRejection::MissingJsonContentType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "request.unsupported_media_type",
                "the body must be JSON (Content-Type: application/json)",
            ),
            _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "request.body_too_large",
                "the body is too large",
            ),
            _ => (
                StatusCode::BAD_REQUEST,
                "request.unreadable_body",
                "the body could not be read",
            ),
        };
        Self::Rejected {
            status,
            code,
            message: message.into(),
        }
    }
}

/// [`ErrorEnvelope`] as the OpenAPI annotations name it (`body = ErrorResponse`).
pub type ErrorResponse = ErrorEnvelope<'static>;

/// The body of every error answer: `{"error": {...}}`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorEnvelope<'a> {
    /// What went wrong.
    pub error: ErrorBody<'a>,
}

/// What went wrong: the kind (the error taxonomy, `error.type`), a stable code and a safe
/// message, plus the offending fields of a validation error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody<'a> {
    /// The kind of error (drives the status code).
    #[schema(value_type = crate::openapi::ErrorKindName)]
    pub kind: &'static str,
    /// A stable, finer code (`app.error.code`), e.g. `product.not_found`.
    #[schema(
        example = "request.invalid_query",
        pattern = "^[a-z0-9_]+(\\.[a-z0-9_]+)+$"
    )]
    pub code: &'static str,
    /// A message safe to show (never internal detail, never the rejected value).
    pub message: &'a str,
    /// The invalid fields (validation errors only; absent when no single field is at fault).
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    #[schema(min_items = 1)]
    pub fields: &'a [FieldError],
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let kind = self.kind();
        let code = self.code();
        let (message, fields, detail): (&str, &[FieldError], Cow<'static, str>) = match &self {
            Self::NotFound { message, .. }
            | Self::Rejected { message, .. }
            | Self::PaymentDeclined { message, .. }
            | Self::Unauthenticated { message, .. } => (message, &[], message.clone()),
            Self::Conflict {
                message, fields, ..
            } => (message, fields, message.clone()),
            Self::Validation {
                message, fields, ..
            } => {
                let names: Vec<&str> = fields.iter().map(|f| f.field.as_ref()).collect();
                (
                    message,
                    fields,
                    format!("invalid input: {}", names.join(", ")).into(),
                )
            }
            Self::BadGateway { detail, .. } => (
                "a service this request depends on failed, retry later",
                &[],
                detail.clone().into(),
            ),
            Self::GatewayTimeout { detail, .. } => (
                "a service this request depends on did not answer in time, retry later",
                &[],
                detail.clone().into(),
            ),
            Self::Unavailable { detail, .. } => (
                "the service is temporarily unavailable, retry later",
                &[],
                detail.clone().into(),
            ),
            Self::Internal { detail, .. } => ("internal error", &[], detail.clone().into()),
        };
        let body = ErrorEnvelope {
            error: ErrorBody {
                kind: kind.as_str(),
                code,
                message,
                fields,
            },
        };
        let status = match &self {
            Self::Rejected { status, .. } => *status,
            Self::BadGateway { .. } => StatusCode::BAD_GATEWAY,
            _ => kind.status(),
        };
        let mut response = (status, Json(body)).into_response();
        if let Self::Unauthenticated { .. } = self {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
            .extensions_mut()
            .insert(ErrorObservation::new(kind, code, detail));
        response
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::body::to_bytes;

    async fn render(error: ApiError) -> (StatusCode, serde_json::Value, ErrorObservation) {
        let response = error.into_response();
        let status = response.status();
        let observation = response
            .extensions()
            .get::<ErrorObservation>()
            .cloned()
            .unwrap();
        let body = to_bytes(response.into_body(), 64 * 1024).await.unwrap();
        (status, serde_json::from_slice(&body).unwrap(), observation)
    }

    #[tokio::test]
    async fn validation_errors_name_their_fields_and_are_observed() {
        let (status, body, observation) = render(ApiError::invalid_field(
            "request.invalid_query",
            "per_page",
            "must be between 1 and 100",
        ))
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["error"]["kind"], "validation");
        assert_eq!(body["error"]["code"], "request.invalid_query");
        assert_eq!(body["error"]["fields"][0]["field"], "per_page");
        assert_eq!(observation.kind, ErrorKind::Validation);
        assert_eq!(observation.code, "request.invalid_query");
    }

    #[tokio::test]
    async fn internal_detail_reaches_the_observation_but_never_the_client() {
        let (status, body, observation) = render(ApiError::from(StoreError::Unexpected(
            sqlx::Error::Protocol("table products has no column stock".to_owned()),
        )))
        .await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["error"]["code"], "db.unexpected");
        assert!(body["error"].get("fields").is_none());
        assert!(!body.to_string().contains("column"));
        assert!(observation.detail.contains("no column stock"));
        assert_eq!(observation.kind, ErrorKind::Internal);
    }

    #[tokio::test]
    async fn an_exhausted_pool_answers_503_unavailable() {
        let (status, body, observation) = render(ApiError::from(StoreError::PoolExhausted)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["error"]["kind"], "unavailable");
        assert_eq!(body["error"]["code"], "db.pool_exhausted");
        assert_eq!(observation.kind, ErrorKind::Unavailable);
    }

    #[tokio::test]
    async fn unauthenticated_answers_401_with_a_bearer_challenge() {
        let response = ApiError::token_invalid().into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
        let (_, body, observation) = render(ApiError::token_invalid()).await;
        assert_eq!(body["error"]["kind"], "unauthenticated");
        assert_eq!(body["error"]["code"], "auth.token_invalid");
        assert_eq!(observation.kind, ErrorKind::Unauthenticated);
    }

    #[tokio::test]
    async fn conflicts_answer_409_naming_the_field() {
        let (status, body, observation) = render(ApiError::Conflict {
            code: "user.email_taken",
            message: "this email is already registered".into(),
            fields: vec![FieldError {
                field: "email".into(),
                message: "is already registered".into(),
            }],
        })
        .await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(body["error"]["kind"], "conflict");
        assert_eq!(body["error"]["fields"][0]["field"], "email");
        assert_eq!(observation.kind, ErrorKind::Conflict);
    }

    #[tokio::test]
    async fn payment_failures_answer_402_502_504_with_their_kinds() {
        let (status, body, observation) = render(ApiError::PaymentDeclined {
            code: "payment.declined",
            message: "the payment was declined".into(),
        })
        .await;
        assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
        assert_eq!(body["error"]["kind"], "payment_declined");
        assert_eq!(observation.kind, PAYMENT_DECLINED);
        assert_eq!(observation.kind.as_str(), "payment_declined");

        let (status, body, observation) = render(ApiError::BadGateway {
            code: "payment.unavailable",
            detail: "status 503 after 3 attempts".to_owned(),
        })
        .await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        assert_eq!(body["error"]["kind"], "unavailable");
        assert!(
            !body.to_string().contains("503"),
            "detail stays internal: {body}"
        );
        assert_eq!(observation.kind, ErrorKind::Unavailable);
        assert!(observation.detail.contains("3 attempts"));

        let (status, body, observation) = render(ApiError::GatewayTimeout {
            code: "payment.timeout",
            detail: "no answer".to_owned(),
        })
        .await;
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(body["error"]["kind"], "timeout");
        assert_eq!(observation.kind, ErrorKind::Timeout);
    }

    #[tokio::test]
    async fn rejected_requests_keep_their_status_and_are_validation_errors() {
        let (status, body, observation) = render(ApiError::Rejected {
            status: StatusCode::BAD_REQUEST,
            code: "request.malformed_json",
            message: "the body is not valid JSON".into(),
        })
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["kind"], "validation");
        assert_eq!(body["error"]["code"], "request.malformed_json");
        assert_eq!(observation.kind, ErrorKind::Validation);
    }
}
