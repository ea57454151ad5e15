//! The command line: `loadgen --target URL [--rate N | --users N] [--duration D | --requests N] …`.

use std::time::Duration;

pub(crate) const USAGE: &str = "\
loadgen: drive the shop (or any HTTP/1.1 service) with weighted user journeys and report
per-route latency percentiles, errors and trace ids.

Usage: loadgen [OPTIONS]

Target and load:
  --target URL              server to load (default http://127.0.0.1:8080; plain http only)
  --rate N                  open model: N requests/s arriving on schedule, whatever the server
                            does (default: --rate 100 when neither --rate nor --users is given)
  --ramp D                  open model: rise linearly from 0 to --rate over D (default 0s)
  --connections N           open model: connections, i.e. most requests in flight (default 100)
  --users N                 closed model: N users, each on its own connection, one request at a
                            time
  --think D                 pause between the steps of a journey (overrides the scenario's)
  --duration D              stop after D (default 30s), e.g. 500ms, 30s, 2m
  --requests N              stop after N requests instead
  --timeout D               a request without a complete answer after D fails (default 10s)
  --scenario FILE           journeys and weights from a TOML file (default: built in)
  --print-scenario          print the built-in scenario (a starting point for a file) and exit

Report:
  --json                    the summary as one JSON document on stdout (no progress)
  --threshold EXPR          fail (exit 1) unless EXPR holds; repeatable. EXPR is
                            [ROUTE:]METRIC OP VALUE, e.g. 'p99<200ms', 'errors<1%',
                            'POST /v1/orders:p99.9<=1s', 'rps>=100'. METRIC: p50 p90 p95 p99
                            p99.9 max mean errors rps; OP: < <= > >=
  --trace-url-template T    print trace ids as links: T with {trace_id} replaced, e.g.
                            http://127.0.0.1:8080/_console/traces/{trace_id}
  --threads N               runtime threads of the generator (default: one per core)
  -h, --help                this help
  -V, --version             the version

Exit status: 0 done and every threshold held; 1 a threshold was breached; 2 invalid
arguments, scenario or threshold; 3 the target cannot be reached; 130 interrupted (Ctrl-C,
after printing the summary so far).

With OTEL_EXPORTER_OTLP_ENDPOINT set, every journey and request is also exported as spans
(OTLP, the OTEL_* variables as for the shop). See docs/loadgen.md.
";

/// How load is offered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Model {
    /// Requests per second, arriving on schedule; at most `connections` in flight.
    Open {
        rate: f64,
        ramp: Duration,
        connections: usize,
    },
    /// `users` loops, each sending its next request when the previous one is answered.
    Closed { users: usize },
}

/// When the run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    Duration(Duration),
    Requests(u64),
}

/// The parsed command line.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) target: String,
    pub(crate) model: Model,
    pub(crate) limit: Limit,
    pub(crate) think: Option<Duration>,
    pub(crate) timeout: Duration,
    pub(crate) scenario: Option<String>,
    pub(crate) json: bool,
    pub(crate) thresholds: Vec<String>,
    pub(crate) trace_url_template: Option<String>,
    pub(crate) threads: Option<usize>,
}

/// What the command line asks for.
#[derive(Debug)]
pub(crate) enum Command {
    Run(Box<Options>),
    Help,
    Version,
    PrintScenario,
}

/// Parses the arguments (without the program name). The error is one line for stderr.
pub(crate) fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut target = "http://127.0.0.1:8080".to_owned();
    let mut rate = None;
    let mut users = None;
    let mut ramp = None;
    let mut connections = None;
    let mut duration = None;
    let mut requests = None;
    let mut think = None;
    let mut timeout = Duration::from_secs(10);
    let mut scenario = None;
    let mut json = false;
    let mut thresholds = Vec::new();
    let mut trace_url_template = None;
    let mut threads = None;

    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => {
                (name.to_owned(), Some(value.to_owned()))
            }
            _ => (arg.clone(), None),
        };
        let mut value = |what: &str| -> Result<String, String> {
            match inline.clone() {
                Some(value) => Ok(value),
                None => args
                    .next()
                    .ok_or_else(|| format!("{name} needs a value ({what}); see --help")),
            }
        };
        match name.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "--print-scenario" => return Ok(Command::PrintScenario),
            "--json" => json = true,
            "--target" => target = value("a URL")?,
            "--rate" => rate = Some(positive_f64(&name, &value("requests per second")?)?),
            "--users" => users = Some(count(&name, &value("a number of users")?, 100_000)?),
            "--connections" => {
                connections = Some(count(&name, &value("a number of connections")?, 100_000)?);
            }
            "--ramp" => ramp = Some(duration_of(&name, &value("a duration")?)?),
            "--duration" => duration = Some(duration_of(&name, &value("a duration")?)?),
            "--requests" => {
                requests = Some(count(&name, &value("a number of requests")?, usize::MAX)? as u64);
            }
            "--think" => think = Some(duration_of(&name, &value("a duration")?)?),
            "--timeout" => timeout = duration_of(&name, &value("a duration")?)?,
            "--scenario" => scenario = Some(value("a file")?),
            "--threshold" => thresholds.push(value("an expression such as p99<200ms")?),
            "--trace-url-template" => {
                let template = value("a URL with {trace_id}")?;
                if !template.contains("{trace_id}") {
                    return Err(format!(
                        "invalid --trace-url-template {template:?}: it must contain {{trace_id}}"
                    ));
                }
                trace_url_template = Some(template);
            }
            "--threads" => threads = Some(count(&name, &value("a number of threads")?, 1024)?),
            other => return Err(format!("unknown argument {other:?}; see --help")),
        }
    }

    let model = match (rate, users) {
        (Some(_), Some(_)) => {
            return Err("--rate (open model) and --users (closed model) exclude each other".into());
        }
        (_, Some(users)) => {
            if ramp.is_some() || connections.is_some() {
                return Err("--ramp and --connections belong to the open model (--rate)".into());
            }
            Model::Closed { users }
        }
        (rate, None) => Model::Open {
            rate: rate.unwrap_or(100.0),
            ramp: ramp.unwrap_or(Duration::ZERO),
            connections: connections.unwrap_or(100),
        },
    };
    let limit = match (duration, requests) {
        (Some(_), Some(_)) => return Err("--duration and --requests exclude each other".into()),
        (_, Some(requests)) => Limit::Requests(requests),
        (duration, None) => {
            let duration = duration.unwrap_or(Duration::from_secs(30));
            if duration.is_zero() {
                return Err("--duration must be longer than 0".into());
            }
            Limit::Duration(duration)
        }
    };
    if timeout.is_zero() {
        return Err("--timeout must be longer than 0".into());
    }
    Ok(Command::Run(Box::new(Options {
        target,
        model,
        limit,
        think,
        timeout,
        scenario,
        json,
        thresholds,
        trace_url_template,
        threads,
    })))
}

fn positive_f64(name: &str, raw: &str) -> Result<f64, String> {
    raw.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v > 0.0 && *v <= 10_000_000.0)
        .ok_or_else(|| format!("invalid {name} {raw:?}: a number greater than 0"))
}

fn count(name: &str, raw: &str, max: usize) -> Result<usize, String> {
    raw.trim()
        .parse::<usize>()
        .ok()
        .filter(|v| (1..=max).contains(v))
        .ok_or_else(|| format!("invalid {name} {raw:?}: a whole number from 1 to {max}"))
}

fn duration_of(name: &str, raw: &str) -> Result<Duration, String> {
    crate::duration::parse(raw).map_err(|error| format!("invalid {name}: {error}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn run(args: &[&str]) -> Result<Options, String> {
        match parse(args.iter().map(|s| s.to_string()))? {
            Command::Run(options) => Ok(*options),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_are_an_open_model_at_100_per_second_for_30_seconds() {
        let options = run(&[]).unwrap();
        assert_eq!(
            options.model,
            Model::Open {
                rate: 100.0,
                ramp: Duration::ZERO,
                connections: 100
            }
        );
        assert_eq!(options.limit, Limit::Duration(Duration::from_secs(30)));
    }

    #[test]
    fn both_spellings_and_repeated_thresholds_are_read() {
        let options = run(&[
            "--users=8",
            "--requests",
            "500",
            "--threshold",
            "p99<1s",
            "--threshold=errors<1%",
            "--json",
            "--think",
            "10ms",
        ])
        .unwrap();
        assert_eq!(options.model, Model::Closed { users: 8 });
        assert_eq!(options.limit, Limit::Requests(500));
        assert_eq!(options.thresholds, ["p99<1s", "errors<1%"]);
        assert!(options.json);
        assert_eq!(options.think, Some(Duration::from_millis(10)));
    }

    #[test]
    fn contradictions_and_bad_values_are_one_line_errors() {
        for (args, expected) in [
            (&["--rate", "5", "--users", "2"][..], "exclude each other"),
            (
                &["--duration", "1s", "--requests", "3"],
                "exclude each other",
            ),
            (&["--users", "2", "--ramp", "1s"], "open model"),
            (&["--rate", "0"], "greater than 0"),
            (&["--users", "-1"], "whole number"),
            (&["--duration", "10"], "no unit"),
            (&["--rate"], "needs a value"),
            (&["--frobnicate"], "unknown argument"),
            (&["--trace-url-template", "http://x/"], "{trace_id}"),
        ] {
            let error = run(args).unwrap_err();
            assert!(error.contains(expected), "{args:?}: {error}");
            assert!(!error.contains('\n'));
        }
        assert!(matches!(parse(["--help".to_owned()]), Ok(Command::Help)));
    }
}
