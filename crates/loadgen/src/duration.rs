//! Human durations on the command line and in scenario files: `250ms`, `30s`, `2m`, `1h`,
//! `1.5s`, `500us`.

use std::time::Duration;

/// Parses `raw` as a number followed by a unit (`us`, `ms`, `s`, `m`, `h`). A bare number is
/// refused: the unit is never guessed.
pub(crate) fn parse(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let split = raw
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("{raw:?} has no unit (use us, ms, s, m or h, e.g. 30s)"))?;
    let (number, unit) = raw.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{raw:?} is not a number followed by a unit (e.g. 30s)"))?;
    let seconds_per_unit = match unit {
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => {
            return Err(format!(
                "{raw:?} has an unknown unit {unit:?} (use us, ms, s, m or h)"
            ));
        }
    };
    let seconds = value * seconds_per_unit;
    if !seconds.is_finite() || seconds > 1e9 {
        return Err(format!("{raw:?} is too long"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// A duration as the reports print it: `850us`, `12.3ms`, `1.20s`.
pub(crate) fn display_micros(micros: u64) -> String {
    if micros < 1_000 {
        format!("{micros}us")
    } else if micros < 10_000 {
        format!("{:.2}ms", micros as f64 / 1e3)
    } else if micros < 1_000_000 {
        format!("{:.1}ms", micros as f64 / 1e3)
    } else {
        format!("{:.2}s", micros as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn units_are_read() {
        assert_eq!(parse("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse("500us").unwrap(), Duration::from_micros(500));
        assert_eq!(parse("1h").unwrap(), Duration::from_secs(3600));
    }

    #[test]
    fn a_missing_or_unknown_unit_is_refused() {
        assert!(parse("30").unwrap_err().contains("no unit"));
        assert!(parse("3d").unwrap_err().contains("unknown unit"));
        assert!(parse("ms").is_err());
        assert!(parse("1.2.3s").is_err());
    }

    #[test]
    fn durations_print_in_a_readable_unit() {
        assert_eq!(display_micros(850), "850us");
        assert_eq!(display_micros(1_234), "1.23ms");
        assert_eq!(display_micros(12_345), "12.3ms");
        assert_eq!(display_micros(1_200_000), "1.20s");
    }
}
