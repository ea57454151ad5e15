//! The checkout flow: reserve → charge → settle, and what a retried `Idempotency-Key` gets.
//!
//! Without a key every checkout is a new order. With a key, the caller's earlier order of
//! that key decides:
//!
//! | earlier order | same items | different items |
//! |---|---|---|
//! | none | new order | — |
//! | `paid` | the same 201, replayed | 409 `idempotency.key_reused` |
//! | `failed`, declined | the same 402, replayed | 409 `idempotency.key_reused` |
//! | `failed`, provider down or slow | the same order tried again (stock reserved again, charged with the order's own provider key, so a charge that did go through is found, never doubled) | 409 `idempotency.key_reused` |
//! | `pending`, still in progress | 409 `idempotency.in_progress` | 409 `idempotency.key_reused` |
//! | `pending` for longer than any checkout can take (abandoned: a crash, a failed settlement) | taken over: charged with the order's own provider key (a charge that went through is found, not doubled), then settled | 409 `idempotency.key_reused` |
//!
//! Every failure goes through [`ApiError`] (the single error observation point); the domain
//! events ([`OrderPlaced`], [`OrderFailed`]) record the business outcome with its metrics.

use std::time::{Duration, Instant};

use crate::error::{ApiError, FieldError};
use crate::events::{DomainEvent, FailureReason, OrderFailed, OrderPlaced, OrderTakenOver};
use crate::orders::request::CheckoutRequest;
use crate::payments::{ChargeOutcome, ChargeRequest, PaymentError};
use crate::state::AppState;
use crate::store::{
    NewOrder, Order, OrderFailure, OrderStatus, ReserveError, Store, StoreError, now_ms,
};

/// A checkout that ended with a paid order.
#[derive(Debug)]
pub(super) struct Placed {
    pub(super) order: Order,
    /// The order was placed by an earlier request with the same key.
    pub(super) replayed: bool,
}

/// A checkout that ended with an error.
#[derive(Debug)]
pub(super) struct Refused {
    pub(super) error: ApiError,
    /// The error is an earlier request's outcome, replayed.
    pub(super) replayed: bool,
}

impl From<ApiError> for Refused {
    fn from(error: ApiError) -> Self {
        Self {
            error,
            replayed: false,
        }
    }
}

impl From<StoreError> for Refused {
    fn from(error: StoreError) -> Self {
        ApiError::from(error).into()
    }
}

/// Runs the checkout of `request` for `user_id`.
pub(super) async fn run(
    state: &AppState,
    user_id: i64,
    idempotency_key: Option<&str>,
    request: &CheckoutRequest,
) -> Result<Placed, Refused> {
    let started = Instant::now();
    let payment_key = new_payment_key();
    let new_order = NewOrder {
        user_id,
        idempotency_key,
        request_hash: &request.request_hash,
        payment_key: &payment_key,
        items: &request.items,
    };
    // A known key is answered from its order before anything is reserved (a replay must not
    // depend on today's stock).
    if let Some(key) = idempotency_key
        && let Some(earlier) = state.store.order_by_idempotency_key(user_id, key).await?
    {
        return match resume(state, earlier, request, started).await? {
            Resumed::Replay(placed) => Ok(placed),
            Resumed::Retry(order) => pay(state, order, started).await,
        };
    }
    let order = match state.store.reserve_order(new_order).await {
        Ok(order) => order,
        Err(ReserveError::KeyInUse) => {
            // Another request with this key wrote its order between our read and our write.
            let key = idempotency_key.unwrap_or_default();
            let earlier = state
                .store
                .order_by_idempotency_key(user_id, key)
                .await?
                .ok_or(StoreError::Unexpected(sqlx::Error::RowNotFound))?;
            match resume(state, earlier, request, started).await? {
                Resumed::Replay(placed) => return Ok(placed),
                Resumed::Retry(order) => order,
            }
        }
        Err(error) => return Err(reserve_failed(state, request, error, started)),
    };
    pay(state, order, started).await
}

enum Resumed {
    Replay(Placed),
    Retry(Order),
}

/// What a retried key gets (the table in the module docs).
async fn resume(
    state: &AppState,
    earlier: Order,
    request: &CheckoutRequest,
    started: Instant,
) -> Result<Resumed, Refused> {
    if earlier.request_hash != request.request_hash {
        return Err(ApiError::Conflict {
            code: "idempotency.key_reused",
            message: "this Idempotency-Key was used for a different checkout".into(),
            fields: vec![FieldError {
                field: "Idempotency-Key".into(),
                message: "was used for a checkout with other items: use a new key".into(),
            }],
        }
        .into());
    }
    match (earlier.status, earlier.failure_reason) {
        (OrderStatus::Paid, _) => Ok(Resumed::Replay(Placed {
            order: earlier,
            replayed: true,
        })),
        (OrderStatus::Failed, Some(reason)) if !reason.is_transient() => Err(Refused {
            error: declined(),
            replayed: true,
        }),
        (OrderStatus::Failed, _) => match state.store.retry_order(earlier.id).await {
            Ok(order) => Ok(Resumed::Retry(order)),
            Err(ReserveError::NotRetryable) => Err(in_progress().into()),
            Err(error) => Err(reserve_failed(state, request, error, started)),
        },
        (OrderStatus::Pending, _) => {
            // Pending longer than any checkout can take: its request died (a crash, a failed
            // settlement). Take it over: its stock is still reserved, and paying with the
            // order's own provider key gets back a charge that did go through.
            let abandoned_before = now_ms().saturating_sub(
                i64::try_from((state.payments.max_charge_duration() + ABANDONED_AFTER).as_millis())
                    .unwrap_or(i64::MAX),
            );
            match state
                .store
                .take_over_order(earlier.id, abandoned_before)
                .await?
            {
                Some(order) => {
                    OrderTakenOver { order_id: order.id }.emit(&state.metrics);
                    Ok(Resumed::Retry(order))
                }
                None => Err(in_progress().into()),
            }
        }
    }
}

/// How long past the longest possible checkout a `pending` order counts as abandoned.
const ABANDONED_AFTER: Duration = Duration::from_secs(30);

/// Charges a `pending` order and settles it.
async fn pay(state: &AppState, mut order: Order, started: Instant) -> Result<Placed, Refused> {
    let reference = format!("order-{}", order.id);
    let charged = state
        .payments
        .charge(ChargeRequest {
            amount_cents: order.total_cents,
            reference: &reference,
            idempotency_key: &order.payment_key,
        })
        .await;
    let (failure, error) = match charged {
        Ok(ChargeOutcome::Approved { charge_id }) => {
            state.store.mark_order_paid(order.id, &charge_id).await?;
            order.status = OrderStatus::Paid;
            order.payment_id = Some(charge_id);
            OrderPlaced {
                order_id: order.id,
                total_cents: order.total_cents,
                item_count: order.items.len(),
                duration: started.elapsed(),
            }
            .emit(&state.metrics);
            return Ok(Placed {
                order,
                replayed: false,
            });
        }
        Ok(ChargeOutcome::Declined { .. }) => (OrderFailure::Declined, declined()),
        Err(error @ PaymentError::Timeout { .. }) => (
            OrderFailure::Timeout,
            ApiError::GatewayTimeout {
                code: "payment.timeout",
                detail: error.to_string(),
            },
        ),
        Err(error @ (PaymentError::Unavailable { .. } | PaymentError::CircuitOpen)) => (
            OrderFailure::Unavailable,
            ApiError::BadGateway {
                code: if error == PaymentError::CircuitOpen {
                    "payment.circuit_open"
                } else {
                    "payment.unavailable"
                },
                detail: error.to_string(),
            },
        ),
    };
    state.store.mark_order_failed(order.id, failure).await?;
    OrderFailed {
        order_id: Some(order.id),
        reason: match failure {
            OrderFailure::Declined => FailureReason::PaymentDeclined,
            OrderFailure::Unavailable => FailureReason::PaymentUnavailable,
            OrderFailure::Timeout => FailureReason::PaymentTimeout,
        },
        duration: started.elapsed(),
    }
    .emit(&state.metrics);
    Err(error.into())
}

/// The answer to a reservation that failed.
fn reserve_failed(
    state: &AppState,
    request: &CheckoutRequest,
    error: ReserveError,
    started: Instant,
) -> Refused {
    let error = match error {
        ReserveError::UnknownProduct { product_id } => ApiError::invalid_field(
            "order.unknown_product",
            format!("{}.product_id", request.field_of(product_id)),
            "no product has this id",
        ),
        ReserveError::OutOfStock { product_id } => {
            OrderFailed {
                order_id: None,
                reason: FailureReason::OutOfStock,
                duration: started.elapsed(),
            }
            .emit(&state.metrics);
            ApiError::Conflict {
                code: "order.out_of_stock",
                message: format!("not enough stock of product {product_id}").into(),
                fields: vec![FieldError {
                    field: format!("{}.quantity", request.field_of(product_id)).into(),
                    message: "exceeds the product's stock".into(),
                }],
            }
        }
        ReserveError::KeyInUse | ReserveError::NotRetryable => in_progress(),
        ReserveError::Store(error) => error.into(),
    };
    error.into()
}

fn declined() -> ApiError {
    ApiError::PaymentDeclined {
        code: "payment.declined",
        message: "the payment was declined".into(),
    }
}

fn in_progress() -> ApiError {
    ApiError::Conflict {
        code: "idempotency.in_progress",
        message: "a checkout with this Idempotency-Key is still in progress; retry later".into(),
        fields: Vec::new(),
    }
}

/// A random provider idempotency key for a new order: 16 bytes, 32 hex characters.
fn new_payment_key() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
