//! The console's HTTP surface under `/_console/`: the embedded UI, the JSON API, the live
//! stream (server-sent events) and clear. Loopback clients only ([`loopback_only`]).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::Router;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use crate::config::SERIES_BUDGET;
use crate::model::{LogView, RequestView};
use crate::store::Store;

const INDEX_HTML: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const APP_CSS: &str = include_str!("../assets/app.css");

/// Default and largest `limit` of the list endpoints.
const DEFAULT_LIMIT: usize = 200;
const MAX_LIMIT: usize = 2_000;

type Shared = Arc<Store>;

pub(crate) fn router(store: Shared) -> Router {
    let at = |path: &str| format!("{}{path}", crate::MOUNT);
    Router::new()
        .route(&at("/"), get(index))
        // `/_console` without the slash: the UI's relative asset paths need it.
        .route(
            crate::MOUNT,
            get(|| async { axum::response::Redirect::permanent("/_console/") }),
        )
        .route(&at("/assets/app.js"), get(app_js))
        .route(&at("/assets/app.css"), get(app_css))
        .route(&at("/api/requests"), get(requests))
        .route(&at("/api/traces/{trace_id}"), get(trace))
        .route(&at("/api/logs"), get(logs))
        .route(&at("/api/metrics"), get(metrics))
        .route(&at("/api/stream"), get(stream))
        .route(&at("/api/clear"), post(clear))
        .route(&at("/api/{*rest}"), get(api_not_found).post(api_not_found))
        .with_state(store)
        .layer(middleware::from_fn(loopback_only))
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// Whether `address` is a loopback address (IPv4, IPv6, or IPv4 mapped into IPv6).
pub(crate) fn is_loopback(address: std::net::IpAddr) -> bool {
    match address {
        std::net::IpAddr::V4(v4) => v4.is_loopback(),
        std::net::IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// Refuses every client that is not on this machine's loopback interface with a 403 JSON body
/// (also when the server was started without `ConnectInfo`: unknown peers are refused).
async fn loopback_only(request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip());
    match peer {
        Some(ip) if is_loopback(ip) => next.run(request).await,
        _ => error(
            StatusCode::FORBIDDEN,
            "the telemetry console answers loopback clients only",
        ),
    }
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn app_css() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

async fn api_not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such console endpoint")
}

fn limit(raw: Option<usize>) -> usize {
    raw.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

#[derive(Debug, Deserialize)]
struct RequestFilter {
    route: Option<String>,
    status_class: Option<String>,
    error_type: Option<String>,
    min_ms: Option<f64>,
    q: Option<String>,
    service: Option<String>,
    limit: Option<usize>,
}

async fn requests(
    State(store): State<Shared>,
    query: Result<Query<RequestFilter>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(filter) = match query {
        Ok(query) => query,
        Err(rejection) => return error(StatusCode::BAD_REQUEST, rejection.body_text()),
    };
    let class = match non_empty(&filter.status_class) {
        None => None,
        Some(raw) => match raw.as_bytes() {
            [d @ b'1'..=b'5', b'x', b'x'] => Some(i64::from(d - b'0')),
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "status_class must be one of 1xx, 2xx, 3xx, 4xx, 5xx",
                );
            }
        },
    };
    let route = non_empty(&filter.route);
    let error_type = non_empty(&filter.error_type);
    let q = non_empty(&filter.q).map(str::to_ascii_lowercase);
    let service = non_empty(&filter.service);
    let keep = |r: &RequestView| {
        route.is_none_or(|route| r.route.as_deref() == Some(route))
            && class.is_none_or(|class| r.status.is_some_and(|s| s / 100 == class))
            && error_type.is_none_or(|e| r.error_type.as_deref() == Some(e))
            && filter.min_ms.is_none_or(|min| r.duration_ms >= min)
            && service.is_none_or(|s| &*r.service == s)
            && q.as_deref().is_none_or(|q| {
                r.trace_id.contains(q)
                    || r.request_id
                        .as_deref()
                        .is_some_and(|id| id.to_ascii_lowercase().contains(q))
            })
    };
    let (requests, total) = store.requests(keep, limit(filter.limit));
    Json(json!({
        "requests": requests,
        "total": total,
        "evicted": store.counters.evicted_requests.load(Ordering::Relaxed),
    }))
    .into_response()
}

async fn trace(State(store): State<Shared>, Path(trace_id): Path<String>) -> Response {
    let valid = trace_id.len() == 32
        && trace_id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b.to_ascii_lowercase()));
    if !valid {
        return error(
            StatusCode::BAD_REQUEST,
            "trace_id must be 32 hexadecimal characters",
        );
    }
    let trace_id = trace_id.to_ascii_lowercase();
    let (spans, logs) = store.trace(&trace_id);
    if spans.is_empty() && logs.is_empty() {
        return error(
            StatusCode::NOT_FOUND,
            "no span or log record of this trace is stored (never seen, or evicted)",
        );
    }
    let mut services: Vec<&str> = spans
        .iter()
        .map(|s| &*s.service)
        .chain(logs.iter().map(|l| &*l.service))
        .collect();
    services.sort_unstable();
    services.dedup();
    Json(json!({
        "trace_id": trace_id,
        "services": services,
        "spans": spans,
        "logs": logs,
    }))
    .into_response()
}

#[derive(Debug, Deserialize)]
struct LogFilter {
    level: Option<String>,
    target: Option<String>,
    q: Option<String>,
    trace_id: Option<String>,
    service: Option<String>,
    limit: Option<usize>,
}

/// The lowest OTLP severity number of a level name.
fn min_severity(level: &str) -> Option<i32> {
    Some(match level.to_ascii_lowercase().as_str() {
        "trace" => 1,
        "debug" => 5,
        "info" => 9,
        "warn" | "warning" => 13,
        "error" => 17,
        "fatal" => 21,
        _ => return None,
    })
}

async fn logs(
    State(store): State<Shared>,
    query: Result<Query<LogFilter>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(filter) = match query {
        Ok(query) => query,
        Err(rejection) => return error(StatusCode::BAD_REQUEST, rejection.body_text()),
    };
    let severity = match non_empty(&filter.level) {
        None => None,
        Some(level) => match min_severity(level) {
            Some(n) => Some(n),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "level must be one of trace, debug, info, warn, error, fatal",
                );
            }
        },
    };
    let target = non_empty(&filter.target);
    let q = non_empty(&filter.q).map(str::to_lowercase);
    let trace_id = non_empty(&filter.trace_id).map(str::to_ascii_lowercase);
    let service = non_empty(&filter.service);
    let keep = |l: &LogView| {
        severity.is_none_or(|min| l.severity_number >= min)
            && target.is_none_or(|t| l.target.as_deref().is_some_and(|lt| lt.starts_with(t)))
            && trace_id
                .as_deref()
                .is_none_or(|id| l.trace_id.as_deref() == Some(id))
            && service.is_none_or(|s| &*l.service == s)
            && q.as_deref().is_none_or(|q| {
                l.body.to_lowercase().contains(q)
                    || l.event_name.as_deref().is_some_and(|e| e.contains(q))
                    || serde_json::to_string(&l.attributes)
                        .is_ok_and(|a| a.to_lowercase().contains(q))
            })
    };
    let (logs, total) = store.logs(keep, limit(filter.limit));
    Json(json!({
        "logs": logs,
        "total": total,
        "evicted": store.counters.evicted_logs.load(Ordering::Relaxed),
    }))
    .into_response()
}

#[derive(Debug, Deserialize)]
struct MetricsQuery {
    window_s: Option<u64>,
}

fn now_unix_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn metrics(
    State(store): State<Shared>,
    query: Result<Query<MetricsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(query) = match query {
        Ok(query) => query,
        Err(rejection) => return error(StatusCode::BAD_REQUEST, rejection.body_text()),
    };
    let window = query.window_s.unwrap_or(300).clamp(10, 3_600);
    let (routes, instances, routes_ignored) = {
        let red = store
            .red
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (
            red.series(window, now_unix_s()),
            red.instances(),
            red.routes_ignored,
        )
    };
    let c = &store.counters;
    let usage = store.usage();
    let active = instances.iter().map(|i| i.active_series).max().unwrap_or(0);
    Json(json!({
        "window_s": window,
        "routes": routes,
        "pipeline": {
            "spans_dropped": instances.iter().map(|i| i.spans_dropped).sum::<u64>(),
            "logs_dropped": instances.iter().map(|i| i.logs_dropped).sum::<u64>(),
            "export_failures": instances.iter().map(|i| i.export_failures).sum::<u64>(),
            "log_lines_dropped": instances.iter().map(|i| i.log_lines_dropped).sum::<u64>(),
            "instances": instances,
            "console": {
                "batches_dropped": c.dropped_batches.load(Ordering::Relaxed),
                "undecodable": c.undecodable.load(Ordering::Relaxed),
                "evicted_spans": c.evicted_spans.load(Ordering::Relaxed),
                "evicted_logs": c.evicted_logs.load(Ordering::Relaxed),
                "routes_ignored": routes_ignored,
                "store": usage,
            },
        },
        "series": { "active": active, "budget": SERIES_BUDGET },
    }))
    .into_response()
}

async fn clear(State(store): State<Shared>) -> StatusCode {
    store.clear();
    StatusCode::NO_CONTENT
}

async fn stream(State(store): State<Shared>) -> impl IntoResponse {
    let receiver = store.stream.subscribe();
    let events = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let event = match receiver.recv().await {
            Ok(event) => Event::default().event(event.name).data(&*event.data),
            // A slow client skips what it missed (the buffer is bounded) and is told how much.
            Err(RecvError::Lagged(skipped)) => Event::default()
                .event("lagged")
                .data(json!({ "skipped": skipped }).to_string()),
            Err(RecvError::Closed) => return None,
        };
        Some((Ok::<_, Infallible>(event), receiver))
    });
    sse(events)
}

fn sse(events: impl Stream<Item = Result<Event, Infallible>> + Send + 'static) -> Response {
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_addresses() {
        assert!(is_loopback(
            "127.0.0.1".parse().unwrap_or_else(|_| unreachable!())
        ));
        assert!(is_loopback(
            "127.8.9.1".parse().unwrap_or_else(|_| unreachable!())
        ));
        assert!(is_loopback(
            "::1".parse().unwrap_or_else(|_| unreachable!())
        ));
        assert!(is_loopback(
            "::ffff:127.0.0.1"
                .parse()
                .unwrap_or_else(|_| unreachable!())
        ));
        assert!(!is_loopback(
            "10.0.0.1".parse().unwrap_or_else(|_| unreachable!())
        ));
        assert!(!is_loopback(
            "::ffff:10.0.0.1".parse().unwrap_or_else(|_| unreachable!())
        ));
        assert!(!is_loopback(
            "0.0.0.0".parse().unwrap_or_else(|_| unreachable!())
        ));
    }
}
