//! The single error observation: which requests failed, of what kind, and how loudly.
//!
//! A request failed when its handler panicked or its status is ≥ 400. The failure's kind and
//! code come from the [`ErrorObservation`] the app's error put into the response extensions,
//! or, when there is none, from the status. Each consumer then records that one observation
//! once: `app.errors` (metrics), `error.type` + the exception event (SERVER span), the level
//! and `error.*` fields of the access line.

use axum::response::Response;
use http::StatusCode;
use tracing::Level;

use crate::error::{ErrorKind, ErrorObservation};

use super::facts::Failure;

/// The failure of a request, if it failed: a panic (with its message), or a status ≥ 400.
/// Takes the app's [`ErrorObservation`] out of the response.
pub(crate) fn observe(
    response: &mut Response,
    panic: Option<String>,
    route_matched: bool,
) -> Option<Failure> {
    let status = response.status();
    let observation = match panic {
        Some(message) => ErrorObservation::new(ErrorKind::Panic, "handler.panic", message),
        None if status.as_u16() >= 400 => response
            .extensions_mut()
            .remove::<ErrorObservation>()
            .unwrap_or_else(|| ErrorObservation::from_status(status, route_matched)),
        None => return None,
    };
    Some(Failure::new(observation))
}

/// The access line's level: `ERROR` for 5xx (and panics, answered 500), `WARN` for 4xx.
pub(crate) fn level(status: StatusCode) -> Level {
    match status.as_u16() {
        500.. => Level::ERROR,
        400.. => Level::WARN,
        _ => Level::INFO,
    }
}

/// The message of a panic payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::response::IntoResponse;

    #[test]
    fn success_is_no_failure() {
        let mut response = StatusCode::OK.into_response();
        assert!(observe(&mut response, None, true).is_none());
    }

    #[test]
    fn the_apps_observation_wins_and_is_taken_out_of_the_response() {
        let mut response = StatusCode::CONFLICT.into_response();
        response.extensions_mut().insert(ErrorObservation::new(
            ErrorKind::Conflict,
            "order.out_of_stock",
            "stock 0 for ann@example.com",
        ));
        let failure = observe(&mut response, None, true).unwrap_or_else(|| unreachable!());
        assert_eq!(failure.observation.kind, ErrorKind::Conflict);
        assert_eq!(failure.observation.code, "order.out_of_stock");
        assert!(
            !failure.detail.contains("ann@example.com"),
            "{}",
            failure.detail
        );
        assert!(response.extensions().get::<ErrorObservation>().is_none());
    }

    #[test]
    fn a_bare_status_is_classified_and_a_panic_is_a_panic() {
        let mut response = StatusCode::NOT_FOUND.into_response();
        let failure = observe(&mut response, None, false).unwrap_or_else(|| unreachable!());
        assert_eq!(failure.observation.code, "route.not_found");
        let mut response = StatusCode::INTERNAL_SERVER_ERROR.into_response();
        let failure =
            observe(&mut response, Some("boom".into()), true).unwrap_or_else(|| unreachable!());
        assert_eq!(failure.observation.kind, ErrorKind::Panic);
        assert_eq!(failure.detail, "boom");
    }

    #[test]
    fn levels_follow_the_status_class() {
        assert_eq!(level(StatusCode::OK), Level::INFO);
        assert_eq!(level(StatusCode::NOT_FOUND), Level::WARN);
        assert_eq!(level(StatusCode::BAD_GATEWAY), Level::ERROR);
    }
}
