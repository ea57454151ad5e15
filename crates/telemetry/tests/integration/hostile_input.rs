//! Hostile and malformed request headers against a real server: every request is served (or,
//! where HTTP itself forbids the bytes, refused by hyper before the service runs), nothing
//! panics, no exported attribute or log field exceeds the documented limits, and every record
//! is exactly one log line.
#![allow(clippy::unwrap_used)]

use crate::common::Harness;
use telemetry::layer::request_id::MAX_REQUEST_ID_LEN;
use telemetry::layer::{MAX_HOST_LEN, MAX_PATH_LEN, MAX_USER_AGENT_LEN};
use telemetry::testkit::AttrValue;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const PARENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// hyper's default limit for a request head (`DEFAULT_MAX_BUFFER_SIZE`, 8 KiB + 400 KiB):
/// the hostile values stay just under it so they reach the service.
const HYPER_MAX_HEAD: usize = 8192 + 4096 * 100;
/// `http::Uri` refuses longer request targets (414).
const URI_MAX_LEN: usize = u16::MAX as usize - 1;

/// Sends one raw HTTP/1.1 GET with `headers` (name, raw value bytes) and returns the status
/// code (0 when the connection closed without an answer) and the raw response head.
async fn raw_get(h: &Harness, path: &[u8], headers: &[(&str, &[u8])]) -> (u16, String) {
    raw_request(h, b"GET", path, headers).await
}

/// Like [`raw_get`] with any method token.
async fn raw_request(
    h: &Harness,
    method: &[u8],
    path: &[u8],
    headers: &[(&str, &[u8])],
) -> (u16, String) {
    let address = h.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let mut request = Vec::new();
    request.extend_from_slice(method);
    request.push(b' ');
    request.extend_from_slice(path);
    request.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    request.extend_from_slice(address.as_bytes());
    request.extend_from_slice(b"\r\nconnection: close\r\n");
    for (name, value) in headers {
        request.extend_from_slice(name.as_bytes());
        request.extend_from_slice(b": ");
        request.extend_from_slice(value);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"\r\n");
    // A server refusing an oversized head may close before it has read all of it.
    let _ = stream.write_all(&request).await;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let head = text.split("\r\n\r\n").next().unwrap_or_default().to_owned();
    (status, head)
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The documented limit of an attribute or log field, by key (`None`: not bounded by input).
fn limit(key: &str) -> Option<usize> {
    match key {
        "url.path" | "path" | "requestUrl" => Some(MAX_PATH_LEN),
        "user_agent.original" | "userAgent" => Some(MAX_USER_AGENT_LEN),
        "server.address" => Some(MAX_HOST_LEN),
        "http.request.header.x-request-id" | "request_id" | "app.request.id" => {
            Some(MAX_REQUEST_ID_LEN)
        }
        "http.request.method_original" => Some(32),
        _ => None,
    }
}

/// No exported span attribute, OTLP log attribute or stdout field exceeds its limit (and
/// nothing input-derived is longer than the longest limit); the stdout capture is one JSON
/// object per line with exactly `served` access lines.
async fn assert_bounded_and_one_line_per_record(h: &mut Harness, served: usize) {
    h.flush().await;
    let check = |origin: &str, key: &str, value: &str| {
        let max = limit(key).unwrap_or(MAX_PATH_LEN + 64);
        assert!(
            value.len() <= max,
            "{origin} {key} has {} bytes (limit {max})",
            value.len()
        );
    };
    for span in h.receiver.spans() {
        assert!(
            span.name.len() <= MAX_PATH_LEN,
            "span name {}",
            span.name.len()
        );
        for (key, value) in &span.attributes {
            match value {
                AttrValue::Str(value) => check("span", key, value),
                // `http.request.header.<key>` is a string array: each element is bounded.
                AttrValue::Array(values) => {
                    for value in values {
                        if let AttrValue::Str(value) = value {
                            check("span", key, value);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    for log in h.receiver.logs() {
        for (key, value) in &log.attributes {
            if let AttrValue::Str(value) = value {
                check("OTLP log", key, value);
            }
        }
        if let Some(AttrValue::Str(body)) = &log.body {
            check("OTLP log body", "body", body);
        }
    }
    let captured = h.telemetry.log_sink().captured();
    let mut access = 0;
    for line in captured.lines() {
        let value: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("a stdout line is not one JSON object ({e}): {line}"));
        let object = value.as_object().unwrap();
        for (key, field) in object {
            if let Some(text) = field.as_str() {
                check("stdout", key, text);
            }
            // Cloud Logging's `httpRequest` object (gcp format).
            for (key, nested) in field.as_object().into_iter().flatten() {
                if let Some(text) = nested.as_str() {
                    check("stdout", key, text);
                }
            }
        }
        if object.get("target").and_then(|t| t.as_str()) == Some("access") {
            access += 1;
        }
    }
    assert_eq!(
        access, served,
        "one access line per served request:\n{captured}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_traceparents_are_ignored_and_the_request_is_served() {
    let mut h = Harness::start(&[]).await;
    let oversized = format!("{PARENT}-{}", "a".repeat(16 * 1024));
    let cases: Vec<Vec<u8>> = vec![
        oversized.into_bytes(),
        b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-".to_vec(),
        b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1".to_vec(),
        b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01".to_vec(),
        b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_vec(),
        b"00-4bf92f3577b34da6a3ce929d0e0e4736\t00f067aa0ba902b7-01".to_vec(),
        // obs-text bytes, at the positions of hex digits
        b"00-4bf92f3577b34da6a3ce929d0e0e47\xc3\xa9-00f067aa0ba902b7-01".to_vec(),
        b"\xff\xfe\xfd".to_vec(),
    ];
    for value in &cases {
        let (status, head) = raw_get(&h, b"/items/1", &[("traceparent", value)]).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(value));
        let returned = header(&head, "traceparent").unwrap();
        assert!(!returned.contains(PARENT_TRACE), "{returned}");
    }
    assert_bounded_and_one_line_per_record(&mut h, cases.len()).await;
    let spans = h.server_spans();
    assert_eq!(spans.len(), cases.len());
    for span in spans {
        assert_eq!(
            span.parent_span_id, "",
            "an invalid parent is never trusted"
        );
        assert_ne!(span.trace_id, PARENT_TRACE);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_traceparent_fields_are_invalid() {
    let mut h = Harness::start(&[]).await;
    let (status, head) = raw_get(
        &h,
        b"/items/1",
        &[
            ("traceparent", PARENT.as_bytes()),
            ("traceparent", PARENT.as_bytes()),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert!(!header(&head, "traceparent").unwrap().contains(PARENT_TRACE));
    assert_bounded_and_one_line_per_record(&mut h, 1).await;
    assert_eq!(h.server_spans()[0].parent_span_id, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracestate_over_the_limits_is_cleaned_and_the_parent_kept() {
    let mut h = Harness::start(&[]).await;
    let members_33: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
    // 520 characters of otherwise valid members: truncated by whole members, long ones first.
    let long_value = format!("a={},b={},c=zz", "x".repeat(255), "y".repeat(255));
    let truncated = format!("a={},c=zz", "x".repeat(255));
    let huge = format!("a={}", "x".repeat(64 * 1024));
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (members_33.join(",").into_bytes(), ""),
        (long_value.into_bytes(), truncated.as_str()),
        (huge.into_bytes(), ""),
        (
            format!("{},ok=1", "a".repeat(64 * 1024)).into_bytes(),
            "ok=1",
        ),
        (b"a=1,a=2".to_vec(), "a=1"),
        (b"a=\xc3\xa9".to_vec(), ""),
        (b"a=\xc3\xa9,b=2".to_vec(), "b=2"),
        (b"a=1\x7fb".to_vec(), ""),
    ];
    let mut expected = Vec::new();
    for (i, (value, kept)) in cases.iter().enumerate() {
        let path = format!("/items/{}", i + 1);
        let (status, _) = raw_get(
            &h,
            path.as_bytes(),
            &[("traceparent", PARENT.as_bytes()), ("tracestate", value)],
        )
        .await;
        // DEL is not a legal field-value byte: hyper may refuse the request itself.
        if value.contains(&0x7f) && status == 400 {
            continue;
        }
        assert_eq!(status, 200);
        expected.push((path, *kept));
    }
    assert_bounded_and_one_line_per_record(&mut h, expected.len()).await;
    let spans = h.server_spans();
    assert_eq!(spans.len(), expected.len());
    for (path, kept) in expected {
        let span = spans
            .iter()
            .find(|s| s.str_attr("url.path") == Some(path.as_str()))
            .unwrap();
        assert_eq!(span.trace_id, PARENT_TRACE, "the traceparent still counts");
        assert_eq!(span.trace_state, kept, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_tracestate_fields_are_one_list() {
    let mut h = Harness::start(&[]).await;
    let (status, _) = raw_get(
        &h,
        b"/items/1",
        &[
            ("traceparent", PARENT.as_bytes()),
            ("tracestate", b"a=1,b=2"),
            ("tracestate", b"c=3"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    let members: Vec<String> = (0..20).map(|i| format!("k{i}=v")).collect();
    let (status, _) = raw_get(
        &h,
        b"/items/2",
        &[
            ("traceparent", PARENT.as_bytes()),
            ("tracestate", members.join(",").as_bytes()),
            ("tracestate", members.join(",").replace('k', "m").as_bytes()),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert_bounded_and_one_line_per_record(&mut h, 2).await;
    let mut spans = h.server_spans();
    spans.sort_by_key(|s| s.str_attr("url.path").unwrap_or_default().to_owned());
    assert_eq!(spans[0].trace_state, "a=1,b=2,c=3");
    assert_eq!(
        spans[1].trace_state, "",
        "40 members across two fields exceed 32"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_request_ids_are_replaced_by_generated_ones() {
    let mut h = Harness::start(&[]).await;
    let too_long = vec![b'a'; MAX_REQUEST_ID_LEN + 1];
    let very_long = vec![b'b'; 32 * 1024];
    let cases: Vec<Vec<u8>> = vec![
        too_long,
        very_long,
        b"abc\tdef".to_vec(),
        b"abc\x7fdef".to_vec(),
        b"caf\xc3\xa9".to_vec(),
        b"\x80\x81\xfe\xff".to_vec(),
        b"id\"},{\"level\":\"ERROR\",\"message\":\"forged".to_vec(),
        b"a b".to_vec(),
    ];
    let mut served = 0;
    for value in &cases {
        let (status, head) = raw_get(&h, b"/items/1", &[("x-request-id", value)]).await;
        if value.contains(&0x7f) && status == 400 {
            continue; // refused by hyper: the service never saw it
        }
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(value));
        served += 1;
        let id = header(&head, "x-request-id").unwrap();
        assert_eq!(id.len(), 36, "a generated UUIDv7 replaces {value:?}: {id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'));
    }
    assert_bounded_and_one_line_per_record(&mut h, served).await;
    for line in h.access_lines() {
        assert_eq!(line["request_id"].as_str().unwrap().len(), 36);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_id_at_the_limit_is_kept() {
    let mut h = Harness::start(&[]).await;
    let id = "r".repeat(MAX_REQUEST_ID_LEN);
    let (status, head) = raw_get(&h, b"/items/1", &[("x-request-id", id.as_bytes())]).await;
    assert_eq!(status, 200);
    assert_eq!(header(&head, "x-request-id"), Some(id.as_str()));
    assert_bounded_and_one_line_per_record(&mut h, 1).await;
    assert_eq!(h.access_lines()[0]["request_id"], id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_user_agents_are_truncated_and_obs_text_is_dropped() {
    let mut h = Harness::start(&[]).await;
    let sixty_kb = "Mozilla/5.0 ".repeat(5 * 1024);
    // Just under hyper's head limit, leaving room for the request line and other fields.
    let near_limit = "u".repeat(HYPER_MAX_HEAD - 1024);
    let multibyte = "\u{e9}".repeat(MAX_USER_AGENT_LEN); // cut must land on a char boundary
    let cases: Vec<Vec<u8>> = vec![
        sixty_kb.into_bytes(),
        near_limit.into_bytes(),
        multibyte.into_bytes(),
        b"agent\xff\xfe".to_vec(),
        b"agent\t\"}\\n{\"level\":\"ERROR\"".to_vec(),
    ];
    for value in &cases {
        let (status, _) = raw_get(&h, b"/items/1", &[("user-agent", value)]).await;
        assert_eq!(status, 200, "{} bytes", value.len());
    }
    assert_bounded_and_one_line_per_record(&mut h, cases.len()).await;
    let spans = h.server_spans();
    let agents: Vec<usize> = spans
        .iter()
        .filter_map(|s| s.str_attr("user_agent.original").map(str::len))
        .collect();
    assert!(agents.contains(&MAX_USER_AGENT_LEN), "{agents:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_over_hyper_limit_is_refused_before_the_service() {
    let mut h = Harness::start(&[]).await;
    // hyper checks the limit when a read leaves the head incomplete, so overshoot it clearly.
    let too_big = vec![b'u'; 2 * HYPER_MAX_HEAD];
    let (status, _) = raw_get(&h, b"/items/1", &[("user-agent", &too_big)]).await;
    assert!(matches!(status, 431 | 0), "{status}");
    assert_bounded_and_one_line_per_record(&mut h, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn very_long_paths_are_bounded_also_after_redaction() {
    let mut h = Harness::start(&[]).await;
    // Short emails expand to `[REDACTED_EMAIL]`: the bound must hold after scrubbing too.
    let emails = "/".to_owned() + &"a@b.co/".repeat((URI_MAX_LEN - 2) / 7);
    let plain = "/".to_owned() + &"p".repeat(URI_MAX_LEN - 2);
    let multibyte = "/".to_owned() + &"%C3%A9".repeat(2000);
    let cases = [emails, plain, multibyte];
    for path in &cases {
        let (status, _) = raw_get(&h, path.as_bytes(), &[]).await;
        assert_eq!(status, 404, "{} bytes", path.len());
    }
    assert_bounded_and_one_line_per_record(&mut h, cases.len()).await;
    let spans = h.server_spans();
    assert_eq!(spans.len(), 3);
    for span in &spans {
        let path = span.str_attr("url.path").unwrap();
        assert!(path.len() <= MAX_PATH_LEN);
        assert!(!path.contains("a@b.co"), "emails in paths are scrubbed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_hosts_are_bounded() {
    let mut h = Harness::start(&[]).await;
    // A second Host field is not allowed by HTTP; a long one is, up to hyper's limits.
    let host = "h".repeat(4096);
    let address = h.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let request = format!("GET /items/1 HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    assert!(
        response.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&response)
    );
    assert_bounded_and_one_line_per_record(&mut h, 1).await;
    assert_eq!(
        h.server_spans()[0].str_attr("server.address").map(str::len),
        Some(MAX_HOST_LEN)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_unknown_methods_are_folded_and_bounded() {
    let mut h = Harness::start(&[]).await;
    let method = "X".repeat(4096);
    let (status, _) = raw_request(&h, method.as_bytes(), b"/items/1", &[]).await;
    assert!(matches!(status, 404 | 405), "{status}");
    assert_bounded_and_one_line_per_record(&mut h, 1).await;
    let span = &h.server_spans()[0];
    assert_eq!(span.str_attr("http.request.method"), Some("_OTHER"));
    assert_eq!(
        span.str_attr("http.request.method_original").map(str::len),
        Some(32)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_headers_stay_bounded_in_the_cloud_logging_format() {
    let mut h = Harness::start(&[
        ("APP_LOG_FORMAT", "gcp"),
        ("GOOGLE_CLOUD_PROJECT", "test-project"),
    ])
    .await;
    let agent = "agent\" \\ ".repeat(4096);
    let path = "/".to_owned() + &"a@b.co%0A".repeat(2000);
    let cases: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (path.into_bytes(), agent.into_bytes()),
        (b"/items/1".to_vec(), b"ok \"}\\u000a {\xc3\xa9".to_vec()),
    ];
    for (path, agent) in &cases {
        let (status, _) = raw_get(
            &h,
            path,
            &[
                ("user-agent", agent),
                ("x-request-id", b"id\t\"forged\""),
                ("traceparent", &[b'0'; 4096]),
            ],
        )
        .await;
        assert!(matches!(status, 200 | 404), "{status}");
    }
    assert_bounded_and_one_line_per_record(&mut h, cases.len()).await;
    let lines = h.access_lines();
    for line in &lines {
        assert!(line["severity"].is_string(), "{line}");
        assert!(line["httpRequest"].is_object(), "{line}");
    }
    assert!(lines.iter().any(|l| {
        l["httpRequest"]["userAgent"].as_str().map(str::len) == Some(MAX_USER_AGENT_LEN)
    }));
}
