//! Payments: the client the checkout calls ([`PaymentClient`]), its circuit breaker, and the
//! payment simulator the shop talks to when no real provider is configured.
//!
//! The wire protocol (what the client sends and the simulator implements):
//! `POST /v1/charges` with `Idempotency-Key` and `{"amount_cents", "currency", "reference"}`;
//! `201 {"id", "status": "approved", …}` or `402 {"id", "status": "declined", "reason", …}`;
//! the same key again replays the first answer and never charges twice.

pub mod breaker;
pub mod client;
/// The payment simulator, its own crate (`payments-sim`): re-exported for the in-process mode.
pub use payments_sim as simulator;

pub use client::{CURRENCY, ChargeOutcome, ChargeRequest, PaymentClient, PaymentError};
