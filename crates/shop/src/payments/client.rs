//! The payment provider client: `POST {PAYMENTS_URL}/v1/charges` over real HTTP (reqwest),
//! observed by [`telemetry::outbound`] (a CLIENT span per attempt, W3C `traceparent` injected,
//! `http.client.request.duration`).
//!
//! - **Idempotency**: every charge carries an `Idempotency-Key` (the caller derives it from the
//!   order, so every attempt and every retried checkout of one order uses the same key): the
//!   provider charges once per key, which is what makes retrying a POST safe.
//! - **Timeout and retries**: each attempt has its own deadline (`PAYMENTS_TIMEOUT_MS`); a
//!   failed attempt (timeout, connection failure, 408/429/5xx) is retried up to
//!   `PAYMENTS_MAX_ATTEMPTS` attempts in all, after an exponential backoff with full jitter
//!   (100 ms, 200 ms, … capped at 2 s). A decline or any other answer is final.
//! - **Circuit breaker**: `PAYMENTS_BREAKER_THRESHOLD` failed attempts in a row open it; then
//!   charges fail at once ([`PaymentError::CircuitOpen`]) for `PAYMENTS_BREAKER_COOLDOWN_MS`,
//!   after which one trial attempt decides (see [`super::breaker`]).

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use telemetry::Telemetry;
use telemetry::outbound::HttpClientInstruments;

use super::breaker::{CircuitBreaker, Transition};
use crate::config::PaymentsConfig;
use crate::events::{
    DomainEvent, PaymentCircuitClosed, PaymentCircuitOpened, PaymentOutcome, PaymentSettled,
    ShopMetrics,
};

/// The one currency of the shop.
pub const CURRENCY: &str = "EUR";
/// The first retry waits up to this long; each further retry doubles it.
const BACKOFF_BASE: Duration = Duration::from_millis(100);
/// No retry waits longer than this.
const BACKOFF_CAP: Duration = Duration::from_secs(2);
/// Longest provider answer read (a charge is a few hundred bytes).
const MAX_ANSWER_BYTES: usize = 16 * 1024;

/// One charge to make.
#[derive(Debug, Clone, Copy)]
pub struct ChargeRequest<'a> {
    /// Amount in cents of [`CURRENCY`] (> 0).
    pub amount_cents: i64,
    /// Shown on the provider's side, e.g. `order-42`.
    pub reference: &'a str,
    /// The same for every attempt at the same charge.
    pub idempotency_key: &'a str,
}

/// The provider's final answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeOutcome {
    /// Charged; `charge_id` is the provider's id.
    Approved {
        /// The provider's charge id.
        charge_id: String,
    },
    /// Not charged.
    Declined {
        /// The provider's reason code (e.g. `card_declined`).
        reason: String,
    },
}

/// Why no final answer was obtained.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    /// The last attempt ran out of time.
    #[error("the payment provider did not answer within the deadline ({attempts} attempt(s))")]
    Timeout {
        /// Attempts made.
        attempts: u32,
    },
    /// The provider failed, could not be reached, or answered something unusable.
    #[error("the payment provider failed ({attempts} attempt(s)): {detail}")]
    Unavailable {
        /// Attempts made.
        attempts: u32,
        /// What the last attempt got (a status or a transport error kind; no body).
        detail: String,
    },
    /// Not attempted: the circuit breaker is open.
    #[error("the payment provider's circuit breaker is open: failing fast")]
    CircuitOpen,
}

impl PaymentError {
    fn outcome(&self) -> PaymentOutcome {
        match self {
            Self::Timeout { .. } => PaymentOutcome::Timeout,
            Self::Unavailable { .. } => PaymentOutcome::Unavailable,
            Self::CircuitOpen => PaymentOutcome::CircuitOpen,
        }
    }

    fn attempts(&self) -> u32 {
        match self {
            Self::Timeout { attempts } | Self::Unavailable { attempts, .. } => *attempts,
            Self::CircuitOpen => 0,
        }
    }
}

/// The client. Cheap to clone; clones share the connection pool and the circuit breaker.
#[derive(Debug, Clone)]
pub struct PaymentClient {
    http: reqwest::Client,
    outbound: HttpClientInstruments,
    charges_url: Arc<str>,
    attempt_timeout: Duration,
    max_attempts: u32,
    breaker: Arc<CircuitBreaker>,
    breaker_threshold: u32,
    breaker_cooldown: Duration,
    metrics: ShopMetrics,
}

#[derive(Serialize)]
struct ChargeBody<'a> {
    amount_cents: i64,
    currency: &'static str,
    reference: &'a str,
}

#[derive(Deserialize)]
struct ChargeAnswer {
    id: Option<String>,
    status: String,
    reason: Option<String>,
}

/// What one attempt got.
enum Attempt {
    Final(ChargeOutcome),
    /// Retryable failure (`timed_out`: the deadline passed).
    Failed {
        timed_out: bool,
        detail: String,
    },
    /// A final answer the client cannot use (a 4xx other than 402, a malformed body).
    Unusable(String),
}

impl PaymentClient {
    /// A client for the provider at `base_url` (`PAYMENTS_URL`, without trailing `/`), with
    /// the timeouts, retries and breaker of `config`.
    pub fn new(
        base_url: &str,
        config: &PaymentsConfig,
        telemetry: &Telemetry,
        metrics: ShopMetrics,
    ) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.attempt_timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        Self {
            http,
            outbound: HttpClientInstruments::new(telemetry),
            charges_url: format!("{}/v1/charges", base_url.trim_end_matches('/')).into(),
            attempt_timeout: config.attempt_timeout,
            max_attempts: config.max_attempts.max(1),
            breaker: Arc::new(CircuitBreaker::new(
                config.breaker_threshold,
                config.breaker_cooldown,
            )),
            breaker_threshold: config.breaker_threshold,
            breaker_cooldown: config.breaker_cooldown,
            metrics,
        }
    }

    /// The longest one [`Self::charge`] can take: every attempt's deadline plus the longest
    /// backoff before each retry.
    pub fn max_charge_duration(&self) -> Duration {
        (self.attempt_timeout + BACKOFF_CAP).saturating_mul(self.max_attempts)
    }

    /// Whether the circuit breaker currently refuses charges.
    pub fn circuit_open(&self) -> bool {
        self.breaker.is_open()
    }

    /// Charges `request`, retrying failed attempts, and reports the outcome
    /// ([`PaymentSettled`]). Every attempt is a CLIENT span of the current request.
    pub async fn charge(&self, request: ChargeRequest<'_>) -> Result<ChargeOutcome, PaymentError> {
        let result = self.charge_with_retries(request).await;
        let (outcome, attempts) = match &result {
            Ok((ChargeOutcome::Approved { .. }, attempts)) => (PaymentOutcome::Approved, *attempts),
            Ok((ChargeOutcome::Declined { .. }, attempts)) => (PaymentOutcome::Declined, *attempts),
            Err(error) => (error.outcome(), error.attempts()),
        };
        PaymentSettled { outcome, attempts }.emit(&self.metrics);
        result.map(|(outcome, _)| outcome)
    }

    async fn charge_with_retries(
        &self,
        request: ChargeRequest<'_>,
    ) -> Result<(ChargeOutcome, u32), PaymentError> {
        let mut last: Option<PaymentError> = None;
        for attempt in 0..self.max_attempts {
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt)).await;
            }
            if !self.breaker.try_acquire() {
                return Err(last.unwrap_or(PaymentError::CircuitOpen));
            }
            let attempts = attempt + 1;
            match self.attempt(request, attempt).await {
                Attempt::Final(outcome) => {
                    self.report(self.breaker.on_success());
                    return Ok((outcome, attempts));
                }
                Attempt::Unusable(detail) => {
                    // The provider is up; the exchange is broken (a bug on one side).
                    self.report(self.breaker.on_success());
                    return Err(PaymentError::Unavailable { attempts, detail });
                }
                Attempt::Failed { timed_out, detail } => {
                    self.report(self.breaker.on_failure());
                    last = Some(if timed_out {
                        PaymentError::Timeout { attempts }
                    } else {
                        PaymentError::Unavailable { attempts, detail }
                    });
                }
            }
        }
        Err(last.unwrap_or(PaymentError::CircuitOpen))
    }

    async fn attempt(&self, request: ChargeRequest<'_>, resend_count: u32) -> Attempt {
        let builder = self
            .http
            .post(&*self.charges_url)
            .timeout(self.attempt_timeout)
            .header("Idempotency-Key", request.idempotency_key)
            .json(&ChargeBody {
                amount_cents: request.amount_cents,
                currency: CURRENCY,
                reference: request.reference,
            });
        let response = match self.outbound.send_attempt(builder, resend_count).await {
            Ok(response) => response,
            Err(error) => {
                return Attempt::Failed {
                    timed_out: error.is_timeout(),
                    detail: transport_error_kind(&error).to_owned(),
                };
            }
        };
        let status = response.status();
        if is_retryable(status) {
            return Attempt::Failed {
                timed_out: status == StatusCode::REQUEST_TIMEOUT
                    || status == StatusCode::GATEWAY_TIMEOUT,
                detail: format!("status {}", status.as_u16()),
            };
        }
        // The deadline also covers reading the body.
        let body = match tokio::time::timeout(self.attempt_timeout, response.bytes()).await {
            Ok(Ok(body)) if body.len() <= MAX_ANSWER_BYTES => body,
            Ok(Ok(_)) => return Attempt::Unusable("answer too large".to_owned()),
            Ok(Err(error)) => {
                return Attempt::Failed {
                    timed_out: error.is_timeout(),
                    detail: transport_error_kind(&error).to_owned(),
                };
            }
            Err(_) => {
                return Attempt::Failed {
                    timed_out: true,
                    detail: "body timeout".to_owned(),
                };
            }
        };
        let answer: Option<ChargeAnswer> = serde_json::from_slice(&body).ok();
        match (status, answer) {
            (StatusCode::OK | StatusCode::CREATED, Some(answer)) if answer.status == "approved" => {
                match answer.id.filter(|id| valid_charge_id(id)) {
                    Some(charge_id) => Attempt::Final(ChargeOutcome::Approved { charge_id }),
                    None => Attempt::Unusable("approved without a valid charge id".to_owned()),
                }
            }
            (StatusCode::PAYMENT_REQUIRED, Some(answer)) if answer.status == "declined" => {
                let reason = answer
                    .reason
                    .filter(|reason| valid_reason(reason))
                    .unwrap_or_else(|| "unspecified".to_owned());
                Attempt::Final(ChargeOutcome::Declined { reason })
            }
            (status, _) => {
                Attempt::Unusable(format!("unexpected answer: status {}", status.as_u16()))
            }
        }
    }

    fn report(&self, transition: Option<Transition>) {
        match transition {
            Some(Transition::Opened) => PaymentCircuitOpened {
                threshold: self.breaker_threshold,
                cooldown: self.breaker_cooldown,
            }
            .emit(&self.metrics),
            Some(Transition::Closed) => PaymentCircuitClosed.emit(&self.metrics),
            None => {}
        }
    }
}

/// 408, 429 and 5xx: the provider may well succeed on another attempt.
fn is_retryable(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
}

/// The wait before retry number `retry` (1-based): full jitter over an exponential ceiling.
fn backoff(retry: u32) -> Duration {
    let ceiling = BACKOFF_BASE
        .saturating_mul(1 << retry.saturating_sub(1).min(16))
        .min(BACKOFF_CAP);
    let millis = u64::try_from(ceiling.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    Duration::from_millis(rand::random_range(millis / 4..=millis))
}

fn transport_error_kind(error: &reqwest::Error) -> &'static str {
    if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connection failed"
    } else if error.is_body() || error.is_decode() {
        "broken answer"
    } else {
        "transport error"
    }
}

/// Charge ids are stored and shown: short, printable ASCII.
fn valid_charge_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn valid_reason(reason: &str) -> bool {
    (1..=64).contains(&reason.len())
        && reason
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_full_jitter_and_is_capped() {
        for _ in 0..100 {
            let first = backoff(1);
            assert!(first >= Duration::from_millis(25) && first <= Duration::from_millis(100));
            let third = backoff(3);
            assert!(third >= Duration::from_millis(100) && third <= Duration::from_millis(400));
            assert!(backoff(30) <= BACKOFF_CAP);
        }
    }

    #[test]
    fn only_timeouts_throttling_and_server_errors_are_retried() {
        for status in [408, 429, 500, 502, 503, 504] {
            assert!(
                is_retryable(StatusCode::from_u16(status).unwrap_or_default()),
                "{status}"
            );
        }
        for status in [200, 201, 400, 402, 409, 422] {
            assert!(
                !is_retryable(StatusCode::from_u16(status).unwrap_or_default()),
                "{status}"
            );
        }
    }

    #[test]
    fn provider_values_are_checked_before_they_are_kept() {
        assert!(valid_charge_id("ch_0123456789abcdef"));
        assert!(!valid_charge_id(""));
        assert!(!valid_charge_id("ch 1"));
        assert!(!valid_charge_id(&"a".repeat(65)));
        assert!(valid_reason("card_declined"));
        assert!(!valid_reason("Card declined\n"));
    }
}
