//! The charges, by idempotency key: in memory, bounded, oldest forgotten first.
//!
//! Looking a key up and recording a new charge happen under one lock, with nothing awaited in
//! between, so concurrent requests with one key can never record two charges: the first
//! records, the others find its charge and replay it.

use std::collections::{HashMap, VecDeque};

use serde::Serialize;

/// What a charge request asks for (its "body" for the idempotency comparison).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ChargeRequest {
    pub(super) amount_cents: u64,
    pub(super) currency: String,
    pub(super) reference: String,
}

/// How a recorded charge ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    Approved,
    Declined,
}

impl Outcome {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::Approved => "approved",
            Self::Declined => "declined",
        }
    }
}

/// A recorded charge: what was asked and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Charge {
    pub(super) id: String,
    pub(super) request: ChargeRequest,
    pub(super) outcome: Outcome,
}

/// The JSON body of a charge answer (201 approved, 402 declined), the same on every replay.
#[derive(Debug, Serialize)]
pub(super) struct ChargeBody<'a> {
    id: &'a str,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    amount_cents: u64,
    currency: &'a str,
    reference: &'a str,
}

impl Charge {
    pub(super) fn body(&self) -> ChargeBody<'_> {
        ChargeBody {
            id: &self.id,
            status: self.outcome.as_str(),
            reason: (self.outcome == Outcome::Declined).then_some("card_declined"),
            amount_cents: self.request.amount_cents,
            currency: &self.request.currency,
            reference: &self.request.reference,
        }
    }
}

/// What [`ChargeStore::record_or_replay`] did.
#[derive(Debug)]
pub(super) enum Recorded {
    /// A new charge was recorded under the key.
    New(Charge),
    /// The key already held a charge for the same request: here it is again.
    Replayed(Charge),
    /// The key already held a charge for a different request.
    KeyReused,
}

/// At most `capacity` charges by key; recording one more forgets the oldest.
#[derive(Debug)]
pub(super) struct ChargeStore {
    by_key: HashMap<String, Charge>,
    /// Keys in the order they were recorded (each key exactly once).
    order: VecDeque<String>,
    capacity: usize,
}

impl ChargeStore {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            by_key: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// The charge under `key` if it was made for `request`; otherwise, for an unknown key, a new
    /// charge ending as `decide` says.
    pub(super) fn record_or_replay(
        &mut self,
        key: &str,
        request: &ChargeRequest,
        decide: impl FnOnce() -> Outcome,
    ) -> Recorded {
        if let Some(charge) = self.by_key.get(key) {
            return if charge.request == *request {
                Recorded::Replayed(charge.clone())
            } else {
                Recorded::KeyReused
            };
        }
        while self.order.len() >= self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.by_key.remove(&oldest);
            }
        }
        let charge = Charge {
            id: format!("ch_{:032x}", rand::random::<u128>()),
            request: request.clone(),
            outcome: decide(),
        };
        self.by_key.insert(key.to_owned(), charge.clone());
        self.order.push_back(key.to_owned());
        Recorded::New(charge)
    }

    pub(super) fn clear(&mut self) {
        self.by_key.clear();
        self.order.clear();
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.by_key.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(amount_cents: u64) -> ChargeRequest {
        ChargeRequest {
            amount_cents,
            currency: "EUR".to_owned(),
            reference: "order-1".to_owned(),
        }
    }

    #[test]
    fn the_same_key_and_request_replays_the_first_charge() {
        let mut store = ChargeStore::new(10);
        let Recorded::New(first) = store.record_or_replay("k", &request(100), || Outcome::Declined)
        else {
            panic!("first request records");
        };
        assert!(
            first.id.starts_with("ch_") && first.id.len() == 35,
            "{}",
            first.id
        );
        let Recorded::Replayed(again) =
            store.record_or_replay("k", &request(100), || Outcome::Approved)
        else {
            panic!("second request replays");
        };
        assert_eq!(again, first);
        assert!(matches!(
            store.record_or_replay("k", &request(101), || Outcome::Approved),
            Recorded::KeyReused
        ));
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn the_oldest_key_is_forgotten_beyond_capacity() {
        let mut store = ChargeStore::new(3);
        for key in ["a", "b", "c", "d"] {
            store.record_or_replay(key, &request(1), || Outcome::Approved);
        }
        assert_eq!(store.len(), 3);
        assert!(matches!(
            store.record_or_replay("a", &request(2), || Outcome::Approved),
            Recorded::New(_)
        ));
        assert!(matches!(
            store.record_or_replay("d", &request(2), || Outcome::Approved),
            Recorded::KeyReused
        ));
        assert_eq!(store.len(), 3);
    }
}
