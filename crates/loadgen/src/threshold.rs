//! CI thresholds: `--threshold EXPR`, repeatable; any breach makes the run exit 1 naming it.
//!
//! Grammar (spaces around the operator are allowed):
//!
//! ```text
//! threshold := [ route ":" ] metric op value
//! route     := METHOD " " PATH        a route of the scenario, e.g. "POST /v1/orders"
//! metric    := p50 | p90 | p95 | p99 | p99.9 | max | mean | errors | rps
//! op        := "<" | "<=" | ">" | ">="
//! value     := number unit            latency: us, ms or s      (p99<200ms)
//!            | number "%"             errors: share of requests (errors<1%)
//!            | number                 rps: requests per second  (rps>=100)
//! ```
//!
//! Without a route it applies to all requests together.

use std::fmt;

/// What a threshold measures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Metric {
    /// A latency quantile (0.5 … 0.999).
    Quantile(f64),
    Max,
    Mean,
    /// Share of requests that were errors, in percent.
    Errors,
    /// Requests per second over the run.
    Rps,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

/// A parsed threshold.
#[derive(Debug, Clone)]
pub(crate) struct Threshold {
    /// As written (reports name it this way).
    pub(crate) expression: String,
    pub(crate) route: Option<String>,
    pub(crate) metric: Metric,
    pub(crate) op: Op,
    /// Microseconds for latency metrics, percent for errors, requests/s for rps.
    pub(crate) limit: f64,
}

/// The values a threshold is checked against (one route, or all requests).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Measured<'a> {
    pub(crate) latency: &'a hdrhistogram::Histogram<u64>,
    pub(crate) error_percent: f64,
    pub(crate) rps: f64,
}

impl Threshold {
    /// Parses `raw`; `routes` are the scenario's (a threshold on another route is refused, so
    /// a typo cannot pass silently).
    pub(crate) fn parse(raw: &str, routes: &[String]) -> Result<Self, String> {
        let invalid = |why: &str| format!("invalid threshold {raw:?}: {why}");
        let expression = raw.trim();
        let (route, condition) = match expression.rsplit_once(':') {
            Some((route, condition)) => (Some(route.trim()), condition.trim()),
            None => (None, expression),
        };
        if let Some(route) = route
            && !routes.iter().any(|r| r == route)
        {
            return Err(invalid(&format!(
                "route {route:?} is not one of the scenario's: {}",
                routes.join(", ")
            )));
        }
        let at = condition
            .find(['<', '>'])
            .ok_or_else(|| invalid("expected METRIC<VALUE or METRIC>VALUE, e.g. p99<200ms"))?;
        let (name, rest) = condition.split_at(at);
        let (op, value) = if let Some(value) = rest.strip_prefix("<=") {
            (Op::LessOrEqual, value)
        } else if let Some(value) = rest.strip_prefix(">=") {
            (Op::GreaterOrEqual, value)
        } else if let Some(value) = rest.strip_prefix('<') {
            (Op::Less, value)
        } else {
            (Op::Greater, &rest[1..])
        };
        let (name, value) = (name.trim(), value.trim());
        let metric = match name {
            "p50" => Metric::Quantile(0.5),
            "p90" => Metric::Quantile(0.9),
            "p95" => Metric::Quantile(0.95),
            "p99" => Metric::Quantile(0.99),
            "p99.9" => Metric::Quantile(0.999),
            "max" => Metric::Max,
            "mean" => Metric::Mean,
            "errors" => Metric::Errors,
            "rps" => Metric::Rps,
            other => {
                return Err(invalid(&format!(
                    "unknown metric {other:?} (p50, p90, p95, p99, p99.9, max, mean, errors, rps)"
                )));
            }
        };
        let number = |text: &str| -> Result<f64, String> {
            text.trim()
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite() && *n >= 0.0)
                .ok_or_else(|| invalid(&format!("{value:?} is not a non-negative number")))
        };
        let limit = match metric {
            Metric::Errors => {
                let percent = value
                    .strip_suffix('%')
                    .ok_or_else(|| invalid("errors take a percentage, e.g. errors<1%"))?;
                number(percent)?
            }
            Metric::Rps => number(value)?,
            _ => {
                let split = value
                    .find(|c: char| c.is_ascii_alphabetic())
                    .ok_or_else(|| invalid("latency takes a unit: us, ms or s (e.g. p99<200ms)"))?;
                let (amount, unit) = value.split_at(split);
                let scale = match unit {
                    "us" => 1.0,
                    "ms" => 1e3,
                    "s" => 1e6,
                    _ => return Err(invalid(&format!("unknown unit {unit:?} (us, ms or s)"))),
                };
                number(amount)? * scale
            }
        };
        Ok(Self {
            expression: expression.to_owned(),
            route: route.map(str::to_owned),
            metric,
            op,
            limit,
        })
    }

    /// The measured value (in the unit of `limit`), or `None` when nothing was measured for
    /// a latency metric (no requests: the threshold counts as breached).
    pub(crate) fn actual(&self, measured: Measured<'_>) -> Option<f64> {
        let latency = measured.latency;
        match self.metric {
            Metric::Errors => Some(measured.error_percent),
            Metric::Rps => Some(measured.rps),
            _ if latency.is_empty() => None,
            Metric::Quantile(q) => Some(latency.value_at_quantile(q) as f64),
            Metric::Max => Some(latency.max() as f64),
            Metric::Mean => Some(latency.mean()),
        }
    }

    /// Whether `actual` satisfies the threshold.
    pub(crate) fn passes(&self, actual: Option<f64>) -> bool {
        let Some(actual) = actual else {
            return false;
        };
        match self.op {
            Op::Less => actual < self.limit,
            Op::LessOrEqual => actual <= self.limit,
            Op::Greater => actual > self.limit,
            Op::GreaterOrEqual => actual >= self.limit,
        }
    }

    /// `actual` in the threshold's own unit, for messages (`212.3ms`, `1.20%`).
    pub(crate) fn format_value(&self, value: f64) -> String {
        match self.metric {
            Metric::Errors => format!("{value:.2}%"),
            Metric::Rps => format!("{value:.1}"),
            _ => crate::duration::display_micros(value.round() as u64),
        }
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expression)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn routes() -> Vec<String> {
        vec!["POST /v1/orders".into(), "GET /v1/products".into()]
    }

    #[test]
    fn the_grammar_is_read() {
        let t = Threshold::parse("p99<200ms", &routes()).unwrap();
        assert_eq!(
            (t.metric, t.op, t.limit, t.route),
            (Metric::Quantile(0.99), Op::Less, 200_000.0, None)
        );
        let t = Threshold::parse("POST /v1/orders:p99.9 <= 1.5s", &routes()).unwrap();
        assert_eq!(t.route.as_deref(), Some("POST /v1/orders"));
        assert_eq!(
            (t.metric, t.op, t.limit),
            (Metric::Quantile(0.999), Op::LessOrEqual, 1_500_000.0)
        );
        let t = Threshold::parse("errors<1%", &routes()).unwrap();
        assert_eq!((t.metric, t.limit), (Metric::Errors, 1.0));
        let t = Threshold::parse("GET /v1/products: rps>=50", &routes()).unwrap();
        assert_eq!(
            (t.metric, t.op, t.limit),
            (Metric::Rps, Op::GreaterOrEqual, 50.0)
        );
        let t = Threshold::parse("max>250us", &routes()).unwrap();
        assert_eq!((t.metric, t.op, t.limit), (Metric::Max, Op::Greater, 250.0));
    }

    #[test]
    fn invalid_thresholds_are_refused_naming_the_problem() {
        for (raw, expected) in [
            ("p99", "expected METRIC<VALUE"),
            ("p98<1ms", "unknown metric"),
            ("p99<200", "takes a unit"),
            ("p99<200m", "unknown unit"),
            ("errors<1", "percentage"),
            ("errors<-1%", "non-negative"),
            ("GET /nope:p99<1s", "is not one of the scenario's"),
            ("p99<abcms", "unknown unit"),
            ("rps>fast", "not a non-negative number"),
        ] {
            let error = Threshold::parse(raw, &routes()).unwrap_err();
            assert!(error.contains(expected), "{raw}: {error}");
            assert!(error.starts_with("invalid threshold"), "{error}");
        }
    }

    #[test]
    fn thresholds_pass_and_fail_on_measured_values() {
        let mut latency = crate::stats::histogram();
        for micros in 1..=1_000 {
            latency.record(micros * 1_000).unwrap();
        }
        let measured = Measured {
            latency: &latency,
            error_percent: 0.5,
            rps: 120.0,
        };
        let check = |raw: &str| {
            let t = Threshold::parse(raw, &routes()).unwrap();
            t.passes(t.actual(measured))
        };
        assert!(check("p99<1s"));
        assert!(!check("p99<900ms"));
        assert!(check("p50<=501ms"));
        assert!(check("errors<1%"));
        assert!(!check("errors<0.5%"));
        assert!(check("errors<=0.5%"));
        assert!(check("rps>100"));
        assert!(!check("rps>=121"));
        let empty = crate::stats::histogram();
        let t = Threshold::parse("p99<1s", &routes()).unwrap();
        let nothing = Measured {
            latency: &empty,
            error_percent: 0.0,
            rps: 0.0,
        };
        assert!(
            !t.passes(t.actual(nothing)),
            "no measurements never pass a latency bound"
        );
    }
}
