//! `client.address` behind proxies: which hop of `X-Forwarded-For` or `Forwarded` (RFC 7239)
//! is the client, believed only from trusted hops.
//!
//! Each proxy appends the address it received the request from to the right of the header.
//! Everything left of the entry the nearest untrusted party wrote is under the client's
//! control, so the walk goes **right to left**: start from the TCP peer; while the current hop
//! is trusted, step one entry to the left; the first untrusted address is the client
//! (*right-most untrusted*). Hence:
//!
//! - extra entries a client puts in its own header sit left of the one the proxy appended and
//!   are never read;
//! - an untrusted peer's headers are ignored (the peer is the client);
//! - an entry that is malformed, `unknown` or obfuscated (`_hidden`) where the walk needs an
//!   address ends the walk: the client address is the last trusted hop, never anything left of
//!   it;
//! - at most [`MAX_FORWARDED_HOPS`] entries are looked at; a longer chain of trusted hops ends
//!   at the last one looked at;
//! - exactly one header is read ([`ForwardedHeader`]), never both: a proxy that only appends to
//!   one passes a client-made value of the other through untouched.
//!
//! Ports are dropped (`198.51.100.2:8080`, `"[2001:db8::1]:4711"`), IPv4-mapped IPv6 addresses
//! are read as IPv4, and the result goes through the PII mode (truncated in `pseudonym`) like
//! a peer address. Off (`APP_TRUSTED_PROXIES=off`, the local default) costs one comparison per
//! request.

use std::net::{IpAddr, Ipv6Addr};

use http::HeaderMap;

use crate::config::{ConfigError, EnvReader, Persona};

/// The most forwarding entries looked at for one request.
pub const MAX_FORWARDED_HOPS: usize = 16;
/// The most proxies `APP_TRUSTED_PROXIES` may count.
const MAX_HOP_COUNT: usize = MAX_FORWARDED_HOPS;
/// The longest forwarding entry parsed (longer ones are malformed).
const MAX_ENTRY_LEN: usize = 128;

/// Which forwarding header is read (`APP_FORWARDED_HEADER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (the default; what every Google front end
    /// appends to).
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1` (RFC 7239).
    Forwarded,
}

/// Whose forwarding headers are believed (`APP_TRUSTED_PROXIES`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustedProxies {
    /// Headers are ignored: `client.address` is the TCP peer (the local default).
    Off,
    /// The nearest `count` hops are proxies, whatever their addresses: the peer and the
    /// `count - 1` right-most entries. The cloud persona's default is `1`: the peer is Cloud
    /// Run's front end, and the right-most entry is the address it received the request from.
    Hops {
        /// Proxies in front of the service (1–16).
        count: usize,
        /// The header they append to.
        header: ForwardedHeader,
    },
    /// The hops whose addresses are in one of these networks are proxies.
    Networks {
        /// The trusted networks.
        networks: Vec<Network>,
        /// The header they append to.
        header: ForwardedHeader,
    },
}

/// An IP network (`10.0.0.0/8`, `2001:db8::/32`; a bare address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    address: IpAddr,
    prefix: u8,
}

impl Network {
    /// Parses `a.b.c.d/n`, `v6/n` or a bare address.
    pub fn parse(text: &str) -> Option<Network> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address.parse().ok()?;
        let address = address.to_canonical();
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().ok().filter(|p| *p <= max)?
            }
            Some(_) => return None,
        };
        Some(Network { address, prefix })
    }

    /// Whether `ip` is in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Reads `APP_TRUSTED_PROXIES` and `APP_FORWARDED_HEADER`.
pub(crate) fn from_env(
    env: &EnvReader<'_>,
    persona: Persona,
) -> Result<TrustedProxies, ConfigError> {
    const ALLOWED: &str = "off, a number of proxies in front of the service (1-16), or comma-separated trusted networks, e.g. 10.0.0.0/8,2001:db8::/32";
    let header = env
        .choice(
            "APP_FORWARDED_HEADER",
            &[
                ("x-forwarded-for", ForwardedHeader::XForwardedFor),
                ("forwarded", ForwardedHeader::Forwarded),
            ],
        )?
        .unwrap_or(ForwardedHeader::XForwardedFor);
    let Some(raw) = env.get("APP_TRUSTED_PROXIES") else {
        return Ok(match persona {
            Persona::Local => TrustedProxies::Off,
            Persona::Cloud => TrustedProxies::Hops { count: 1, header },
        });
    };
    if raw == "off" {
        return Ok(TrustedProxies::Off);
    }
    if raw.bytes().all(|b| b.is_ascii_digit()) {
        return match raw.parse::<usize>() {
            Ok(count) if (1..=MAX_HOP_COUNT).contains(&count) => {
                Ok(TrustedProxies::Hops { count, header })
            }
            _ => Err(ConfigError::new("APP_TRUSTED_PROXIES", raw, ALLOWED)),
        };
    }
    let networks: Option<Vec<Network>> = raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(Network::parse)
        .collect();
    match networks {
        Some(networks) if !networks.is_empty() && networks.len() <= 64 => {
            Ok(TrustedProxies::Networks { networks, header })
        }
        _ => Err(ConfigError::new("APP_TRUSTED_PROXIES", raw, ALLOWED)),
    }
}

impl TrustedProxies {
    /// The header read, unless off.
    fn header(&self) -> Option<ForwardedHeader> {
        match self {
            TrustedProxies::Off => None,
            TrustedProxies::Hops { header, .. } | TrustedProxies::Networks { header, .. } => {
                Some(*header)
            }
        }
    }

    /// Whether the hop `position` steps from the service (0: the TCP peer) at `ip` is a proxy.
    fn trusts(&self, position: usize, ip: IpAddr) -> bool {
        match self {
            TrustedProxies::Off => false,
            TrustedProxies::Hops { count, .. } => position < *count,
            TrustedProxies::Networks { networks, .. } => {
                networks.iter().any(|network| network.contains(ip))
            }
        }
    }
}

/// The client's address: `peer` itself when proxies are off (or `peer` is not trusted), else
/// the right-most untrusted hop of the configured header (see the module documentation).
pub(crate) fn client_ip(
    proxies: &TrustedProxies,
    peer: Option<IpAddr>,
    headers: &HeaderMap,
) -> Option<IpAddr> {
    let peer = peer?.to_canonical();
    let Some(header) = proxies.header() else {
        return Some(peer);
    };
    if !proxies.trusts(0, peer) {
        return Some(peer);
    }
    let name = match header {
        ForwardedHeader::XForwardedFor => "x-forwarded-for",
        ForwardedHeader::Forwarded => http::header::FORWARDED.as_str(),
    };
    let mut current = peer;
    let mut position = 0;
    // Right to left: the last field first, each field's last element first.
    for value in headers.get_all(name).iter().rev() {
        let Ok(value) = value.to_str() else {
            return Some(current);
        };
        for entry in value.rsplit(',') {
            let entry = entry.trim_matches([' ', '\t']);
            if entry.is_empty() {
                continue;
            }
            position += 1;
            if position > MAX_FORWARDED_HOPS {
                return Some(current);
            }
            let parsed = match header {
                ForwardedHeader::XForwardedFor => parse_node(entry, false),
                ForwardedHeader::Forwarded => forwarded_for(entry),
            };
            let Some(ip) = parsed else {
                return Some(current);
            };
            let ip = ip.to_canonical();
            if !proxies.trusts(position, ip) {
                return Some(ip);
            }
            current = ip;
        }
    }
    Some(current)
}

/// The `for=` node of one `Forwarded` element (`for=192.0.2.60;proto=http;by=…`).
fn forwarded_for(element: &str) -> Option<IpAddr> {
    let mut found = None;
    for pair in element.split(';') {
        let (name, value) = pair.split_once('=')?;
        if !name.trim_matches([' ', '\t']).eq_ignore_ascii_case("for") {
            continue;
        }
        if found.is_some() {
            return None; // Two `for` parameters in one element: malformed.
        }
        let value = value.trim_matches([' ', '\t']);
        let value = match value.strip_prefix('"') {
            Some(quoted) => {
                let inner = quoted.strip_suffix('"')?;
                if inner.contains(['"', '\\']) {
                    return None;
                }
                inner
            }
            None => value,
        };
        found = Some(parse_node(value, true)?);
    }
    found
}

/// An address with an optional port: `a.b.c.d`, `a.b.c.d:port`, `[v6]`, `[v6]:port`, and (in
/// `X-Forwarded-For` only) a bare `v6`. `unknown`, obfuscated names and anything else: `None`.
fn parse_node(node: &str, brackets_required: bool) -> Option<IpAddr> {
    if node.len() > MAX_ENTRY_LEN {
        return None;
    }
    if let Some(rest) = node.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        if !after.is_empty() && !is_port(after.strip_prefix(':')?) {
            return None;
        }
        return v6.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    if let Ok(ip) = node.parse::<IpAddr>() {
        return match ip {
            IpAddr::V6(_) if brackets_required => None,
            ip => Some(ip),
        };
    }
    let (v4, port) = node.split_once(':')?;
    if !is_port(port) {
        return None;
    }
    v4.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

fn is_port(port: &str) -> bool {
    !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn headers(name: &str, values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                http::HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn hops(count: usize) -> TrustedProxies {
        TrustedProxies::Hops {
            count,
            header: ForwardedHeader::XForwardedFor,
        }
    }

    fn networks(list: &str, header: ForwardedHeader) -> TrustedProxies {
        TrustedProxies::Networks {
            networks: list
                .split(',')
                .map(|n| Network::parse(n).unwrap())
                .collect(),
            header,
        }
    }

    const PEER: &str = "169.254.1.1";

    fn resolve(proxies: &TrustedProxies, name: &str, values: &[&str]) -> IpAddr {
        client_ip(proxies, Some(ip(PEER)), &headers(name, values)).unwrap()
    }

    #[test]
    fn off_ignores_every_header() {
        let xff = &["203.0.113.7"];
        assert_eq!(
            resolve(&TrustedProxies::Off, "x-forwarded-for", xff),
            ip(PEER)
        );
        assert_eq!(
            client_ip(&TrustedProxies::Off, None, &HeaderMap::new()),
            None
        );
    }

    #[test]
    fn one_hop_takes_the_right_most_entry_whatever_the_client_prepended() {
        let p = hops(1);
        assert_eq!(
            resolve(&p, "x-forwarded-for", &["6.6.6.6, 1.1.1.1 ,203.0.113.7"]),
            ip("203.0.113.7")
        );
        // Several fields are one list, in order.
        assert_eq!(
            resolve(&p, "x-forwarded-for", &["6.6.6.6", "203.0.113.7"]),
            ip("203.0.113.7")
        );
        // No header: the peer.
        assert_eq!(resolve(&p, "x-forwarded-for", &[]), ip(PEER));
        // Two hops: one entry further left; a chain shorter than that ends at its left end.
        assert_eq!(
            resolve(
                &hops(2),
                "x-forwarded-for",
                &["6.6.6.6, 203.0.113.7, 10.0.0.2"]
            ),
            ip("203.0.113.7")
        );
        assert_eq!(
            resolve(&hops(3), "x-forwarded-for", &["203.0.113.7"]),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn networks_skip_trusted_hops_and_ignore_an_untrusted_peer() {
        let p = networks("169.254.0.0/16,10.0.0.0/8", ForwardedHeader::XForwardedFor);
        assert_eq!(
            resolve(
                &p,
                "x-forwarded-for",
                &["6.6.6.6, 203.0.113.7, 10.1.2.3, 10.9.9.9"]
            ),
            ip("203.0.113.7")
        );
        // Every hop trusted: the left-most.
        assert_eq!(
            resolve(&p, "x-forwarded-for", &["10.1.2.3"]),
            ip("10.1.2.3")
        );
        let strict = networks("10.0.0.0/8", ForwardedHeader::XForwardedFor);
        assert_eq!(
            resolve(&strict, "x-forwarded-for", &["203.0.113.7"]),
            ip(PEER)
        );
    }

    #[test]
    fn malformed_entries_end_the_walk_at_the_last_trusted_hop() {
        let p = networks("169.254.0.0/16,10.0.0.0/8", ForwardedHeader::XForwardedFor);
        for bad in [
            "garbage",
            "unknown",
            "1.2.3.4.5",
            "300.1.1.1",
            "[::1",
            "1.2.3.4:port",
            "fe80::1%eth0",
        ] {
            let value = format!("203.0.113.7, 10.0.0.5, {bad}");
            assert_eq!(resolve(&p, "x-forwarded-for", &[&value]), ip(PEER), "{bad}");
            let value = format!("{bad}, 10.0.0.5");
            assert_eq!(
                resolve(&p, "x-forwarded-for", &[&value]),
                ip("10.0.0.5"),
                "{bad}"
            );
        }
        // Garbage left of the client is never read.
        assert_eq!(
            resolve(&hops(1), "x-forwarded-for", &["\"oops, , ;;, 203.0.113.7"]),
            ip("203.0.113.7")
        );
        let long = format!("{}, 203.0.113.7", "9".repeat(10_000));
        assert_eq!(
            resolve(&hops(1), "x-forwarded-for", &[&long]),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn ipv6_ports_and_mapped_addresses() {
        let p = hops(1);
        for (entry, expected) in [
            ("2001:db8::1", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("[2001:db8::1]:4711", "2001:db8::1"),
            ("198.51.100.2:8080", "198.51.100.2"),
            ("::ffff:198.51.100.2", "198.51.100.2"),
        ] {
            assert_eq!(
                resolve(&p, "x-forwarded-for", &[entry]),
                ip(expected),
                "{entry}"
            );
        }
        let v6 = networks("2001:db8:ff::/48", ForwardedHeader::XForwardedFor);
        assert_eq!(
            client_ip(
                &v6,
                Some(ip("2001:db8:ff::9")),
                &headers("x-forwarded-for", &["2001:db8:1::2"])
            ),
            Some(ip("2001:db8:1::2"))
        );
    }

    #[test]
    fn forwarded_values_quoted_or_not() {
        let p = TrustedProxies::Hops {
            count: 1,
            header: ForwardedHeader::Forwarded,
        };
        let cases = [
            ("for=198.51.100.9", Some("198.51.100.9")),
            ("For=\"198.51.100.9\";proto=https", Some("198.51.100.9")),
            (
                "proto=https;for=\"[2001:db8:cafe::17]:4711\"",
                Some("2001:db8:cafe::17"),
            ),
            ("for=\"_hidden\"", None),
            ("for=unknown", None),
            ("for=2001:db8::1", None), // IPv6 must be bracketed in Forwarded
            ("for=\"198.51.100.9", None),
            ("for=1.1.1.1;for=2.2.2.2", None),
            ("proto=https", None),
        ];
        for (element, expected) in cases {
            let value = format!("for=6.6.6.6, {element}");
            let expected = expected.map_or(ip(PEER), ip);
            assert_eq!(resolve(&p, "forwarded", &[&value]), expected, "{element}");
        }
        // Only the configured header is read.
        assert_eq!(resolve(&p, "x-forwarded-for", &["203.0.113.7"]), ip(PEER));
        assert_eq!(
            resolve(&hops(1), "forwarded", &["for=203.0.113.7"]),
            ip(PEER)
        );
    }

    #[test]
    fn long_trusted_chains_are_bounded() {
        let p = networks("169.254.0.0/16,10.0.0.0/8", ForwardedHeader::XForwardedFor);
        let chain: Vec<String> = (0..100)
            .map(|i| format!("10.0.{}.{}", i / 250, i % 250 + 1))
            .collect();
        let value = format!("203.0.113.7, {}", chain.join(", "));
        // The 16th entry from the right is the last one looked at.
        assert_eq!(
            resolve(&p, "x-forwarded-for", &[&value]),
            ip(&chain[100 - MAX_FORWARDED_HOPS])
        );
    }

    proptest::proptest! {
        /// Whatever a client writes into its own header, the address the trusted proxies
        /// appended after it decides: the client cannot move `client.address`.
        #[test]
        fn a_client_prefix_never_changes_the_result(
            prefix in "[ -~\t]{0,300}",
            forwarded in proptest::bool::ANY,
        ) {
            let (header, name, suffix) = if forwarded {
                (ForwardedHeader::Forwarded, "forwarded", ", for=203.0.113.7, for=10.0.0.2")
            } else {
                (ForwardedHeader::XForwardedFor, "x-forwarded-for", ", 203.0.113.7, 10.0.0.2")
            };
            let value = format!("{prefix}{suffix}");
            for proxies in [
                TrustedProxies::Hops { count: 2, header },
                networks("169.254.0.0/16,10.0.0.0/8", header),
            ] {
                proptest::prop_assert_eq!(resolve(&proxies, name, &[&value]), ip("203.0.113.7"));
                // The same prefix as an earlier field of its own.
                let fields = [prefix.as_str(), &suffix[2..]];
                proptest::prop_assert_eq!(resolve(&proxies, name, &fields), ip("203.0.113.7"));
            }
        }
    }

    #[test]
    fn configuration() {
        let read = |pairs: &[(&str, &str)], persona| {
            let pairs: Vec<(String, String)> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let env = EnvReader::new(move |key| {
                pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
            });
            from_env(&env, persona)
        };
        assert_eq!(read(&[], Persona::Local).unwrap(), TrustedProxies::Off);
        assert_eq!(read(&[], Persona::Cloud).unwrap(), hops(1));
        assert_eq!(
            read(&[("APP_TRUSTED_PROXIES", "off")], Persona::Cloud).unwrap(),
            TrustedProxies::Off
        );
        assert_eq!(
            read(
                &[
                    ("APP_TRUSTED_PROXIES", "2"),
                    ("APP_FORWARDED_HEADER", "forwarded")
                ],
                Persona::Local
            )
            .unwrap(),
            TrustedProxies::Hops {
                count: 2,
                header: ForwardedHeader::Forwarded
            }
        );
        assert!(matches!(
            read(&[("APP_TRUSTED_PROXIES", "10.0.0.0/8, ::1")], Persona::Local).unwrap(),
            TrustedProxies::Networks { networks, .. } if networks.len() == 2
        ));
        for bad in [
            "0",
            "17",
            "10.0.0.0/33",
            "10.0.0.0/",
            "proxy.internal",
            "10.0.0.0/8,nope",
            "on",
        ] {
            let err = read(&[("APP_TRUSTED_PROXIES", bad)], Persona::Local).unwrap_err();
            assert_eq!(err.variable, "APP_TRUSTED_PROXIES", "{bad}");
        }
        let err = read(&[("APP_FORWARDED_HEADER", "x-real-ip")], Persona::Local).unwrap_err();
        assert_eq!(err.variable, "APP_FORWARDED_HEADER");
        let net = Network::parse("192.168.0.0/16").unwrap();
        assert!(net.contains(ip("192.168.200.1")));
        assert!(!net.contains(ip("192.169.0.1")));
        assert!(Network::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(!Network::parse("::/0").unwrap().contains(ip("8.8.8.8")));
    }
}
