//! The GCE / Cloud Run metadata server, read once at start-up in the cloud persona: the
//! project id (for `logging.googleapis.com/trace` and `cloud.account.id`), the region
//! (`cloud.region`) and the instance id (`faas.instance`).
//!
//! Cloud Run sets neither `APP_GCP_PROJECT` nor `GOOGLE_CLOUD_PROJECT`, but every Cloud Run
//! (and GCE, GKE) instance answers `http://metadata.google.internal/computeMetadata/v1/…` with
//! the header `Metadata-Flavor: Google`. As Google's client libraries do, `GCE_METADATA_HOST`
//! (`host` or `host:port`) replaces the default host, which is how the tests point it at a fake.
//!
//! The lookup is bounded: the three requests together get [`METADATA_TIMEOUT`] (DNS included,
//! since they run on a thread of their own that is abandoned when the time is up). A server
//! that is absent, slow, answers 404, or answers anything that is not a plausible value leaves
//! the value unknown; start-up goes on, and the instance writes one WARN line saying what is
//! missing (see [`MetadataLookup`]). Plain HTTP on purpose: the metadata server is link-local
//! and speaks nothing else.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The metadata server's host when `GCE_METADATA_HOST` is not set.
pub const DEFAULT_METADATA_HOST: &str = "metadata.google.internal";

/// How long the whole lookup (all three values) may take at start-up.
pub const METADATA_TIMEOUT: Duration = Duration::from_millis(1_500);

/// The largest response read from the metadata server (head and body).
const MAX_RESPONSE: usize = 8 * 1024;

/// What the metadata server said (each value `None` when it could not be read).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcpMetadata {
    /// `/project/project-id`.
    pub project_id: Option<String>,
    /// `/instance/region`, without its `projects/<number>/regions/` prefix.
    pub region: Option<String>,
    /// `/instance/id`.
    pub instance_id: Option<String>,
    /// Why a value is missing, one entry per failed request (empty when all three were read).
    pub errors: Vec<String>,
}

/// Whether the metadata server was asked at start-up, and how that went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataLookup {
    /// Not asked: the local persona, or `APP_GCP_METADATA=off`.
    Skipped,
    /// Asked `host`; `errors` lists what could not be read (empty: everything was).
    Asked {
        /// The host asked (`GCE_METADATA_HOST` or [`DEFAULT_METADATA_HOST`]).
        host: String,
        /// One entry per value that could not be read, e.g. `project-id: HTTP 404`.
        errors: Vec<String>,
    },
}

/// Whether `host` is a usable `GCE_METADATA_HOST`: a host name, IPv4 address or bracketed IPv6
/// address, optionally with `:port` — no scheme, no path.
pub(crate) fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
        && host.parse::<http::uri::Authority>().is_ok()
}

/// Reads the project id, region and instance id from the metadata server at `host`, within
/// `timeout` in total. Never fails: what could not be read is `None`, with its reason.
pub fn fetch(host: &str, timeout: Duration) -> GcpMetadata {
    let deadline = Instant::now() + timeout;
    // The thread's own sockets time out a little later, so a server that never answers is
    // always reported by the wait below (`no answer within …`), never by a socket error
    // racing it; the thread is abandoned by then.
    let socket_deadline = deadline + Duration::from_secs(1);
    let (sender, receiver) = mpsc::channel();
    let thread_host = host.to_owned();
    let spawned = std::thread::Builder::new()
        .name("telemetry-gcp-metadata".to_owned())
        .spawn(move || {
            for item in Item::ALL {
                let result = get(&thread_host, item.path(), socket_deadline).and_then(|body| {
                    item.parse(&body)
                        .ok_or_else(|| "not a plausible value".to_owned())
                });
                if sender.send((item, result)).is_err() {
                    return;
                }
            }
        });
    let mut out = GcpMetadata::default();
    if let Err(error) = spawned {
        out.errors
            .push(format!("cannot start the lookup thread: {error}"));
        return out;
    }
    let mut answered = 0;
    while answered < Item::ALL.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        match receiver.recv_timeout(left) {
            Ok((item, Ok(value))) => {
                answered += 1;
                match item {
                    Item::Project => out.project_id = Some(value),
                    Item::Region => out.region = Some(value),
                    Item::Instance => out.instance_id = Some(value),
                }
            }
            Ok((item, Err(error))) => {
                answered += 1;
                out.errors.push(format!("{}: {error}", item.name()));
            }
            Err(_) => {
                // Timed out (or the thread ended): what is still missing stays unknown.
                for item in &Item::ALL[answered..] {
                    out.errors.push(format!(
                        "{}: no answer within {} ms",
                        item.name(),
                        timeout.as_millis()
                    ));
                }
                break;
            }
        }
    }
    out
}

/// Target of the metadata WARN line (the start-up line's).
const TARGET: &str = "telemetry::startup";

/// Writes one WARN line (stdout only, at start-up) when the metadata server was asked and did
/// not answer everything: what is missing and why, and for a missing project id that
/// `logging.googleapis.com/trace` is left out of every line.
pub(crate) fn warn_if_incomplete(
    config: &crate::config::TelemetryConfig,
    filter: &crate::log_filter::LogFilter,
    sink: &crate::log_sink::LogSink,
) {
    use crate::log_format::{FieldValue, own_line};
    let MetadataLookup::Asked { host, errors } = &config.gcp_metadata else {
        return;
    };
    if errors.is_empty() || !filter.enabled(TARGET, &tracing::Level::WARN) {
        return;
    }
    let message = if config.gcp_project.is_none() {
        "the GCP metadata server did not give the project id: log lines carry no logging.googleapis.com/trace (set APP_GCP_PROJECT, or APP_GCP_METADATA=off outside Google Cloud)"
    } else {
        "the GCP metadata server did not answer everything: the missing resource attributes are left out"
    };
    let error = errors.join("; ");
    let fields = [
        ("gcp.metadata.host", FieldValue::Str(host)),
        ("error", FieldValue::Str(&error)),
    ];
    sink.write(&own_line(
        config.log_format,
        config.gcp_project.as_deref(),
        &config.service_name,
        tracing::Level::WARN,
        TARGET,
        message,
        &fields,
    ));
}

#[derive(Debug, Clone, Copy)]
enum Item {
    Project,
    Region,
    Instance,
}

impl Item {
    const ALL: [Item; 3] = [Item::Project, Item::Region, Item::Instance];

    fn path(self) -> &'static str {
        match self {
            Item::Project => "/computeMetadata/v1/project/project-id",
            Item::Region => "/computeMetadata/v1/instance/region",
            Item::Instance => "/computeMetadata/v1/instance/id",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Item::Project => "project-id",
            Item::Region => "region",
            Item::Instance => "instance id",
        }
    }

    /// The value in a response body, if it is plausible.
    fn parse(self, body: &str) -> Option<String> {
        let body = body.trim();
        match self {
            Item::Project => valid_project_id(body).then(|| body.to_owned()),
            Item::Region => {
                // `projects/123456789/regions/europe-west1` (Cloud Run), or a bare region.
                let region = body.rsplit('/').next().unwrap_or(body);
                (!region.is_empty()
                    && region.len() <= 64
                    && region
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'))
                .then(|| region.to_owned())
            }
            Item::Instance => (!body.is_empty()
                && body.len() <= 256
                && body
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')))
            .then(|| body.to_owned()),
        }
    }
}

/// A project id: lowercase letters, digits and `-` (plus `.` and `:` of the older
/// domain-scoped ids such as `example.com:project`), at most 128 bytes.
pub(crate) fn valid_project_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.' | b':')
        })
}

/// One `GET` with `Metadata-Flavor: Google`, before `deadline`; the body of a 200 answer that
/// itself carries `Metadata-Flavor: Google` (as the real server's do).
fn get(host: &str, path: &str, deadline: Instant) -> Result<String, String> {
    let left = || {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err("no time left".to_owned())
        } else {
            Ok(left)
        }
    };
    let authority = if host
        .rsplit_once(':')
        .is_some_and(|(_, port)| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
    {
        host.to_owned()
    } else {
        format!("{host}:80")
    };
    let address = authority
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("cannot resolve {host}"))?;
    let mut stream = TcpStream::connect_timeout(&address, left()?)
        .map_err(|e| format!("cannot connect to {host}: {e}"))?;
    stream
        .set_write_timeout(Some(left()?))
        .map_err(|e| e.to_string())?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nMetadata-Flavor: Google\r\nUser-Agent: telemetry\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("cannot send the request: {e}"))?;
    let mut response = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        stream
            .set_read_timeout(Some(left()?))
            .map_err(|e| e.to_string())?;
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                response.extend_from_slice(&chunk[..n]);
                if response.len() > MAX_RESPONSE {
                    return Err(format!("the answer is longer than {MAX_RESPONSE} bytes"));
                }
                if complete(&response) {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("no complete answer: {e}")),
        }
    }
    parse_response(&response)
}

/// Whether `response` holds a whole head and a body as long as its `Content-Length`.
fn complete(response: &[u8]) -> bool {
    let Some(head_end) = find(response, b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&response[..head_end]);
    content_length(&head).is_some_and(|length| response.len() >= head_end + 4 + length)
}

fn content_length(head: &str) -> Option<usize> {
    head.lines().skip(1).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().ok())
            .flatten()
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn parse_response(response: &[u8]) -> Result<String, String> {
    let head_end = find(response, b"\r\n\r\n").ok_or("not an HTTP answer")?;
    let head = std::str::from_utf8(&response[..head_end]).map_err(|_| "not an HTTP answer")?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| {
            let mut parts = line.split(' ');
            let version = parts.next()?;
            version.starts_with("HTTP/1.").then_some(())?;
            parts.next()?.parse::<u16>().ok()
        })
        .ok_or("not an HTTP answer")?;
    if status != 200 {
        return Err(format!("HTTP {status}"));
    }
    let mut flavor = false;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err("not an HTTP answer".to_owned());
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("metadata-flavor") && value == "Google" {
            flavor = true;
        }
        if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = true;
        }
    }
    if !flavor {
        return Err("the answer lacks Metadata-Flavor: Google (not a metadata server)".to_owned());
    }
    if chunked {
        return Err("a chunked answer (the metadata server sends Content-Length)".to_owned());
    }
    let body = &response[head_end + 4..];
    let body = match content_length(head) {
        Some(length) if body.len() >= length => &body[..length],
        Some(_) => return Err("the answer ended early".to_owned()),
        None => body,
    };
    String::from_utf8(body.to_vec()).map_err(|_| "the answer is not UTF-8".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked() {
        assert_eq!(
            Item::Region.parse("projects/123/regions/europe-west1"),
            Some("europe-west1".to_owned())
        );
        assert_eq!(Item::Region.parse("Europe West"), None);
        assert_eq!(
            Item::Project.parse("my-project-42\n"),
            Some("my-project-42".to_owned())
        );
        assert_eq!(Item::Project.parse("<html>oops</html>"), None);
        assert_eq!(Item::Project.parse(""), None);
        assert!(Item::Instance.parse("00bf4bf02d_ab-1").is_some());
        assert!(Item::Instance.parse("a b").is_none());
        assert!(valid_host("127.0.0.1:8080"));
        assert!(valid_host("metadata.google.internal"));
        assert!(valid_host("[::1]:80"));
        assert!(!valid_host("http://metadata"));
        assert!(!valid_host("host/path"));
    }

    #[test]
    fn responses_are_parsed_strictly() {
        let ok =
            b"HTTP/1.1 200 OK\r\nMetadata-Flavor: Google\r\nContent-Length: 4\r\n\r\nabcdEXTRA";
        assert_eq!(parse_response(ok).as_deref(), Ok("abcd"));
        let no_flavor = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcd";
        assert!(parse_response(no_flavor).is_err());
        let missing = b"HTTP/1.1 404 Not Found\r\nMetadata-Flavor: Google\r\n\r\n";
        assert_eq!(parse_response(missing), Err("HTTP 404".to_owned()));
        assert!(parse_response(b"garbage").is_err());
        assert!(complete(ok));
        assert!(!complete(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab"));
    }
}
