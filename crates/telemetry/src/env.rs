//! Reading configuration from environment variables: the one reader behind the library's
//! [`TelemetryConfig`](crate::config::TelemetryConfig) and an app's own configuration.
//!
//! An [`EnvReader`] wraps a lookup function (a variable name → its value, if set), so the
//! process environment and a test's map are read the same way. Every accessor:
//!
//! - trims the value and treats an empty value as unset ([`EnvReader::raw`] is the exception,
//!   for the variables where an empty value means something);
//! - answers the default when the variable is unset;
//! - on a bad value returns a [`ConfigError`] that names the variable, the value and what is
//!   allowed, printed as `invalid configuration: VAR="value": what is allowed`, so a
//!   misconfigured service refuses to start with a message that says how to fix it.
//!
//! ```
//! use std::collections::HashMap;
//! use std::time::Duration;
//! use telemetry::env::EnvReader;
//!
//! let vars = HashMap::from([("PORT", " 3000 "), ("MODE", "fast"), ("RETRIES", "99")]);
//! let env = EnvReader::new(|key| vars.get(key).map(|v| v.to_string()));
//! assert_eq!(env.quantity("PORT", 8080u16, 0..=65535, "a TCP port").unwrap(), 3000);
//! assert_eq!(env.millis("TIMEOUT_MS", Duration::from_secs(2), 1..=60_000).unwrap(), Duration::from_secs(2));
//! assert_eq!(env.choice("MODE", &[("fast", 1), ("slow", 2)]).unwrap(), Some(1));
//!
//! let err = env.integer("RETRIES", 3u32, 1..=10).unwrap_err();
//! assert_eq!(err.to_string(), r#"invalid configuration: RETRIES="99": an integer between 1 and 10"#);
//! ```

use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::time::Duration;

/// A configuration value that stops start-up: the variable, its value, what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {variable}={value:?}: {allowed}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub variable: &'static str,
    /// The value it had (secrets are shown as `[REDACTED]`).
    pub value: String,
    /// What would have been accepted.
    pub allowed: String,
}

impl ConfigError {
    /// Builds the error for `variable` having `value`, with what is `allowed`.
    pub fn new(
        variable: &'static str,
        value: impl Into<String>,
        allowed: impl Into<String>,
    ) -> Self {
        Self {
            variable,
            value: value.into(),
            allowed: allowed.into(),
        }
    }
}

/// A secret string that never prints (`Debug` shows `[REDACTED]`).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; call only where it is used.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// A variable name → its value, if set.
type Lookup<'a> = Box<dyn Fn(&str) -> Option<String> + 'a>;

/// Reads variables through a lookup function; see the [module documentation](self).
pub struct EnvReader<'a> {
    lookup: Lookup<'a>,
}

impl fmt::Debug for EnvReader<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvReader").finish_non_exhaustive()
    }
}

impl<'a> EnvReader<'a> {
    /// Reads through `lookup` (a variable name → its value, if set); tests pass a map.
    pub fn new(lookup: impl Fn(&str) -> Option<String> + 'a) -> Self {
        Self {
            lookup: Box::new(lookup),
        }
    }

    /// Reads the process environment (a value that is not valid Unicode counts as unset).
    pub fn process() -> EnvReader<'static> {
        EnvReader::new(|key| std::env::var(key).ok())
    }

    /// The trimmed value of `variable`; `None` when unset or empty.
    pub fn get(&self, variable: &str) -> Option<String> {
        (self.lookup)(variable)
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
    }

    /// The value of `variable` exactly as set (not trimmed; an empty value is `Some("")`).
    pub fn raw(&self, variable: &str) -> Option<String> {
        (self.lookup)(variable)
    }

    /// The value of `variable` converted by `convert`; `None` when unset. When `convert`
    /// answers `None`, the error says the value must be `allowed`.
    pub fn parse<T>(
        &self,
        variable: &'static str,
        allowed: impl Into<String>,
        convert: impl FnOnce(&str) -> Option<T>,
    ) -> Result<Option<T>, ConfigError> {
        match self.get(variable) {
            None => Ok(None),
            Some(raw) => match convert(&raw) {
                Some(value) => Ok(Some(value)),
                None => Err(ConfigError::new(variable, raw, allowed)),
            },
        }
    }

    /// One of the named `options` (exact match); `None` when unset. The error lists them:
    /// `one of: a, b`.
    pub fn choice<T: Copy>(
        &self,
        variable: &'static str,
        options: &[(&str, T)],
    ) -> Result<Option<T>, ConfigError> {
        self.parse(variable, one_of(options), |raw| {
            options
                .iter()
                .find(|(name, _)| *name == raw)
                .map(|(_, value)| *value)
        })
    }

    /// `true`/`1` or `false`/`0` (any case), else `default` when unset.
    pub fn flag(&self, variable: &'static str, default: bool) -> Result<bool, ConfigError> {
        self.parse(variable, "true or false", |raw| {
            match raw.to_ascii_lowercase().as_str() {
                "true" | "1" => Some(true),
                "false" | "0" => Some(false),
                _ => None,
            }
        })
        .map(|value| value.unwrap_or(default))
    }

    /// A decimal integer within `range`, else `default` when unset. The error says
    /// `an integer between A and B`.
    pub fn integer<T>(
        &self,
        variable: &'static str,
        default: T,
        range: RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + fmt::Display + Copy,
    {
        self.bounded(variable, default, range, None)
    }

    /// Like [`EnvReader::integer`], for a quantity whose `unit` the error names:
    /// `attempts, an integer between 1 and 10`.
    pub fn quantity<T>(
        &self,
        variable: &'static str,
        default: T,
        range: RangeInclusive<T>,
        unit: &str,
    ) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + fmt::Display + Copy,
    {
        self.bounded(variable, default, range, Some(unit))
    }

    /// A duration given in whole milliseconds within `range_ms`, else `default` when unset.
    pub fn millis(
        &self,
        variable: &'static str,
        default: Duration,
        range_ms: RangeInclusive<u64>,
    ) -> Result<Duration, ConfigError> {
        let default_ms = u64::try_from(default.as_millis()).unwrap_or(u64::MAX);
        self.quantity(variable, default_ms, range_ms, "milliseconds")
            .map(Duration::from_millis)
    }

    /// A secret: `None` when unset; refused (value shown as `[REDACTED]`) when `valid` says no.
    pub fn secret(
        &self,
        variable: &'static str,
        allowed: impl Into<String>,
        valid: impl FnOnce(&str) -> bool,
    ) -> Result<Option<Secret>, ConfigError> {
        match self.get(variable) {
            None => Ok(None),
            Some(raw) if valid(&raw) => Ok(Some(Secret::new(raw))),
            Some(_) => Err(ConfigError::new(variable, "[REDACTED]", allowed)),
        }
    }

    fn bounded<T>(
        &self,
        variable: &'static str,
        default: T,
        range: RangeInclusive<T>,
        unit: Option<&str>,
    ) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + fmt::Display + Copy,
    {
        let allowed = match unit {
            Some(unit) => format!(
                "{unit}, an integer between {} and {}",
                range.start(),
                range.end()
            ),
            None => format!("an integer between {} and {}", range.start(), range.end()),
        };
        self.parse(variable, allowed, |raw| {
            raw.parse::<T>().ok().filter(|value| range.contains(value))
        })
        .map(|value| value.unwrap_or(default))
    }
}

/// `one of: a, b, c`.
fn one_of<T>(options: &[(&str, T)]) -> String {
    let names: Vec<&str> = options.iter().map(|(name, _)| *name).collect();
    format!("one of: {}", names.join(", "))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::HashMap;

    fn reader(pairs: &[(&'static str, &'static str)]) -> EnvReader<'static> {
        let vars: HashMap<&str, &str> = pairs.iter().copied().collect();
        EnvReader::new(move |key| vars.get(key).map(|v| (*v).to_owned()))
    }

    #[test]
    fn values_are_trimmed_and_empty_counts_as_unset() {
        let env = reader(&[("A", "  x "), ("B", "   "), ("C", "")]);
        assert_eq!(env.get("A").as_deref(), Some("x"));
        assert_eq!(env.get("B"), None);
        assert_eq!(env.get("C"), None);
        assert_eq!(env.get("D"), None);
        assert_eq!(env.raw("C").as_deref(), Some(""));
        assert_eq!(env.integer("B", 7u32, 1..=10).unwrap(), 7);
    }

    #[test]
    fn integers_are_bounded_and_the_error_says_the_bounds() {
        let env = reader(&[("N", "10"), ("BIG", "11"), ("NEG", "-1"), ("WORD", "ten")]);
        assert_eq!(env.integer("N", 1u32, 1..=10).unwrap(), 10);
        for variable in ["BIG", "NEG", "WORD"] {
            let err = env.integer(variable, 1u32, 1..=10).unwrap_err();
            assert_eq!(err.variable, variable);
            assert_eq!(err.allowed, "an integer between 1 and 10");
        }
        let err = env.quantity("BIG", 1u32, 1..=10, "attempts").unwrap_err();
        assert_eq!(err.allowed, "attempts, an integer between 1 and 10");
        let err = env
            .millis("WORD", Duration::from_millis(5), 1..=100)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"invalid configuration: WORD="ten": milliseconds, an integer between 1 and 100"#
        );
    }

    #[test]
    fn choices_flags_and_secrets() {
        let env = reader(&[
            ("MODE", "b"),
            ("BAD", "c"),
            ("ON", "TRUE"),
            ("KEY", "short"),
        ]);
        let options = [("a", 1), ("b", 2)];
        assert_eq!(env.choice("MODE", &options).unwrap(), Some(2));
        assert_eq!(env.choice("UNSET", &options).unwrap(), None);
        assert_eq!(
            env.choice("BAD", &options).unwrap_err().allowed,
            "one of: a, b"
        );
        assert!(env.flag("ON", false).unwrap());
        assert!(!env.flag("UNSET", false).unwrap());
        assert_eq!(env.flag("MODE", false).unwrap_err().variable, "MODE");
        let err = env
            .secret("KEY", "at least 8 bytes", |k| k.len() >= 8)
            .unwrap_err();
        assert_eq!(err.value, "[REDACTED]");
        assert!(!err.to_string().contains("short"));
        assert!(env.secret("KEY", "", |_| true).unwrap().is_some());
    }
}
