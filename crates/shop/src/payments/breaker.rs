//! A consecutive-failure circuit breaker, so a dead payment provider fails checkouts fast
//! instead of making every one wait for its timeouts and retries.
//!
//! - **Closed**: every attempt goes through; `threshold` failed attempts in a row open it.
//! - **Open**: attempts are refused at once for `cooldown`.
//! - **Half-open** (after the cooldown): one trial attempt goes through, the others are
//!   refused; its success closes the circuit, its failure opens it for another cooldown.
//!
//! State changes are reported to the caller ([`Transition`]), which emits the domain event.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A state change the caller should report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The circuit opened: calls fail fast until the cooldown is over.
    Opened,
    /// A trial call succeeded: the circuit closed again.
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { trial_in_flight: bool },
}

/// The breaker. Shared by every request (`Arc`); the lock is held for a few instructions.
#[derive(Debug)]
pub struct CircuitBreaker {
    threshold: u32,
    cooldown: Duration,
    state: Mutex<State>,
}

impl CircuitBreaker {
    /// A closed breaker that opens after `threshold` (≥ 1) consecutive failures for `cooldown`.
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    /// Whether an attempt may go out now. In the half-open state only one trial is let through
    /// at a time; its outcome must be reported with [`Self::on_success`] or
    /// [`Self::on_failure`].
    pub fn try_acquire(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match *state {
            State::Closed { .. } => true,
            State::Open { until } if Instant::now() >= until => {
                *state = State::HalfOpen {
                    trial_in_flight: true,
                };
                true
            }
            State::Open { .. } => false,
            State::HalfOpen { trial_in_flight } => {
                if trial_in_flight {
                    false
                } else {
                    *state = State::HalfOpen {
                        trial_in_flight: true,
                    };
                    true
                }
            }
        }
    }

    /// An attempt got an answer from the provider (approved or declined: the provider works).
    pub fn on_success(&self) -> Option<Transition> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let transition = match *state {
            State::HalfOpen { .. } => Some(Transition::Closed),
            _ => None,
        };
        *state = State::Closed { failures: 0 };
        transition
    }

    /// An attempt failed (no answer, timeout, or a 5xx).
    pub fn on_failure(&self) -> Option<Transition> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let open = State::Open {
            until: Instant::now() + self.cooldown,
        };
        match *state {
            State::Closed { failures } if failures + 1 >= self.threshold => {
                *state = open;
                Some(Transition::Opened)
            }
            State::Closed { failures } => {
                *state = State::Closed {
                    failures: failures + 1,
                };
                None
            }
            State::HalfOpen { .. } => {
                *state = open;
                Some(Transition::Opened)
            }
            // A late failure of an attempt started before the circuit opened.
            State::Open { .. } => None,
        }
    }

    /// Whether calls are currently refused (open, or half-open with its trial out).
    pub fn is_open(&self) -> bool {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match *state {
            State::Closed { .. } => false,
            State::Open { until } => Instant::now() < until,
            State::HalfOpen { trial_in_flight } => trial_in_flight,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_consecutive_failures_only() {
        let breaker = CircuitBreaker::new(3, Duration::from_secs(60));
        assert_eq!(breaker.on_failure(), None);
        assert_eq!(breaker.on_failure(), None);
        assert_eq!(breaker.on_success(), None, "a success resets the count");
        assert_eq!(breaker.on_failure(), None);
        assert_eq!(breaker.on_failure(), None);
        assert!(breaker.try_acquire());
        assert_eq!(breaker.on_failure(), Some(Transition::Opened));
        assert!(!breaker.try_acquire());
        assert!(breaker.is_open());
    }

    #[test]
    fn after_the_cooldown_one_trial_goes_through_and_its_success_closes() {
        let breaker = CircuitBreaker::new(1, Duration::from_millis(0));
        assert_eq!(breaker.on_failure(), Some(Transition::Opened));
        assert!(breaker.try_acquire(), "the cooldown is over: one trial");
        assert!(!breaker.try_acquire(), "only one trial at a time");
        assert_eq!(breaker.on_success(), Some(Transition::Closed));
        assert!(breaker.try_acquire());
        assert!(breaker.try_acquire());
    }

    #[test]
    fn a_failed_trial_opens_the_circuit_again() {
        let breaker = CircuitBreaker::new(1, Duration::from_millis(0));
        assert_eq!(breaker.on_failure(), Some(Transition::Opened));
        assert!(breaker.try_acquire());
        assert_eq!(breaker.on_failure(), Some(Transition::Opened));
        let breaker = CircuitBreaker::new(1, Duration::from_secs(60));
        assert_eq!(breaker.on_failure(), Some(Transition::Opened));
        assert!(!breaker.try_acquire(), "still cooling down");
        assert_eq!(breaker.on_failure(), None, "late failures change nothing");
    }
}
