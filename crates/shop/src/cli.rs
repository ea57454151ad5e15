//! The `shop` binary's command line: what it was asked to run, and the `--help` text listing
//! every setting (environment variable) with its default.

/// What the binary was asked to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// No argument: the shop (and the payment simulator in-process unless `PAYMENTS_URL` is set).
    Shop,
    /// `payments-sim`: the payment simulator alone (as the `payments-sim` binary).
    PaymentsSimulator,
    /// `console`: the standalone telemetry console (as the `console` binary).
    Console,
    /// `--help` or `-h`: print [`help`] and exit 0.
    Help,
}

/// The first line of the usage, and what each command does.
pub const USAGE: &str = "usage: shop [payments-sim | console | --help]\n  \
    (no command)   serve the shop (and the payment simulator in-process unless PAYMENTS_URL is set)\n  \
    payments-sim   serve only the payment simulator, on PAYMENTS_SIM_PORT (default 8090)\n  \
    console        the standalone telemetry console: OTLP on 4317/4318, UI on APP_CONSOLE_ADDR (127.0.0.1:18888)\n  \
    --help, -h     list the settings\n";

/// The shop's own settings (read by [`crate::config::ShopConfig::from_lookup`]).
pub const SETTINGS_HELP: &str = "\
Shop:
  PORT                            TCP port (0: any free port)                   [default: 8080]
  APP_HOST                        listen address                                [default: 127.0.0.1; cloud: 0.0.0.0]
  DATABASE_URL                    sqlite:... or postgres://... (secret)          [default: sqlite://data/shop.db?mode=rwc]
  APP_DB_MAX_CONNECTIONS          connection pool size, 1..100                  [default: 5]
  APP_DB_ACQUIRE_TIMEOUT_MS       wait for a pooled connection, ms              [default: 2000]
  APP_CONFORMANCE                 w3c: expose the W3C test service (local only) [default: none]
  PAYMENTS_URL                    payment provider base URL, http:// or https:// [default: none, the simulator in-process]
  PAYMENTS_TIMEOUT_MS             deadline of one payment attempt, ms           [default: 2000]
  PAYMENTS_MAX_ATTEMPTS           attempts per charge, 1..10                    [default: 3]
  PAYMENTS_BREAKER_THRESHOLD      failed attempts that open the circuit         [default: 5]
  PAYMENTS_BREAKER_COOLDOWN_MS    how long the open circuit fails fast, ms      [default: 10000]
";

/// Parses the arguments after the program name; `Err` is the message for stderr (exit 2).
pub fn parse(args: impl IntoIterator<Item = std::ffi::OsString>) -> Result<Command, String> {
    let mut args = args.into_iter();
    let command = match args.next() {
        None => Command::Shop,
        Some(arg) if arg == "payments-sim" => Command::PaymentsSimulator,
        Some(arg) if arg == "console" => Command::Console,
        Some(arg) if arg == "--help" || arg == "-h" => Command::Help,
        Some(arg) => return Err(unknown(&arg)),
    };
    match args.next() {
        None => Ok(command),
        Some(arg) => Err(unknown(&arg)),
    }
}

fn unknown(arg: &std::ffi::OsStr) -> String {
    format!(
        "shop: unknown argument {:?}\n{USAGE}",
        arg.to_string_lossy()
    )
}

/// The `--help` text: usage, then the shop's, the simulator's and the telemetry library's
/// settings, each with its default. Empty values count as unset.
pub fn help() -> String {
    format!(
        "{USAGE}\nSettings are environment variables; an empty value counts as unset.\n\n{SETTINGS_HELP}\n{}\n{}\n{}",
        payments_sim::service::SETTINGS_HELP,
        console::config::SETTINGS_HELP,
        telemetry::settings_help::SETTINGS_HELP,
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::run::Settings;
    use std::cell::RefCell;

    #[test]
    fn every_variable_the_binary_reads_is_in_the_help() {
        let read = RefCell::new(Vec::<String>::new());
        // Both payment modes: with PAYMENTS_URL the simulator's variables are not read.
        for payments_url in [None, Some("http://127.0.0.1:9")] {
            Settings::from_lookup(|key| {
                read.borrow_mut().push(key.to_owned());
                (key == "PAYMENTS_URL").then(|| payments_url.map(str::to_owned))?
            })
            .unwrap();
        }
        let help = help();
        let read = read.into_inner();
        assert!(read.iter().any(|k| k == "PAYMENTS_SIM_PORT"), "{read:?}");
        for key in read {
            assert!(help.contains(&key), "{key} is read but not in --help");
        }
    }

    #[test]
    fn arguments_are_a_command_help_or_an_error_naming_the_argument() {
        let args = |list: &[&str]| {
            list.iter()
                .map(std::ffi::OsString::from)
                .collect::<Vec<_>>()
        };
        assert_eq!(parse(args(&[])), Ok(Command::Shop));
        assert_eq!(
            parse(args(&["payments-sim"])),
            Ok(Command::PaymentsSimulator)
        );
        assert_eq!(parse(args(&["console"])), Ok(Command::Console));
        assert_eq!(parse(args(&["--help"])), Ok(Command::Help));
        assert_eq!(parse(args(&["-h"])), Ok(Command::Help));
        let error = parse(args(&["--verbose"])).unwrap_err();
        assert!(error.contains("unknown argument \"--verbose\""), "{error}");
        let error = parse(args(&["payments-sim", "extra"])).unwrap_err();
        assert!(error.contains("\"extra\""), "{error}");
    }
}
