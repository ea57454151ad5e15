//! `RUST_LOG` directives: `level` and `target=level`, comma-separated; the longest matching
//! target prefix wins. (Span-based directives of `EnvFilter` are not supported, nor is a bare
//! target meaning `target=trace`: a word that is not a level, such as `verbose`, is a typo far
//! more often than a target, so both are refused with a clear error.)

use tracing::level_filters::LevelFilter;
use tracing::{Level, Metadata};

/// A parsed `RUST_LOG`.
#[derive(Debug, Clone)]
pub struct LogFilter {
    default: LevelFilter,
    directives: Vec<(String, LevelFilter)>,
}

impl LogFilter {
    /// Parses directives like `info,shop=debug,hyper=warn`.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut default = LevelFilter::INFO;
        let mut directives = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.split_once('=') {
                None => match parse_level(part) {
                    Some(level) => default = level,
                    None if is_target(part) => {
                        return Err(format!(
                            "unknown level {part:?} (for a target's level write `{part}=debug`); {ALLOWED}"
                        ));
                    }
                    None => return Err(format!("unknown level {part:?}; {ALLOWED}")),
                },
                Some((target, level)) => {
                    if !is_target(target) {
                        return Err(format!("invalid target {target:?}; {ALLOWED}"));
                    }
                    let level = parse_level(level)
                        .ok_or_else(|| format!("unknown level {level:?}; {ALLOWED}"))?;
                    directives.push((target.to_owned(), level));
                }
            }
        }
        directives.sort_by_key(|(target, _)| std::cmp::Reverse(target.len()));
        Ok(Self {
            default,
            directives,
        })
    }

    /// Whether an event of `level` from `target` passes.
    pub fn enabled(&self, target: &str, level: &Level) -> bool {
        self.level_for(target) >= *level
    }

    /// Whether a callsite passes.
    pub fn enabled_metadata(&self, metadata: &Metadata<'_>) -> bool {
        self.enabled(metadata.target(), metadata.level())
    }

    /// The most verbose level any directive allows (a hint for `tracing`'s fast path).
    pub fn max_level(&self) -> LevelFilter {
        self.directives
            .iter()
            .map(|(_, level)| *level)
            .chain(std::iter::once(self.default))
            .max()
            .unwrap_or(LevelFilter::INFO)
    }

    fn level_for(&self, target: &str) -> LevelFilter {
        for (prefix, level) in &self.directives {
            if target.starts_with(prefix.as_str())
                && (target.len() == prefix.len() || target[prefix.len()..].starts_with("::"))
            {
                return *level;
            }
        }
        self.default
    }
}

const ALLOWED: &str = "expected comma-separated `level` or `target=level` with level one of off, error, warn, info, debug, trace";

fn parse_level(s: &str) -> Option<LevelFilter> {
    match s.to_ascii_lowercase().as_str() {
        "off" => Some(LevelFilter::OFF),
        "error" => Some(LevelFilter::ERROR),
        "warn" => Some(LevelFilter::WARN),
        "info" => Some(LevelFilter::INFO),
        "debug" => Some(LevelFilter::DEBUG),
        "trace" => Some(LevelFilter::TRACE),
        _ => None,
    }
}

fn is_target(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':' || c == '-')
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn longest_prefix_wins() {
        let f = LogFilter::parse("warn,shop=debug,shop::orders=error").unwrap();
        assert!(f.enabled("shop::catalog", &Level::DEBUG));
        assert!(!f.enabled("shop::orders", &Level::WARN));
        assert!(!f.enabled("hyper", &Level::INFO));
        assert!(!f.enabled("shopping", &Level::DEBUG));
        assert_eq!(f.max_level(), LevelFilter::DEBUG);
    }

    #[test]
    fn bad_directives_are_refused() {
        assert!(LogFilter::parse("info,hyper=loud").is_err());
        assert!(LogFilter::parse("[span]=info").is_err());
    }

    #[test]
    fn a_word_that_is_not_a_level_is_refused() {
        let err = LogFilter::parse("verbose").unwrap_err();
        assert!(err.contains("\"verbose\""), "{err}");
        assert!(
            err.contains("off, error, warn, info, debug, trace"),
            "{err}"
        );
        assert!(LogFilter::parse("info,shop").is_err());
        assert!(LogFilter::parse("shop=trace").is_ok());
        assert!(LogFilter::parse("DEBUG").is_ok());
    }
}
