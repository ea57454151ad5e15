//! The facts of one request, gathered once when it arrives and read by every consumer (the
//! SERVER span, the access line, the metrics, the error observation), and the facts of how it
//! ended.
//!
//! Everything taken from the request is bounded here, before anything records it, and the path
//! is scrubbed: no consumer sees a raw value.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::extract::{ConnectInfo, MatchedPath};
use http::{Request, StatusCode, Version};

use crate::error::ErrorObservation;
use crate::metrics::RouteInstruments;
use crate::pii::{PiiPolicy, scrub};
use crate::semconv::{METHODS, method_index};

use super::client_address::{self, TrustedProxies};
use super::request_id::{REQUEST_ID_HEADER, generate_request_id_at, is_valid_request_id};

/// Longest `url.path` recorded (longer paths are cut at a character boundary).
pub const MAX_PATH_LEN: usize = 1024;
/// Longest `user_agent.original` recorded.
pub const MAX_USER_AGENT_LEN: usize = 256;
/// Longest `server.address` recorded.
pub const MAX_HOST_LEN: usize = 255;
/// Longest `http.request.method_original` recorded.
pub const MAX_METHOD_LEN: usize = 32;

/// Longest text of an IP address (an IPv6 address with an embedded IPv4 one).
const MAX_ADDRESS_TEXT_LEN: usize = 45;

/// What the request said about itself, bounded and scrubbed.
///
/// The text taken from the request (path, host, user agent, client address, an unknown
/// method) is copied into one buffer, one allocation per request, and read through the
/// accessors.
#[derive(Debug)]
pub(crate) struct RequestFacts {
    /// `http.request.method`: a known method or `_OTHER`.
    pub(crate) method: &'static str,
    /// `http.route`: the matched route template.
    pub(crate) route: Option<Arc<str>>,
    /// `url.scheme`.
    pub(crate) scheme: &'static str,
    /// `network.protocol.version`: `1.0`, `1.1`, `2`, `3`.
    pub(crate) protocol_version: &'static str,
    /// The request id: the caller's when well-formed, else a new UUIDv7.
    pub(crate) request_id: Arc<str>,
    text: String,
    path: TextRange,
    method_original: Option<TextRange>,
    server_address: Option<TextRange>,
    client_address: Option<TextRange>,
    user_agent: Option<TextRange>,
}

/// Where one fact lies in [`RequestFacts`]' text buffer.
#[derive(Debug, Clone, Copy)]
struct TextRange {
    start: u16,
    end: u16,
}

/// Appends `value` to `text`, returning where it lies (every fact is bounded well below
/// `u16::MAX` bytes, so the whole buffer is too).
fn push_fact(text: &mut String, value: &str) -> TextRange {
    let start = text.len();
    text.push_str(value);
    TextRange {
        start: start as u16,
        end: text.len() as u16,
    }
}

impl RequestFacts {
    /// Reads the facts of `request` (headers, route, peer address) once; `now` is when it
    /// arrived (a new request id's timestamp).
    pub(crate) fn gather<B>(
        request: &Request<B>,
        pii: &PiiPolicy,
        proxies: &TrustedProxies,
        routes: &RouteInstruments,
        now: SystemTime,
    ) -> Self {
        let headers = request.headers();
        let request_id: Arc<str> = match headers.get(REQUEST_ID_HEADER) {
            Some(value) if is_valid_request_id(value.as_bytes()) => {
                Arc::from(String::from_utf8_lossy(value.as_bytes()).as_ref())
            }
            _ => generate_request_id_at(now),
        };
        let method = METHODS[method_index(request.method())];
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map(|matched| routes.route(matched.as_str()));
        // Bounded before scrubbing (the scan is linear in what it reads) and after it (a
        // redaction marker can be longer than what it replaces).
        let scrubbed = scrub(bounded(request.uri().path(), MAX_PATH_LEN));
        let path = bounded(&scrubbed, MAX_PATH_LEN);
        let user_agent = headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| bounded(ua, MAX_USER_AGENT_LEN));
        let server_address = headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(|host| bounded(host_without_port(host), MAX_HOST_LEN));
        let method_original =
            (method == "_OTHER").then(|| bounded(request.method().as_str(), MAX_METHOD_LEN));
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        // Off (the local default): the peer, after one comparison.
        let client = match proxies {
            TrustedProxies::Off => peer,
            proxies => client_address::client_ip(proxies, peer, headers),
        };

        let mut text = String::with_capacity(
            path.len()
                + user_agent.map_or(0, str::len)
                + server_address.map_or(0, str::len)
                + method_original.map_or(0, str::len)
                + MAX_ADDRESS_TEXT_LEN,
        );
        let path = push_fact(&mut text, path);
        let user_agent = user_agent.map(|ua| push_fact(&mut text, ua));
        let server_address = server_address.map(|host| push_fact(&mut text, host));
        let method_original = method_original.map(|m| push_fact(&mut text, m));
        let client_address = client.and_then(|ip| {
            let start = text.len();
            let written = pii.write_client_address(ip, &mut text);
            written.then_some(TextRange {
                start: start as u16,
                end: text.len() as u16,
            })
        });
        Self {
            method,
            route,
            scheme: "http",
            protocol_version: protocol_version(request.version()),
            request_id,
            text,
            path,
            method_original,
            server_address,
            client_address,
            user_agent,
        }
    }

    fn fact(&self, range: TextRange) -> &str {
        &self.text[usize::from(range.start)..usize::from(range.end)]
    }

    /// `url.path`: scrubbed, ≤ [`MAX_PATH_LEN`].
    pub(crate) fn path(&self) -> &str {
        self.fact(self.path)
    }

    /// `http.request.method_original`, only when `method` is `_OTHER` (≤ [`MAX_METHOD_LEN`]).
    pub(crate) fn method_original(&self) -> Option<&str> {
        self.method_original.map(|range| self.fact(range))
    }

    /// `server.address`: the `Host` header without its port, ≤ [`MAX_HOST_LEN`].
    pub(crate) fn server_address(&self) -> Option<&str> {
        self.server_address.map(|range| self.fact(range))
    }

    /// `client.address`: the peer, or the client a trusted proxy named
    /// ([`super::client_address`]), as the PII mode shows it.
    pub(crate) fn client_address(&self) -> Option<&str> {
        self.client_address.map(|range| self.fact(range))
    }

    /// `user_agent.original`, ≤ [`MAX_USER_AGENT_LEN`], visible ASCII only.
    pub(crate) fn user_agent(&self) -> Option<&str> {
        self.user_agent.map(|range| self.fact(range))
    }

    /// The route template when one matched, else the path (for the access line's message).
    pub(crate) fn route_or_path(&self) -> &str {
        self.route.as_deref().unwrap_or_else(|| self.path())
    }
}

/// How the request ended: read by the same consumers when the response is ready.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// `http.response.status_code`.
    pub(crate) status: StatusCode,
    /// The body size, when known as the response starts.
    pub(crate) response_size: Option<u64>,
    /// From the first line of the middleware to the response.
    pub(crate) elapsed: Duration,
    /// When the response was ready (the SERVER span's end).
    pub(crate) end: SystemTime,
    /// The single error observation of a failed request (status ≥ 400 or a panic).
    pub(crate) failure: Option<Failure>,
}

/// A failed request's observation, with its detail already scrubbed.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) observation: ErrorObservation,
    /// `observation.detail` scrubbed of PII (what the span and the log record carry).
    pub(crate) detail: String,
}

impl Failure {
    pub(crate) fn new(observation: ErrorObservation) -> Self {
        let detail = scrub(&observation.detail).into_owned();
        Self {
            observation,
            detail,
        }
    }
}

/// When the request started, on both clocks (monotonic for durations, wall for timestamps).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Started {
    pub(crate) at: Instant,
    pub(crate) time: SystemTime,
}

impl Started {
    pub(crate) fn now() -> Self {
        Self {
            at: Instant::now(),
            time: SystemTime::now(),
        }
    }
}

/// `network.protocol.version` of an HTTP version.
fn protocol_version(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

/// `host` without a trailing `:port` (an IPv6 literal's colons are not a port).
fn host_without_port(host: &str) -> &str {
    host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    })
}

/// `s` cut to at most `max` bytes at a character boundary.
pub(crate) fn bounded(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::PiiMode;

    fn gather(request: Request<()>) -> RequestFacts {
        let pii = PiiPolicy::new(PiiMode::Pseudonym, Some(b"0123456789abcdef"));
        RequestFacts::gather(
            &request,
            &pii,
            &TrustedProxies::Off,
            &RouteInstruments::default(),
            SystemTime::now(),
        )
    }

    #[test]
    fn a_plain_request_gives_its_bounded_facts() {
        let request = Request::get("/v1/products/7")
            .header("host", "shop.example:8080")
            .header("user-agent", "curl/8")
            .header("x-request-id", "abc-123")
            .body(())
            .unwrap();
        let facts = gather(request);
        assert_eq!(facts.method, "GET");
        assert!(facts.method_original().is_none());
        assert_eq!(facts.path(), "/v1/products/7");
        assert_eq!(facts.server_address(), Some("shop.example"));
        assert_eq!(facts.user_agent(), Some("curl/8"));
        assert_eq!(&*facts.request_id, "abc-123");
        assert_eq!(facts.protocol_version, "1.1");
        assert_eq!(facts.scheme, "http");
        // No matched route (a router sets MatchedPath), no peer address (no ConnectInfo).
        assert!(facts.route.is_none());
        assert!(facts.client_address().is_none());
        assert_eq!(facts.route_or_path(), "/v1/products/7");
    }

    #[test]
    fn hostile_values_are_cut_scrubbed_or_replaced() {
        let long_path = format!("/{}", "a".repeat(5000));
        let request = Request::builder()
            .method(http::Method::from_bytes(&[b'X'; 100]).unwrap())
            .uri(format!("{long_path}?token=secret"))
            .version(Version::HTTP_2)
            .header("host", "h".repeat(400))
            .header("user-agent", "u".repeat(400))
            .header("x-request-id", "bad id with spaces")
            .body(())
            .unwrap();
        let facts = gather(request);
        assert_eq!(facts.method, "_OTHER");
        assert_eq!(facts.method_original().map(str::len), Some(MAX_METHOD_LEN));
        assert_eq!(facts.path().len(), MAX_PATH_LEN);
        assert!(!facts.path().contains("secret"));
        assert_eq!(facts.server_address().map(str::len), Some(MAX_HOST_LEN));
        assert_eq!(facts.user_agent().map(str::len), Some(MAX_USER_AGENT_LEN));
        assert_eq!(facts.request_id.len(), 36, "a new UUIDv7");
        assert_eq!(facts.protocol_version, "2");

        let email = gather(Request::get("/users/ann@example.com").body(()).unwrap());
        assert!(
            !email.path().contains("ann@example.com"),
            "{}",
            email.path()
        );
    }

    #[test]
    fn ipv6_hosts_keep_their_colons() {
        assert_eq!(host_without_port("[::1]:8080"), "[::1]");
        assert_eq!(host_without_port("[::1]"), "[::1]");
        assert_eq!(host_without_port("example"), "example");
    }

    #[test]
    fn bounding_respects_character_boundaries() {
        assert_eq!(bounded("héllo", 2), "h");
        assert_eq!(bounded("abc", 10), "abc");
    }
}
