//! One W3C trace per journey: the loadgen's journey span is the root, its CLIENT spans the
//! parents of the shop's SERVER spans, and the report's trace ids are those traces.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use telemetry::testkit::{OtlpReceiver, SpanKind};

use crate::common::{Shop, json, loadgen, stderr};

// Multi-threaded: the receiver must keep answering while the test waits for loadgen to exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_journey_is_one_trace_from_loadgen_client_spans_to_shop_server_spans() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let endpoint = receiver.grpc_endpoint();
    let shop = Shop::start(&[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)]).await;
    let output = loadgen(
        &[
            "--target",
            &shop.url,
            "--users",
            "2",
            "--requests",
            "40",
            "--json",
        ],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let summary = json(&output);
    let ok = receiver
        .wait_for_spans(Duration::from_secs(15), |spans| {
            spans
                .iter()
                .filter(|s| {
                    s.kind == SpanKind::Client
                        && s.resource.get("service.name").and_then(|v| v.as_str())
                            == Some("loadgen")
                })
                .count()
                >= 40
                && spans.iter().filter(|s| s.kind == SpanKind::Server).count() >= 40
        })
        .await;
    let seen: BTreeMap<(String, String), usize> =
        receiver
            .spans()
            .iter()
            .fold(BTreeMap::new(), |mut seen, s| {
                let service = s
                    .resource
                    .get("service.name")
                    .and_then(|v| v.as_str())
                    .unwrap_or("");
                *seen
                    .entry((service.to_owned(), format!("{:?}", s.kind)))
                    .or_default() += 1;
                seen
            });
    assert!(
        ok,
        "spans by service and kind: {seen:?}; loadgen stderr: {}",
        stderr(&output)
    );
    let spans = receiver.spans();
    let service = |s: &telemetry::testkit::CapturedSpan| {
        s.resource
            .get("service.name")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let journeys: BTreeMap<&str, _> = spans
        .iter()
        .filter(|s| service(s) == "loadgen" && s.kind == SpanKind::Internal)
        .map(|s| (s.span_id.as_str(), s))
        .collect();
    let clients: Vec<_> = spans
        .iter()
        .filter(|s| service(s) == "loadgen" && s.kind == SpanKind::Client)
        .collect();
    assert_eq!(clients.len(), 40, "one CLIENT span per request");
    let mut traces = BTreeSet::new();
    for client in &clients {
        let journey = journeys
            .get(client.parent_span_id.as_str())
            .unwrap_or_else(|| panic!("a CLIENT span's parent is its journey span: {client:?}"));
        assert_eq!(journey.trace_id, client.trace_id);
        assert!(
            journey.parent_span_id.is_empty(),
            "the journey span is the root"
        );
        assert!(
            client
                .str_attr("url.full")
                .is_some_and(|u| u.starts_with(&shop.url))
        );
        assert!(client.attr("http.response.status_code").is_some());
        // The shop continued the trace: its SERVER span is the child of the CLIENT span.
        let server = spans
            .iter()
            .find(|s| s.kind == SpanKind::Server && s.parent_span_id == client.span_id)
            .unwrap_or_else(|| panic!("no SERVER span under {client:?}"));
        assert_eq!(server.trace_id, client.trace_id);
        // Sampled, with the random-trace-id flag of W3C Trace Context level 2 propagated.
        assert_eq!(client.flags & 0xff, 0x03, "{client:?}");
        assert_eq!(server.flags & 0xff, 0x03, "{server:?}");
        traces.insert(client.trace_id.clone());
    }
    // Journeys of several requests share a trace; different journeys never do.
    assert_eq!(traces.len(), journeys.len().min(traces.len()));
    assert!(
        traces.len() < clients.len(),
        "journeys hold several requests"
    );
    let started: u64 = summary["journeys"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(traces.len() as u64, started);
    // The report's trace ids are the traces that were exported.
    for route in summary["routes"].as_array().unwrap() {
        for sample in route["slowest"].as_array().unwrap() {
            assert!(
                traces.contains(sample["trace_id"].as_str().unwrap()),
                "{sample}"
            );
        }
    }
}
