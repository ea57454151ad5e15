//! The server under load: `--target http://host:port[/prefix]` (plain HTTP/1.1 only).

use std::net::SocketAddr;

/// A parsed `--target`.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// As given, without a trailing slash (for messages and reports).
    pub(crate) url: String,
    /// `host:port` for connecting and for the `Host` header.
    pub(crate) authority: String,
    /// Prepended to every request path (empty, or `/something` without trailing slash).
    pub(crate) prefix: String,
}

impl Target {
    /// Parses `http://host[:port][/prefix]`.
    pub(crate) fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim().trim_end_matches('/');
        let rest = if let Some(rest) = raw.strip_prefix("http://") {
            rest
        } else if raw.starts_with("https://") {
            return Err(format!(
                "invalid --target {raw:?}: https is not supported (plain HTTP/1.1 only)"
            ));
        } else {
            return Err(format!(
                "invalid --target {raw:?}: expected http://host:port (e.g. http://127.0.0.1:8080)"
            ));
        };
        let (authority, prefix) = match rest.find('/') {
            Some(index) => rest.split_at(index),
            None => (rest, ""),
        };
        let valid_authority = !authority.is_empty()
            && !authority.contains('@')
            && authority
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b));
        if !valid_authority || prefix.contains(['?', '#', ' ']) {
            return Err(format!(
                "invalid --target {raw:?}: expected http://host:port (e.g. http://127.0.0.1:8080)"
            ));
        }
        let has_port = if authority.starts_with('[') {
            authority.contains("]:")
        } else {
            authority.contains(':')
        };
        let authority = if has_port {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        Ok(Self {
            url: raw.to_owned(),
            authority,
            prefix: prefix.to_owned(),
        })
    }

    /// Resolves the host once (every connection of the run uses the first address).
    pub(crate) async fn resolve(&self) -> Result<SocketAddr, String> {
        match tokio::net::lookup_host(&self.authority).await {
            Ok(mut addresses) => addresses
                .next()
                .ok_or_else(|| format!("cannot resolve {}: no address", self.url)),
            Err(error) => Err(format!("cannot resolve {}: {error}", self.url)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn host_port_and_prefix_are_split() {
        let target = Target::parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!(target.authority, "127.0.0.1:8080");
        assert_eq!(target.prefix, "");
        assert_eq!(target.url, "http://127.0.0.1:8080");
        let target = Target::parse("http://localhost/api").unwrap();
        assert_eq!(target.authority, "localhost:80");
        assert_eq!(target.prefix, "/api");
        let target = Target::parse("http://[::1]:9000").unwrap();
        assert_eq!(target.authority, "[::1]:9000");
        let target = Target::parse("http://[::1]").unwrap();
        assert_eq!(target.authority, "[::1]:80");
    }

    #[test]
    fn other_schemes_and_garbage_are_refused() {
        assert!(Target::parse("https://x:1").unwrap_err().contains("https"));
        assert!(Target::parse("127.0.0.1:8080").is_err());
        assert!(Target::parse("http://").is_err());
        assert!(Target::parse("http://u:p@host:1").is_err());
        assert!(Target::parse("http://host:1/a?b").is_err());
    }
}
