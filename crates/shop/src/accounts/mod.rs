//! Accounts: sign-up (`POST /v1/users`), bearer-token authentication ([`AuthUser`]) and the
//! caller's own account (`GET /v1/me`).
//!
//! Sign-up hands out an [`ApiToken`] once; the database keeps only its SHA-256
//! ([`TokenHash`]). Emails, names and tokens are personal or secret: none of them is ever
//! logged or recorded in telemetry (their `Debug` output is redacted). The user becomes
//! visible to telemetry only as the request's user id, which the telemetry layer turns into
//! `enduser.pseudo.id` (or nothing) per PII mode.

mod auth;
mod email;
mod name;
mod token;

use std::borrow::Cow;

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

pub use auth::AuthUser;
pub use email::{InvalidEmail, UserEmail};
pub use name::{InvalidName, MAX_NAME_CHARS, UserName};
pub use token::{ApiToken, TOKEN_PREFIX, TokenHash};

use crate::error::{ApiError, ErrorResponse, FieldError};
use crate::state::AppState;
use crate::store::{CreateUserError, NewUser, Store, User};

/// The account routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/users", post(sign_up))
        .route("/v1/me", get(me))
}

/// Body of `POST /v1/users`: a JSON object (serde would also read a struct from a JSON array,
/// field by field; going through a map refuses that). Fields are read as any JSON value so
/// that a missing or mistyped field is answered 422 naming it, like any other invalid value;
/// unknown fields are ignored. `Debug` shows no values.
#[derive(Default, Deserialize, ToSchema)]
#[serde(from = "Map<String, Value>")]
#[schema(description = "A new account: its email address and display name.")]
pub struct SignUpRequest {
    /// The email address: a dot-atom local part (letters, digits and
    /// ``!#$%&'*+-/=?^_`{|}~``, single dots between them) and a domain of at least two DNS
    /// labels; at most 254 characters, local part at most 64 (a limit the pattern does not
    /// express), labels at most 63. Surrounding spaces are ignored; it is stored in lower case.
    #[schema(
        value_type = String,
        required = true,
        max_length = 254,
        pattern = "^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$",
        example = "ann@example.com"
    )]
    pub email: Value,
    /// The display name: 1 to 100 characters after trimming surrounding whitespace, no
    /// control characters.
    #[schema(
        value_type = String,
        required = true,
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$",
        example = "Ann Lee"
    )]
    pub name: Value,
}

impl From<Map<String, Value>> for SignUpRequest {
    fn from(mut object: Map<String, Value>) -> Self {
        Self {
            email: object.remove("email").unwrap_or_default(),
            name: object.remove("name").unwrap_or_default(),
        }
    }
}

impl std::fmt::Debug for SignUpRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignUpRequest").finish_non_exhaustive()
    }
}

/// A sign-up whose every field is valid.
#[derive(Debug)]
struct ValidSignUp {
    email: UserEmail,
    name: UserName,
}

impl SignUpRequest {
    /// Validates every field and reports all invalid ones at once.
    fn validate(&self) -> Result<ValidSignUp, ApiError> {
        let email = string_field(&self.email, "email")
            .and_then(|raw| UserEmail::parse(raw).map_err(|e| field_error("email", e.to_string())));
        let name = string_field(&self.name, "name")
            .and_then(|raw| UserName::parse(raw).map_err(|e| field_error("name", e.to_string())));
        match (email, name) {
            (Ok(email), Ok(name)) => Ok(ValidSignUp { email, name }),
            (email, name) => Err(ApiError::invalid_fields(
                "request.invalid_body",
                [email.err(), name.err()].into_iter().flatten().collect(),
            )),
        }
    }
}

fn string_field<'a>(value: &'a Value, field: &'static str) -> Result<&'a str, FieldError> {
    match value {
        Value::String(raw) => Ok(raw),
        Value::Null => Err(field_error(field, "is required")),
        _ => Err(field_error(field, "must be a string")),
    }
}

fn field_error(field: &'static str, message: impl Into<Cow<'static, str>>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

/// Body of `GET /v1/me`: the account without its token. `Debug` hides the email and the name.
#[derive(Serialize, ToSchema)]
#[schema(description = "An account (never its token).")]
pub struct Account {
    /// User id.
    #[schema(minimum = 1, example = 7)]
    pub id: i64,
    /// Normalised (lower-case) email address.
    #[schema(example = "ann@example.com")]
    pub email: String,
    /// Display name.
    #[schema(example = "Ann Lee")]
    pub name: String,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("id", &self.id)
            .field("email", &"[REDACTED]")
            .field("name", &"[REDACTED]")
            .finish()
    }
}

impl From<User> for Account {
    fn from(user: User) -> Self {
        Self {
            id: user.id,
            email: user.email,
            name: user.name,
        }
    }
}

/// Body of `POST /v1/users` (201): the account and its token, which is never shown again.
/// `Debug` hides the token.
#[derive(Serialize, ToSchema)]
#[schema(description = "A new account and its bearer token, which is never shown again.")]
pub struct NewAccount {
    /// The account.
    #[serde(flatten)]
    pub account: Account,
    /// The bearer token (`shop_…`), shown this once.
    pub token: String,
}

impl std::fmt::Debug for NewAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewAccount")
            .field("account", &self.account)
            .field("token", &"[REDACTED]")
            .finish()
    }
}

/// `POST /v1/users`: 201 with the account and its token; 422 naming each invalid field; 409
/// `user.email_taken`; 400/413/415 for a body that cannot be read as JSON.
#[utoipa::path(
    post,
    path = "/v1/users",
    tag = "accounts",
    request_body = SignUpRequest,
    responses(
        (status = 201, description = "The account and its bearer token, shown this once",
            body = NewAccount,
            headers(("Cache-Control" = String, description = "`no-store`: the token must \
                stay in no cache"))),
        (status = 400, description = "`request.malformed_json`: the body is not valid JSON; \
            `request.unreadable_body`: it could not be read", body = ErrorResponse),
        (status = 409, description = "`user.email_taken`: an account has this email address \
            (`fields` names `email`)", body = ErrorResponse),
        (status = 413, description = "`request.body_too_large`: the body is larger than 2 MiB",
            body = ErrorResponse),
        (status = 415, description = "`request.unsupported_media_type`: the body is not sent \
            as `application/json`", body = ErrorResponse),
        (status = 422, description = "`request.invalid_body`: a field is missing or invalid \
            (each one is named in `fields`), or the JSON is not an object", body = ErrorResponse),
        (status = 503, description = "`db.unavailable` or `db.pool_exhausted`: retry later",
            body = ErrorResponse),
    )
)]
pub(crate) async fn sign_up(
    State(state): State<AppState>,
    body: Result<Json<SignUpRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(request) = body?;
    let valid = request.validate()?;
    let token = ApiToken::generate();
    let user = state
        .store
        .create_user(NewUser {
            email: &valid.email,
            name: &valid.name,
            token_hash: &token.hash(),
        })
        .await
        .map_err(|error| match error {
            CreateUserError::EmailTaken => ApiError::Conflict {
                code: "user.email_taken",
                message: "an account with this email address already exists".into(),
                fields: vec![field_error("email", "is already registered")],
            },
            CreateUserError::Store(error) => error.into(),
        })?;
    auth::record_user(&user);
    let body = NewAccount {
        account: user.into(),
        token: token.expose().to_owned(),
    };
    // The token must not stay in any cache between the client and us.
    Ok((
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(body),
    )
        .into_response())
}

/// `GET /v1/me`: the authenticated caller.
#[utoipa::path(
    get,
    path = "/v1/me",
    tag = "accounts",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's account", body = Account),
        (status = 401, description = "`auth.token_invalid`: the bearer token is missing, \
            malformed or unknown", body = ErrorResponse,
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 503, description = "`db.unavailable` or `db.pool_exhausted`: retry later",
            body = ErrorResponse),
    )
)]
pub(crate) async fn me(AuthUser(user): AuthUser) -> Json<Account> {
    Json(user.into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn invalid_fields(body: Value) -> Vec<String> {
        let request: SignUpRequest = serde_json::from_value(body).unwrap();
        match request.validate().unwrap_err() {
            ApiError::Validation { code, fields, .. } => {
                assert_eq!(code, "request.invalid_body");
                fields.iter().map(|f| f.field.to_string()).collect()
            }
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn a_valid_sign_up_is_normalised() {
        let request: SignUpRequest =
            serde_json::from_value(json!({"email": " Ann@Example.com", "name": " Ann "})).unwrap();
        let valid = request.validate().unwrap();
        assert_eq!(valid.email.as_str(), "ann@example.com");
        assert_eq!(valid.name.as_str(), "Ann");
    }

    #[test]
    fn every_invalid_field_is_named() {
        assert_eq!(invalid_fields(json!({"name": "Ann"})), ["email"]);
        assert_eq!(invalid_fields(json!({"email": "a@b.io"})), ["name"]);
        assert_eq!(invalid_fields(json!({})), ["email", "name"]);
        assert_eq!(
            invalid_fields(json!({"email": 5, "name": ["Ann"]})),
            ["email", "name"]
        );
        assert_eq!(
            invalid_fields(json!({"email": "nope", "name": ""})),
            ["email", "name"]
        );
        assert_eq!(
            invalid_fields(json!({"email": null, "name": "Ann"})),
            ["email"]
        );
    }
}
