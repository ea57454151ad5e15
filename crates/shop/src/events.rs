//! Domain events of the shop: each is a named type whose [`DomainEvent::emit`] writes its one
//! log line and records its metrics together, so a dashboard and a log search always tell the
//! same story. Attribute values on metrics come from closed enums (bounded cardinality); ids
//! go to the log line only.
//!
//! | event | log (`event.name`, level) | metrics |
//! |---|---|---|
//! | [`OrderPlaced`] | `shop.order.placed`, INFO | `shop.orders.placed`, `shop.checkout.duration{shop.checkout.outcome=placed}` |
//! | [`OrderFailed`] | `shop.order.failed`, INFO | `shop.orders.failed{shop.order.failure_reason}`, `shop.checkout.duration{shop.checkout.outcome=<reason>}` |
//! | [`OrderTakenOver`] | `shop.order.taken_over`, WARN | `shop.orders.taken_over` |
//! | [`PaymentSettled`] | `shop.payment.settled`, INFO: `payment approved`, `payment declined`, `payment failed: …` (unavailable, timeout), `payment not attempted: …` (circuit open) | `shop.payments{shop.payment.outcome}` |
//! | [`PaymentCircuitOpened`] | `shop.payment.circuit_opened`, WARN | `shop.payment.circuit.opened` |
//! | [`PaymentCircuitClosed`] | `shop.payment.circuit_closed`, INFO | — |
//!
//! A failed checkout is still observed as an error exactly once, by the telemetry layer (the
//! access line at WARN/ERROR, `app.errors`, the span status); [`OrderFailed`] is the business
//! fact (which order, why) at INFO, not a second error report.

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram};
use telemetry::Telemetry;

/// Bucket boundaries of `shop.checkout.duration` (s): a checkout includes the payment call,
/// its retries and backoff, so it reaches further than a plain request.
const CHECKOUT_DURATION_BOUNDARIES: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.5, 5.0, 7.5, 10.0, 30.0,
];

/// The shop's domain instruments. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ShopMetrics {
    orders_placed: Counter<u64>,
    orders_failed: Counter<u64>,
    checkout_duration: Histogram<f64>,
    orders_taken_over: Counter<u64>,
    payments: Counter<u64>,
    circuit_opened: Counter<u64>,
}

impl ShopMetrics {
    /// The instruments, recording into `telemetry`.
    pub fn new(telemetry: &Telemetry) -> Self {
        let meter = telemetry.meter();
        Self {
            orders_placed: meter
                .u64_counter("shop.orders.placed")
                .with_unit("{order}")
                .with_description("Orders placed (paid).")
                .build(),
            orders_failed: meter
                .u64_counter("shop.orders.failed")
                .with_unit("{order}")
                .with_description("Checkouts that failed, by reason.")
                .build(),
            checkout_duration: meter
                .f64_histogram("shop.checkout.duration")
                .with_unit("s")
                .with_description("Duration of checkouts, payment included, by outcome.")
                .with_boundaries(CHECKOUT_DURATION_BOUNDARIES.to_vec())
                .build(),
            orders_taken_over: meter
                .u64_counter("shop.orders.taken_over")
                .with_unit("{order}")
                .with_description(
                    "Abandoned pending orders taken over by a retry with their idempotency key.",
                )
                .build(),
            payments: meter
                .u64_counter("shop.payments")
                .with_unit("{payment}")
                .with_description("Charges asked of the payment provider, by outcome.")
                .build(),
            circuit_opened: meter
                .u64_counter("shop.payment.circuit.opened")
                .with_unit("{event}")
                .with_description("Times the payment provider's circuit breaker opened.")
                .build(),
        }
    }
}

/// Something that happened in the shop, reported as one log line plus its metrics.
pub trait DomainEvent {
    /// Writes the log line and records the metrics.
    fn emit(&self, metrics: &ShopMetrics);
}

/// Why a checkout failed (`shop.order.failure_reason`, a closed set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureReason {
    /// An item's stock was too low; nothing was reserved or charged.
    OutOfStock,
    /// The provider declined the charge.
    PaymentDeclined,
    /// The provider failed or could not be reached (or its circuit is open).
    PaymentUnavailable,
    /// The provider did not answer in time.
    PaymentTimeout,
}

impl FailureReason {
    /// The attribute value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::OutOfStock => "out_of_stock",
            Self::PaymentDeclined => "payment_declined",
            Self::PaymentUnavailable => "payment_unavailable",
            Self::PaymentTimeout => "payment_timeout",
        }
    }
}

/// How a charge ended (`shop.payment.outcome`, a closed set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentOutcome {
    /// Charged.
    Approved,
    /// The provider declined.
    Declined,
    /// Every attempt failed (5xx, connection refused, …).
    Unavailable,
    /// The last attempt timed out.
    Timeout,
    /// Refused without calling: the circuit breaker is open.
    CircuitOpen,
}

impl PaymentOutcome {
    /// The attribute value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Approved => "approved",
            Self::Declined => "declined",
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::CircuitOpen => "circuit_open",
        }
    }
}

/// A checkout succeeded: the order is paid.
#[derive(Debug, Clone, Copy)]
pub struct OrderPlaced {
    /// The order.
    pub order_id: i64,
    /// What was charged.
    pub total_cents: i64,
    /// Distinct products in the order.
    pub item_count: usize,
    /// From the start of the checkout to the order being paid.
    pub duration: Duration,
}

impl DomainEvent for OrderPlaced {
    fn emit(&self, metrics: &ShopMetrics) {
        tracing::info!(
            event.name = "shop.order.placed",
            shop.order.id = self.order_id,
            shop.order.total_cents = self.total_cents,
            shop.order.item_count = self.item_count,
            shop.checkout.duration_ms = self.duration.as_secs_f64() * 1000.0,
            "order placed"
        );
        metrics.orders_placed.add(1, &[]);
        metrics.checkout_duration.record(
            self.duration.as_secs_f64(),
            &[KeyValue::new("shop.checkout.outcome", "placed")],
        );
    }
}

/// A checkout failed for a business or dependency reason (validation failures never become
/// checkouts and are not counted here).
#[derive(Debug, Clone, Copy)]
pub struct OrderFailed {
    /// The order, when one had been written (not for an out-of-stock refusal).
    pub order_id: Option<i64>,
    /// Why.
    pub reason: FailureReason,
    /// From the start of the checkout to the failure.
    pub duration: Duration,
}

impl DomainEvent for OrderFailed {
    fn emit(&self, metrics: &ShopMetrics) {
        tracing::info!(
            event.name = "shop.order.failed",
            shop.order.id = self.order_id,
            shop.order.failure_reason = self.reason.as_str(),
            shop.checkout.duration_ms = self.duration.as_secs_f64() * 1000.0,
            "order failed"
        );
        metrics.orders_failed.add(
            1,
            &[KeyValue::new(
                "shop.order.failure_reason",
                self.reason.as_str(),
            )],
        );
        metrics.checkout_duration.record(
            self.duration.as_secs_f64(),
            &[KeyValue::new("shop.checkout.outcome", self.reason.as_str())],
        );
    }
}

/// A `pending` order whose checkout was abandoned (its request died between reservation and
/// settlement) was taken over by a retry with its key. WARN: something crashed or failed to
/// settle an order, which an operator should know about.
#[derive(Debug, Clone, Copy)]
pub struct OrderTakenOver {
    /// The order.
    pub order_id: i64,
}

impl DomainEvent for OrderTakenOver {
    fn emit(&self, metrics: &ShopMetrics) {
        tracing::warn!(
            event.name = "shop.order.taken_over",
            shop.order.id = self.order_id,
            "abandoned pending order taken over by a retry with its idempotency key"
        );
        metrics.orders_taken_over.add(1, &[]);
    }
}

/// The payment provider was asked to charge and the client has its final answer.
#[derive(Debug, Clone, Copy)]
pub struct PaymentSettled {
    /// How it ended.
    pub outcome: PaymentOutcome,
    /// Attempts made (0 when the circuit was open).
    pub attempts: u32,
}

impl DomainEvent for PaymentSettled {
    fn emit(&self, metrics: &ShopMetrics) {
        // One event, its message by outcome. Always INFO: a failed charge fails the checkout,
        // which the access line observes once as the error (WARN/ERROR, `error.type`); this is
        // the business fact, like `shop.order.failed`, never a second error report.
        let outcome = self.outcome.as_str();
        let attempts = self.attempts;
        match self.outcome {
            PaymentOutcome::Approved => tracing::info!(
                event.name = "shop.payment.settled",
                shop.payment.outcome = outcome,
                shop.payment.attempts = attempts,
                "payment approved"
            ),
            PaymentOutcome::Declined => tracing::info!(
                event.name = "shop.payment.settled",
                shop.payment.outcome = outcome,
                shop.payment.attempts = attempts,
                "payment declined"
            ),
            PaymentOutcome::Unavailable => tracing::info!(
                event.name = "shop.payment.settled",
                shop.payment.outcome = outcome,
                shop.payment.attempts = attempts,
                "payment failed: the provider is unavailable"
            ),
            PaymentOutcome::Timeout => tracing::info!(
                event.name = "shop.payment.settled",
                shop.payment.outcome = outcome,
                shop.payment.attempts = attempts,
                "payment failed: the provider did not answer in time"
            ),
            PaymentOutcome::CircuitOpen => tracing::info!(
                event.name = "shop.payment.settled",
                shop.payment.outcome = outcome,
                shop.payment.attempts = attempts,
                "payment not attempted: the provider's circuit is open"
            ),
        }
        metrics.payments.add(
            1,
            &[KeyValue::new("shop.payment.outcome", self.outcome.as_str())],
        );
    }
}

/// The payment circuit breaker opened: checkouts fail fast for `cooldown`.
#[derive(Debug, Clone, Copy)]
pub struct PaymentCircuitOpened {
    /// Consecutive failed attempts that open it.
    pub threshold: u32,
    /// How long it stays open before a trial call.
    pub cooldown: Duration,
}

impl DomainEvent for PaymentCircuitOpened {
    fn emit(&self, metrics: &ShopMetrics) {
        tracing::warn!(
            event.name = "shop.payment.circuit_opened",
            shop.payment.breaker.threshold = self.threshold,
            shop.payment.breaker.cooldown_ms = self.cooldown.as_millis() as u64,
            "payment provider circuit opened: checkouts fail fast until a trial call succeeds"
        );
        metrics.circuit_opened.add(1, &[]);
    }
}

/// A trial call succeeded: the payment circuit breaker closed again.
#[derive(Debug, Clone, Copy)]
pub struct PaymentCircuitClosed;

impl DomainEvent for PaymentCircuitClosed {
    fn emit(&self, _metrics: &ShopMetrics) {
        tracing::info!(
            event.name = "shop.payment.circuit_closed",
            "payment provider circuit closed"
        );
    }
}
