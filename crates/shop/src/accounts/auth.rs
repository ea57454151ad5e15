//! Bearer-token authentication: the [`AuthUser`] extractor.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use telemetry::RequestContext;

use super::token::ApiToken;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{Store, User};

/// The user a request is authenticated as, from `Authorization: Bearer <token>`.
///
/// A missing header, another scheme, a string that is not shaped like a token and an unknown
/// token all get the same 401 `auth.token_invalid` (only well-formed tokens are looked up, by
/// hash). A database failure is answered as such (503/500), never as 401.
///
/// On success the user id is handed to the telemetry layer, which records it on the SERVER
/// span and the access line as the PII mode allows (`enduser.pseudo.id` by default).
#[derive(Debug, Clone)]
pub struct AuthUser(pub User);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(&parts.headers).ok_or_else(ApiError::token_invalid)?;
        let user = state
            .store
            .user_by_token_hash(&token.hash())
            .await?
            .ok_or_else(ApiError::token_invalid)?;
        let context = parts
            .extensions
            .get::<Arc<RequestContext>>()
            .cloned()
            .or_else(RequestContext::current);
        if let Some(context) = context {
            context.set_user(&user.id.to_string());
        }
        Ok(Self(user))
    }
}

/// Tells the current request's telemetry who the user is (as the PII mode allows).
pub(super) fn record_user(user: &User) {
    if let Some(context) = RequestContext::current() {
        context.set_user(&user.id.to_string());
    }
}

/// The token of the request's one `Authorization: Bearer …` header, if it has a token's shape.
/// The scheme is case-insensitive (RFC 7235); more than one `Authorization` header is refused.
fn bearer_token(headers: &HeaderMap) -> Option<ApiToken> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let (scheme, credentials) = value.to_str().ok()?.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    ApiToken::parse(credentials.trim_start_matches(' '))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn a_bearer_token_is_read_whatever_the_scheme_case() {
        let token = ApiToken::generate();
        for value in [
            format!("Bearer {}", token.expose()),
            format!("bearer {}", token.expose()),
            format!("BEARER   {} ", token.expose()),
        ] {
            assert_eq!(
                bearer_token(&headers(&[&value])),
                Some(token.clone()),
                "{value}"
            );
        }
    }

    #[test]
    fn anything_else_is_no_token() {
        let token = ApiToken::generate();
        let valid = format!("Bearer {}", token.expose());
        for values in [
            vec![],
            vec!["Bearer"],
            vec!["Bearer "],
            vec!["Basic dXNlcjpwYXNz"],
            vec!["Bearer not-a-token"],
            vec![token.expose()],
            vec![valid.as_str(), valid.as_str()],
        ] {
            assert!(bearer_token(&headers(&values)).is_none(), "{values:?}");
        }
    }
}
