//! `client.address` behind proxies, over real HTTP: forwarding headers are believed only from
//! trusted hops, right-most untrusted first, and spoofing attempts change nothing.
#![allow(clippy::unwrap_used)]

use crate::common::Harness;

/// Sends `GET /items/1` with `headers`; returns the SERVER span's `client.address` and the
/// access line's.
async fn client_address(env: &[(&str, &str)], headers: &[(&str, &str)]) -> (String, String) {
    let mut pairs = vec![("APP_PII_MODE", "full")];
    pairs.extend_from_slice(env);
    let mut h = Harness::start(&pairs).await;
    let mut request = h.client.get(format!("{}/items/1", h.base));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    assert_eq!(request.send().await.unwrap().status(), 200);
    h.flush().await;
    let spans = h.server_spans();
    assert_eq!(spans.len(), 1);
    let span = spans[0].str_attr("client.address").unwrap().to_owned();
    let access = h.access_lines();
    let line = access[0]["client.address"].as_str().unwrap().to_owned();
    (span, line)
}

#[tokio::test]
async fn forwarding_headers_are_ignored_unless_proxies_are_trusted() {
    let spoof = [
        ("x-forwarded-for", "203.0.113.7"),
        ("forwarded", "for=198.51.100.9"),
    ];
    let (span, line) = client_address(&[], &spoof).await;
    assert_eq!((span.as_str(), line.as_str()), ("127.0.0.1", "127.0.0.1"));
    let (span, _) = client_address(&[("APP_TRUSTED_PROXIES", "off")], &spoof).await;
    assert_eq!(span, "127.0.0.1");
}

#[tokio::test]
async fn one_trusted_hop_takes_what_it_appended_not_what_the_client_wrote() {
    let env = [("APP_TRUSTED_PROXIES", "1")];
    // The client wrote `6.6.6.6`; the proxy (our peer) appended the address it saw.
    let (span, line) = client_address(&env, &[("x-forwarded-for", "6.6.6.6, 203.0.113.7")]).await;
    assert_eq!(
        (span.as_str(), line.as_str()),
        ("203.0.113.7", "203.0.113.7")
    );
    // A second field written by the client before the proxy's is still left of it.
    let (span, _) = client_address(&env, &[("x-forwarded-for", "[2001:db8::1]:4711")]).await;
    assert_eq!(span, "2001:db8::1");
    // Malformed where the client should be: the proxy itself, never a guess.
    let (span, _) = client_address(&env, &[("x-forwarded-for", "203.0.113.7, not-an-ip")]).await;
    assert_eq!(span, "127.0.0.1");
    // `Forwarded` is not read unless configured.
    let (span, _) = client_address(&env, &[("forwarded", "for=198.51.100.9")]).await;
    assert_eq!(span, "127.0.0.1");
}

#[tokio::test]
async fn trusted_networks_and_rfc_7239_forwarded() {
    let env = [
        ("APP_TRUSTED_PROXIES", "127.0.0.0/8, 10.0.0.0/8"),
        ("APP_FORWARDED_HEADER", "forwarded"),
    ];
    let (span, line) = client_address(
        &env,
        &[(
            "forwarded",
            "for=6.6.6.6, for=\"[2001:db8:cafe::17]:4711\";proto=https, for=10.1.2.3",
        )],
    )
    .await;
    assert_eq!(
        (span.as_str(), line.as_str()),
        ("2001:db8:cafe::17", "2001:db8:cafe::17")
    );
    // Obfuscated or unknown where the client should be: the last trusted hop.
    let (span, _) = client_address(&env, &[("forwarded", "for=_hidden, for=10.1.2.3")]).await;
    assert_eq!(span, "10.1.2.3");
    // X-Forwarded-For is ignored when Forwarded is the configured header.
    let (span, _) = client_address(&env, &[("x-forwarded-for", "203.0.113.7")]).await;
    assert_eq!(span, "127.0.0.1");
}

#[tokio::test]
async fn the_pii_mode_applies_to_a_forwarded_address() {
    let mut h = Harness::start(&[("APP_TRUSTED_PROXIES", "1")]).await;
    let response = h
        .client
        .get(format!("{}/items/1", h.base))
        .header("x-forwarded-for", "203.0.113.7")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    h.flush().await;
    assert_eq!(
        h.server_spans()[0].str_attr("client.address"),
        Some("203.0.113.0"),
        "pseudonym mode truncates to /24"
    );
}
