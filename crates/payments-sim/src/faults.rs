//! The fault knobs: error, decline and hang rates, and the latency distribution.
//!
//! Latency follows a log-normal distribution given by its median (`p50`) and 99th percentile
//! (`p99`) in milliseconds — the right-skewed shape real network services have. `p50 == p99`
//! gives a constant delay, `0`/`0` none. Every sample is capped at [`MAX_LATENCY_MS`].

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

/// Longest delay any request gets from the latency knob (1 % of requests exceed `p99`; none
/// exceeds this).
pub const MAX_LATENCY_MS: u64 = 60_000;

/// z-score of the 99th percentile of the standard normal distribution.
const Z_99: f64 = 2.326_347_874;

/// What the simulator does wrong, and how often. The default is no faults at all.
///
/// Each charge request is decided in this order: an injected error (`error_rate`), else a hang
/// (`hang_rate`), else a recorded charge, declined with probability `decline_rate`. Every answer
/// except a hang is delayed by a sample of `latency_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Faults {
    /// Probability (0..=1) that a request is answered 503 or 500 without recording anything.
    pub error_rate: f64,
    /// Probability (0..=1) that a new charge is declined (402) instead of approved (201).
    pub decline_rate: f64,
    /// Probability (0..=1) that a request is never answered (until the simulator stops, or
    /// [`super::MAX_HANG`] passes), without recording anything.
    pub hang_rate: f64,
    /// The latency distribution of every answer.
    pub latency_ms: Latency,
}

/// A log-normal latency distribution in milliseconds, given by two percentiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Latency {
    /// Median delay (ms). `0` requires `p99 == 0` too (no delay).
    pub p50: u64,
    /// 99th-percentile delay (ms), at least `p50`, at most [`MAX_LATENCY_MS`].
    pub p99: u64,
}

/// A knob value out of range: which knob (`error_rate`, `latency_ms.p99`, …) and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {allowed}")]
pub struct InvalidFault {
    /// The knob at fault, as named in the JSON of `/admin/faults`.
    pub field: String,
    /// What would be accepted.
    pub allowed: String,
}

impl InvalidFault {
    fn new(field: impl Into<String>, allowed: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            allowed: allowed.into(),
        }
    }
}

const RATE_ALLOWED: &str = "a number between 0 and 1";

impl Faults {
    /// No faults: every charge approved at once.
    pub const fn none() -> Self {
        Self {
            error_rate: 0.0,
            decline_rate: 0.0,
            hang_rate: 0.0,
            latency_ms: Latency { p50: 0, p99: 0 },
        }
    }

    /// Checks every knob, naming the first one out of range.
    pub fn validate(&self) -> Result<(), InvalidFault> {
        for (field, rate) in [
            ("error_rate", self.error_rate),
            ("decline_rate", self.decline_rate),
            ("hang_rate", self.hang_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(InvalidFault::new(field, RATE_ALLOWED));
            }
        }
        self.latency_ms.validate()
    }

    /// These knobs with the ones present in `patch` (a JSON object with any of the fields of
    /// [`Faults`]; `latency_ms` may give `p50`, `p99` or both) replaced, validated as a whole.
    pub fn patched(&self, patch: &Value) -> Result<Faults, InvalidFault> {
        let Some(patch) = patch.as_object() else {
            return Err(InvalidFault::new(
                "",
                "a JSON object of knobs: error_rate, decline_rate, hang_rate, latency_ms",
            ));
        };
        let mut faults = *self;
        for (key, value) in patch {
            match key.as_str() {
                "error_rate" => faults.error_rate = rate(key, value)?,
                "decline_rate" => faults.decline_rate = rate(key, value)?,
                "hang_rate" => faults.hang_rate = rate(key, value)?,
                "latency_ms" => faults.latency_ms = faults.latency_ms.patched(value)?,
                _ => {
                    return Err(InvalidFault::new(
                        bounded(key),
                        "not a knob; the knobs are error_rate, decline_rate, hang_rate, latency_ms",
                    ));
                }
            }
        }
        faults.validate()?;
        Ok(faults)
    }

    /// Whether an event of probability `rate` happens this time (exact for 0 and 1).
    pub(super) fn roll(rate: f64) -> bool {
        rate >= 1.0 || (rate > 0.0 && rand::random::<f64>() < rate)
    }
}

impl Latency {
    /// The same delay every time.
    pub const fn constant(ms: u64) -> Self {
        Self { p50: ms, p99: ms }
    }

    fn validate(&self) -> Result<(), InvalidFault> {
        if self.p99 > MAX_LATENCY_MS {
            return Err(InvalidFault::new(
                "latency_ms.p99",
                format!("milliseconds, an integer between p50 and {MAX_LATENCY_MS}"),
            ));
        }
        if self.p50 > self.p99 {
            return Err(InvalidFault::new(
                "latency_ms.p50",
                "milliseconds, an integer not above p99",
            ));
        }
        if self.p50 == 0 && self.p99 > 0 {
            return Err(InvalidFault::new(
                "latency_ms.p50",
                "at least 1 when p99 is above 0 (0/0 means no delay)",
            ));
        }
        Ok(())
    }

    fn patched(&self, patch: &Value) -> Result<Latency, InvalidFault> {
        let Some(patch) = patch.as_object() else {
            return Err(InvalidFault::new(
                "latency_ms",
                "an object {\"p50\": ms, \"p99\": ms}",
            ));
        };
        let mut latency = *self;
        for (key, value) in patch {
            let field = match key.as_str() {
                "p50" => &mut latency.p50,
                "p99" => &mut latency.p99,
                _ => {
                    return Err(InvalidFault::new(
                        format!("latency_ms.{}", bounded(key)),
                        "not a latency knob; the knobs are p50 and p99",
                    ));
                }
            };
            *field = value.as_u64().ok_or_else(|| {
                InvalidFault::new(
                    format!("latency_ms.{key}"),
                    format!("milliseconds, an integer between 0 and {MAX_LATENCY_MS}"),
                )
            })?;
        }
        Ok(latency)
    }

    /// One delay drawn from the distribution.
    pub(super) fn sample(&self) -> Duration {
        if self.p99 == 0 {
            return Duration::ZERO;
        }
        if self.p50 == self.p99 {
            return Duration::from_millis(self.p50);
        }
        let p50 = self.p50.max(1) as f64;
        let sigma = ((self.p99 as f64) / p50).ln() / Z_99;
        // Box–Muller: a standard normal sample from two uniform ones; 1 - u is in (0, 1].
        let u1 = 1.0 - rand::random::<f64>();
        let u2 = rand::random::<f64>();
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        let ms = (p50 * (sigma * z).exp()).clamp(0.0, MAX_LATENCY_MS as f64);
        Duration::from_secs_f64(ms / 1000.0)
    }
}

fn rate(key: &str, value: &Value) -> Result<f64, InvalidFault> {
    value
        .as_f64()
        .filter(|rate| (0.0..=1.0).contains(rate))
        .ok_or_else(|| InvalidFault::new(key, RATE_ALLOWED))
}

/// A client-chosen key, cut to 64 bytes before it is echoed back.
fn bounded(key: &str) -> &str {
    let mut end = key.len().min(64);
    while !key.is_char_boundary(end) {
        end -= 1;
    }
    &key[..end]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn a_partial_patch_changes_only_the_knobs_it_names() {
        let faults = Faults {
            decline_rate: 0.5,
            ..Faults::none()
        };
        let patched = faults
            .patched(&json!({"error_rate": 0.25, "latency_ms": {"p99": 40, "p50": 10}}))
            .unwrap();
        assert_eq!(patched.error_rate, 0.25);
        assert_eq!(patched.decline_rate, 0.5);
        assert_eq!(patched.latency_ms, Latency { p50: 10, p99: 40 });
    }

    #[test]
    fn out_of_range_knobs_are_named() {
        let cases = [
            (json!({"error_rate": 1.5}), "error_rate"),
            (json!({"decline_rate": -0.1}), "decline_rate"),
            (json!({"hang_rate": "often"}), "hang_rate"),
            (
                json!({"latency_ms": {"p99": 60_001, "p50": 1}}),
                "latency_ms.p99",
            ),
            (
                json!({"latency_ms": {"p50": 50, "p99": 10}}),
                "latency_ms.p50",
            ),
            (
                json!({"latency_ms": {"p50": 0, "p99": 10}}),
                "latency_ms.p50",
            ),
            (json!({"latency_ms": {"p50": -1}}), "latency_ms.p50"),
            (json!({"latency_ms": 5}), "latency_ms"),
            (json!({"latency_ms": {"max": 5}}), "latency_ms.max"),
            (json!({"error": 1}), "error"),
        ];
        for (patch, field) in cases {
            let error = Faults::none().patched(&patch).unwrap_err();
            assert_eq!(error.field, field, "{patch}");
            assert!(!error.allowed.is_empty());
        }
    }

    #[test]
    fn rates_zero_and_one_are_deterministic() {
        assert!((0..1000).all(|_| Faults::roll(1.0)));
        assert!((0..1000).all(|_| !Faults::roll(0.0)));
    }

    #[test]
    fn constant_latency_is_exact_and_none_is_zero() {
        assert_eq!(Latency::constant(25).sample(), Duration::from_millis(25));
        assert_eq!(Latency::default().sample(), Duration::ZERO);
    }

    #[test]
    fn log_normal_latency_matches_its_percentiles_roughly() {
        let latency = Latency { p50: 20, p99: 400 };
        let mut samples: Vec<Duration> = (0..20_000).map(|_| latency.sample()).collect();
        samples.sort();
        let p50 = samples[samples.len() / 2].as_millis();
        let p99 = samples[samples.len() * 99 / 100].as_millis();
        assert!((15..=27).contains(&p50), "p50 {p50}");
        assert!((250..=600).contains(&p99), "p99 {p99}");
        assert!(
            samples
                .iter()
                .all(|s| *s <= Duration::from_millis(MAX_LATENCY_MS))
        );
    }
}
