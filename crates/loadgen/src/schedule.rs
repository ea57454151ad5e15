//! Open-model arrivals: journey `i` is due at a fixed offset from the start, whatever the
//! server does. The rate ramps linearly from 0 to `rate` over `ramp`, then stays constant.
//! A worker that takes an arrival late still measures from its due time, so a slow server's
//! queueing shows in the latency (no coordinated omission).

use std::time::Duration;

/// The arrival times of an open-model run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Arrivals {
    /// Journeys per second once ramped up.
    rate: f64,
    ramp: f64,
}

impl Arrivals {
    pub(crate) fn new(journeys_per_second: f64, ramp: Duration) -> Self {
        Self {
            rate: journeys_per_second,
            ramp: ramp.as_secs_f64(),
        }
    }

    /// When arrival `index` (0-based) is due, from the start. With a ramp the arrivals so far
    /// are `rate·t²/(2·ramp)`; afterwards `rate·ramp/2 + rate·(t − ramp)`.
    pub(crate) fn due(&self, index: u64) -> Duration {
        let n = index as f64;
        let during_ramp = self.rate * self.ramp / 2.0;
        let seconds = if n < during_ramp {
            (2.0 * self.ramp * n / self.rate).sqrt()
        } else {
            self.ramp + (n - during_ramp) / self.rate
        };
        Duration::from_secs_f64(seconds.min(1e9))
    }

    /// How many arrivals are due strictly before `elapsed`.
    pub(crate) fn due_before(&self, elapsed: Duration) -> u64 {
        let t = elapsed.as_secs_f64();
        let arrivals = if t < self.ramp {
            self.rate * t * t / (2.0 * self.ramp)
        } else {
            self.rate * self.ramp / 2.0 + self.rate * (t - self.ramp)
        };
        let whole = arrivals.ceil();
        if whole < 0.0 { 0 } else { whole as u64 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_constant_rate_spaces_arrivals_evenly() {
        let arrivals = Arrivals::new(100.0, Duration::ZERO);
        assert_eq!(arrivals.due(0), Duration::ZERO);
        assert_eq!(arrivals.due(1), Duration::from_millis(10));
        assert_eq!(arrivals.due(250), Duration::from_millis(2_500));
        assert_eq!(arrivals.due_before(Duration::from_secs(1)), 100);
    }

    #[test]
    fn a_ramp_starts_slowly_and_reaches_the_rate() {
        let arrivals = Arrivals::new(100.0, Duration::from_secs(10));
        // Half the rate on average during the ramp: 500 arrivals in its 10 s.
        assert_eq!(arrivals.due_before(Duration::from_secs(10)), 500);
        let at_ramp_end = arrivals.due(500).as_secs_f64();
        assert!((at_ramp_end - 10.0).abs() < 1e-9, "{at_ramp_end}");
        // Then 100/s.
        let later = arrivals.due(600).as_secs_f64();
        assert!((later - 11.0).abs() < 1e-9, "{later}");
        // The first second holds only 5 arrivals.
        assert_eq!(arrivals.due_before(Duration::from_secs(1)), 5);
        for index in [1, 10, 499, 700] {
            // The two are inverses (up to float rounding at the exact due time).
            let due = arrivals.due(index);
            let before = arrivals.due_before(due + Duration::from_micros(1));
            assert!(before.abs_diff(index) <= 1, "{index}: {before}");
        }
    }
}
