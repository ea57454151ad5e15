//! The order queries, one [`Store`] method each, written once for both backends: the SQL is the
//! same on SQLite and PostgreSQL (`$n` placeholders work on both). Only the statement that opens
//! a write transaction differs (`BEGIN IMMEDIATE` on SQLite, so concurrent checkouts queue for
//! the write lock instead of failing to upgrade a read lock; plain `BEGIN` on PostgreSQL, where
//! row locks do the work).
//!
//! Overselling is impossible by construction: stock is taken with
//! `UPDATE products SET stock = stock - q WHERE id = p AND stock >= q`, which either takes
//! the units or changes nothing, and items are taken in product-id order so two checkouts
//! never wait for each other's rows in opposite orders (no deadlock on PostgreSQL).

use sqlx::query::{QueryAs, QueryScalar};
use sqlx::{Database, Encode, FromRow, Type};
use telemetry::db::DbInstruments;

use super::{
    NewOrder, Order, OrderFailure, OrderItem, OrderStatus, PageRequest, Pool, ReserveError, Store,
    StoreError, error_type, on_pool,
};

/// The columns [`OrderRow`] reads, in its field order (a macro, for `concat!`).
macro_rules! order_columns {
    () => {
        "id, user_id, status, total_cents, failure_reason, payment_key, payment_id, request_hash"
    };
}

/// A row of `orders` as stored.
#[derive(Debug, sqlx::FromRow)]
struct OrderRow {
    id: i64,
    user_id: i64,
    status: String,
    total_cents: i64,
    failure_reason: Option<String>,
    payment_key: String,
    payment_id: Option<String>,
    request_hash: String,
}

impl OrderRow {
    /// The order, with its lines.
    fn into_order(self, items: Vec<OrderItem>) -> Result<Order, StoreError> {
        let unexpected = |what: &str| {
            StoreError::Unexpected(sqlx::Error::Decode(
                format!("order {} has an unknown {what}", self.id).into(),
            ))
        };
        let status = OrderStatus::parse(&self.status).ok_or_else(|| unexpected("status"))?;
        let failure_reason = match self.failure_reason.as_deref() {
            None => None,
            Some(raw) => {
                Some(OrderFailure::parse(raw).ok_or_else(|| unexpected("failure reason"))?)
            }
        };
        Ok(Order {
            id: self.id,
            user_id: self.user_id,
            status,
            total_cents: self.total_cents,
            failure_reason,
            payment_key: self.payment_key,
            payment_id: self.payment_id,
            request_hash: self.request_hash,
            items,
        })
    }
}

/// A row of `order_items` with its order id (for listings of several orders).
#[derive(Debug, sqlx::FromRow)]
struct OrderItemRow {
    order_id: i64,
    product_id: i64,
    quantity: i64,
    unit_price_cents: i64,
}

/// Whether `error` is the unique `(user_id, idempotency_key)` constraint of `orders`
/// (PostgreSQL names it; SQLite lists the columns).
fn is_idempotency_key_violation(error: &sqlx::Error) -> bool {
    let sqlx::Error::Database(error) = error else {
        return false;
    };
    error.kind() == sqlx::error::ErrorKind::UniqueViolation
        && match error.constraint() {
            Some(constraint) => constraint == "orders_user_id_idempotency_key_key",
            None => error.message().contains("orders.idempotency_key"),
        }
}

/// Now, in milliseconds since the Unix epoch (`orders.reserved_at_ms`).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

/// Groups item rows (ordered by order id) under their orders.
fn attach_items(rows: Vec<OrderRow>, items: Vec<OrderItemRow>) -> Result<Vec<Order>, StoreError> {
    let mut orders = Vec::with_capacity(rows.len());
    for row in rows {
        let lines = items
            .iter()
            .filter(|item| item.order_id == row.id)
            .map(|item| OrderItem {
                product_id: item.product_id,
                quantity: item.quantity,
                unit_price_cents: item.unit_price_cents,
            })
            .collect();
        orders.push(row.into_order(lines)?);
    }
    Ok(orders)
}

/// The statement reading the lines of order `order_id`, by product id (run on the pool, or on
/// a transaction that just changed the order).
fn order_items<'q, DB>(order_id: i64) -> QueryAs<'q, DB, OrderItem, DB::Arguments>
where
    DB: Database,
    i64: Encode<'q, DB> + Type<DB>,
    OrderItem: for<'r> FromRow<'r, DB::Row>,
{
    sqlx::query_as(
        "SELECT product_id, quantity, unit_price_cents FROM order_items \
         WHERE order_id = $1 ORDER BY product_id",
    )
    .bind(order_id)
}

/// The statement taking `quantity` units of `product_id` from its stock and returning the
/// product's price — or changing nothing and returning no row when the stock is too low or
/// there is no such product. The one statement that keeps stock from going below zero,
/// whatever runs concurrently.
fn take_stock<'q, DB>(product_id: i64, quantity: i64) -> QueryScalar<'q, DB, i64, DB::Arguments>
where
    DB: Database,
    i64: Encode<'q, DB> + Type<DB>,
    (i64,): for<'r> FromRow<'r, DB::Row>,
{
    sqlx::query_scalar(
        "UPDATE products SET stock = stock - $1 \
         WHERE id = $2 AND stock >= $1 RETURNING price_cents",
    )
    .bind(quantity)
    .bind(product_id)
}

/// Rolls `transaction` back now, with its own span. (Dropping it leaves the rollback to sqlx's
/// drop handling, which may only send it when the connection is next used, holding SQLite's
/// write lock or PostgreSQL's row locks meanwhile.)
async fn rollback<DB: Database>(db: &DbInstruments, transaction: sqlx::Transaction<'_, DB>) {
    let _ = db
        .statement("ROLLBACK")
        .run(transaction.rollback(), error_type)
        .await;
}

/// Why a transaction body stopped: a decision of the query, or a failed statement (mapped to a
/// [`StoreError`] once, outside the backend-specific code).
enum Abort<E> {
    /// The query's own answer (nothing was changed).
    Refused(E),
    /// A statement failed.
    Failed(sqlx::Error),
}

impl<E> From<sqlx::Error> for Abort<E> {
    fn from(error: sqlx::Error) -> Self {
        Self::Failed(error)
    }
}

impl Store {
    /// The statement that opens a write transaction (see the module documentation).
    fn begin_write(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "BEGIN IMMEDIATE",
            Pool::Postgres(_) => "BEGIN",
        }
    }

    /// The [`ReserveError`] of an aborted reservation.
    fn reserve_error(&self, abort: Abort<ReserveError>) -> ReserveError {
        match abort {
            Abort::Refused(error) => error,
            Abort::Failed(error) => self.failure(error).into(),
        }
    }

    /// `row` with its lines.
    async fn with_items(&self, row: Option<OrderRow>) -> Result<Option<Order>, StoreError> {
        let Some(row) = row else {
            return Ok(None);
        };
        let items = on_pool!(self, |pool| {
            self.db
                .operation("SELECT", "order_items")
                .run(order_items(row.id).fetch_all(pool), error_type)
                .await
        })
        .map_err(|error| self.failure(error))?;
        row.into_order(items).map(Some)
    }

    /// In one transaction: takes each item's quantity from its product's stock (never below
    /// zero, whatever runs concurrently) and writes the order as `pending` at the current
    /// prices. Nothing is changed when it fails.
    pub async fn reserve_order(&self, order: NewOrder<'_>) -> Result<Order, ReserveError> {
        let begin = self.begin_write();
        let reserved = on_pool!(self, |pool| {
            async {
                let mut transaction = self
                    .db
                    .statement("BEGIN")
                    .run(pool.begin_with(begin), error_type)
                    .await?;
                let reserved = async {
                    let mut items = Vec::with_capacity(order.items.len());
                    let mut total_cents: i64 = 0;
                    for item in order.items {
                        let price: Option<i64> = self
                            .db
                            .operation("UPDATE", "products")
                            .run(
                                take_stock(item.product_id, item.quantity)
                                    .fetch_optional(&mut *transaction),
                                error_type,
                            )
                            .await?;
                        let Some(price) = price else {
                            let exists: Option<i64> = self
                                .db
                                .operation("SELECT", "products")
                                .run(
                                    sqlx::query_scalar("SELECT id FROM products WHERE id = $1")
                                        .bind(item.product_id)
                                        .fetch_optional(&mut *transaction),
                                    error_type,
                                )
                                .await?;
                            return Err(Abort::Refused(match exists {
                                Some(_) => ReserveError::OutOfStock {
                                    product_id: item.product_id,
                                },
                                None => ReserveError::UnknownProduct {
                                    product_id: item.product_id,
                                },
                            }));
                        };
                        total_cents =
                            total_cents.saturating_add(price.saturating_mul(item.quantity));
                        items.push(OrderItem {
                            product_id: item.product_id,
                            quantity: item.quantity,
                            unit_price_cents: price,
                        });
                    }
                    let inserted = self
                        .db
                        .operation("INSERT", "orders")
                        .run(
                            sqlx::query_scalar(
                                "INSERT INTO orders (user_id, status, total_cents, \
                                 idempotency_key, request_hash, payment_key, reserved_at_ms) \
                                 VALUES ($1, 'pending', $2, $3, $4, $5, $6) RETURNING id",
                            )
                            .bind(order.user_id)
                            .bind(total_cents)
                            .bind(order.idempotency_key)
                            .bind(order.request_hash)
                            .bind(order.payment_key)
                            .bind(now_ms())
                            .fetch_one(&mut *transaction),
                            error_type,
                        )
                        .await;
                    let id: i64 = match inserted {
                        Ok(id) => id,
                        Err(error) if is_idempotency_key_violation(&error) => {
                            return Err(Abort::Refused(ReserveError::KeyInUse));
                        }
                        Err(error) => return Err(error.into()),
                    };
                    let mut insert = sqlx::QueryBuilder::new(
                        "INSERT INTO order_items (order_id, product_id, quantity, \
                         unit_price_cents) ",
                    );
                    insert.push_values(&items, |mut row, item| {
                        row.push_bind(id)
                            .push_bind(item.product_id)
                            .push_bind(item.quantity)
                            .push_bind(item.unit_price_cents);
                    });
                    self.db
                        .operation("INSERT", "order_items")
                        .run(insert.build().execute(&mut *transaction), error_type)
                        .await?;
                    Ok((id, items, total_cents))
                }
                .await;
                let reserved = match reserved {
                    Ok(reserved) => reserved,
                    Err(abort) => {
                        rollback(&self.db, transaction).await;
                        return Err(abort);
                    }
                };
                self.db
                    .statement("COMMIT")
                    .run(transaction.commit(), error_type)
                    .await?;
                Ok(reserved)
            }
            .await
        });
        let (id, items, total_cents) = reserved.map_err(|abort| self.reserve_error(abort))?;
        Ok(Order {
            id,
            user_id: order.user_id,
            status: OrderStatus::Pending,
            total_cents,
            failure_reason: None,
            payment_key: order.payment_key.to_owned(),
            payment_id: None,
            request_hash: order.request_hash.to_owned(),
            items,
        })
    }

    /// In one transaction: turns a `failed` order with a transient reason back into `pending`,
    /// reserving its stock again ([`ReserveError::NotRetryable`] when it is not in that state).
    pub async fn retry_order(&self, order_id: i64) -> Result<Order, ReserveError> {
        let begin = self.begin_write();
        let retried = on_pool!(self, |pool| {
            async {
                let mut transaction = self
                    .db
                    .statement("BEGIN")
                    .run(pool.begin_with(begin), error_type)
                    .await?;
                let retried = async {
                    let row: Option<OrderRow> = self
                        .db
                        .operation("UPDATE", "orders")
                        .run(
                            sqlx::query_as(concat!(
                                "UPDATE orders SET status = 'pending', failure_reason = NULL, \
                                 reserved_at_ms = $2 WHERE id = $1 AND status = 'failed' \
                                 AND failure_reason IN ('unavailable', 'timeout') RETURNING ",
                                order_columns!()
                            ))
                            .bind(order_id)
                            .bind(now_ms())
                            .fetch_optional(&mut *transaction),
                            error_type,
                        )
                        .await?;
                    let Some(row) = row else {
                        return Err(Abort::Refused(ReserveError::NotRetryable));
                    };
                    let items = self
                        .db
                        .operation("SELECT", "order_items")
                        .run(
                            order_items(order_id).fetch_all(&mut *transaction),
                            error_type,
                        )
                        .await?;
                    for item in &items {
                        let taken: Option<i64> = self
                            .db
                            .operation("UPDATE", "products")
                            .run(
                                take_stock(item.product_id, item.quantity)
                                    .fetch_optional(&mut *transaction),
                                error_type,
                            )
                            .await?;
                        if taken.is_none() {
                            return Err(Abort::Refused(ReserveError::OutOfStock {
                                product_id: item.product_id,
                            }));
                        }
                    }
                    Ok((row, items))
                }
                .await;
                let retried = match retried {
                    Ok(retried) => retried,
                    Err(abort) => {
                        rollback(&self.db, transaction).await;
                        return Err(abort);
                    }
                };
                self.db
                    .statement("COMMIT")
                    .run(transaction.commit(), error_type)
                    .await?;
                Ok(retried)
            }
            .await
        });
        let (row, items) = retried.map_err(|abort| self.reserve_error(abort))?;
        Ok(row.into_order(items)?)
    }

    /// Takes over a `pending` order whose stock was reserved before `reserved_before_ms` (Unix
    /// ms): its checkout was abandoned (a crash, a failed settlement). Marks it reserved now (so
    /// one request wins) and returns it; `None` when it is not pending or not that old.
    pub async fn take_over_order(
        &self,
        order_id: i64,
        reserved_before_ms: i64,
    ) -> Result<Option<Order>, StoreError> {
        let row = on_pool!(self, |pool| {
            self.db
                .operation("UPDATE", "orders")
                .run(
                    sqlx::query_as(concat!(
                        "UPDATE orders SET reserved_at_ms = $2 \
                         WHERE id = $1 AND status = 'pending' AND reserved_at_ms < $3 \
                         RETURNING ",
                        order_columns!()
                    ))
                    .bind(order_id)
                    .bind(now_ms())
                    .bind(reserved_before_ms)
                    .fetch_optional(pool),
                    error_type,
                )
                .await
        })
        .map_err(|error| self.failure(error))?;
        self.with_items(row).await
    }

    /// The order `user_id` placed with `idempotency_key`, if any.
    pub async fn order_by_idempotency_key(
        &self,
        user_id: i64,
        idempotency_key: &str,
    ) -> Result<Option<Order>, StoreError> {
        let row = on_pool!(self, |pool| {
            self.db
                .operation("SELECT", "orders")
                .run(
                    sqlx::query_as(concat!(
                        "SELECT ",
                        order_columns!(),
                        " FROM orders WHERE user_id = $1 AND idempotency_key = $2"
                    ))
                    .bind(user_id)
                    .bind(idempotency_key)
                    .fetch_optional(pool),
                    error_type,
                )
                .await
        })
        .map_err(|error| self.failure(error))?;
        self.with_items(row).await
    }

    /// `pending` → `paid` with the provider's charge id (also succeeds when the order is
    /// already paid with this charge id).
    pub async fn mark_order_paid(&self, order_id: i64, payment_id: &str) -> Result<(), StoreError> {
        let settled = on_pool!(self, |pool| {
            async {
                let done = self
                    .db
                    .operation("UPDATE", "orders")
                    .run(
                        sqlx::query(
                            "UPDATE orders SET status = 'paid', payment_id = $2 \
                             WHERE id = $1 AND status = 'pending'",
                        )
                        .bind(order_id)
                        .bind(payment_id)
                        .execute(pool),
                        error_type,
                    )
                    .await?;
                if done.rows_affected() == 1 {
                    return Ok(true);
                }
                // Not pending: fine if it is already paid with this very charge (a request that
                // took the order over settled it first with the same provider answer).
                let paid: Option<Option<String>> = self
                    .db
                    .operation("SELECT", "orders")
                    .run(
                        sqlx::query_scalar(
                            "SELECT payment_id FROM orders WHERE id = $1 AND status = 'paid'",
                        )
                        .bind(order_id)
                        .fetch_optional(pool),
                        error_type,
                    )
                    .await?;
                Ok::<_, sqlx::Error>(paid.flatten().as_deref() == Some(payment_id))
            }
            .await
        })
        .map_err(|error| self.failure(error))?;
        if settled {
            Ok(())
        } else {
            Err(StoreError::Unexpected(sqlx::Error::RowNotFound))
        }
    }

    /// In one transaction: `pending` → `failed` and the order's stock given back.
    pub async fn mark_order_failed(
        &self,
        order_id: i64,
        reason: OrderFailure,
    ) -> Result<(), StoreError> {
        let begin = self.begin_write();
        on_pool!(self, |pool| {
            async {
                let mut transaction = self
                    .db
                    .statement("BEGIN")
                    .run(pool.begin_with(begin), error_type)
                    .await?;
                let done = self
                    .db
                    .operation("UPDATE", "orders")
                    .run(
                        sqlx::query(
                            "UPDATE orders SET status = 'failed', failure_reason = $2 \
                             WHERE id = $1 AND status = 'pending'",
                        )
                        .bind(order_id)
                        .bind(reason.as_str())
                        .execute(&mut *transaction),
                        error_type,
                    )
                    .await?;
                if done.rows_affected() == 0 {
                    // Not pending (already settled): its stock is not ours to give back.
                    rollback(&self.db, transaction).await;
                    return Ok(());
                }
                self.db
                    .operation("UPDATE", "products")
                    .run(
                        sqlx::query(
                            "UPDATE products SET stock = stock + (SELECT quantity \
                             FROM order_items WHERE order_id = $1 AND product_id = products.id) \
                             WHERE id IN (SELECT product_id FROM order_items WHERE order_id = $1)",
                        )
                        .bind(order_id)
                        .execute(&mut *transaction),
                        error_type,
                    )
                    .await?;
                self.db
                    .statement("COMMIT")
                    .run(transaction.commit(), error_type)
                    .await
            }
            .await
        })
        .map_err(|error| self.failure(error))
    }

    /// One page of `user_id`'s orders, newest first, and how many they have in all.
    pub async fn list_orders(
        &self,
        user_id: i64,
        page: PageRequest,
    ) -> Result<(Vec<Order>, u64), StoreError> {
        let offset = i64::try_from(page.offset()).unwrap_or(i64::MAX);
        let (total, rows, items) = on_pool!(self, |pool| {
            async {
                let total: i64 = self
                    .db
                    .operation("SELECT", "orders")
                    .run(
                        sqlx::query_scalar("SELECT COUNT(*) FROM orders WHERE user_id = $1")
                            .bind(user_id)
                            .fetch_one(pool),
                        error_type,
                    )
                    .await?;
                let rows: Vec<OrderRow> = self
                    .db
                    .operation("SELECT", "orders")
                    .run(
                        sqlx::query_as(concat!(
                            "SELECT ",
                            order_columns!(),
                            " FROM orders WHERE user_id = $1 \
                             ORDER BY id DESC LIMIT $2 OFFSET $3"
                        ))
                        .bind(user_id)
                        .bind(i64::from(page.per_page))
                        .bind(offset)
                        .fetch_all(pool),
                        error_type,
                    )
                    .await?;
                let (Some(newest), Some(oldest)) = (rows.first(), rows.last()) else {
                    return Ok((total, rows, Vec::new()));
                };
                let items: Vec<OrderItemRow> = self
                    .db
                    .operation("SELECT", "order_items")
                    .run(
                        sqlx::query_as(
                            "SELECT oi.order_id, oi.product_id, oi.quantity, \
                             oi.unit_price_cents \
                             FROM order_items oi JOIN orders o ON o.id = oi.order_id \
                             WHERE o.user_id = $1 AND o.id BETWEEN $2 AND $3 \
                             ORDER BY oi.order_id, oi.product_id",
                        )
                        .bind(user_id)
                        .bind(oldest.id)
                        .bind(newest.id)
                        .fetch_all(pool),
                        error_type,
                    )
                    .await?;
                Ok::<_, sqlx::Error>((total, rows, items))
            }
            .await
        })
        .map_err(|error| self.failure(error))?;
        let orders = attach_items(rows, items)?;
        Ok((orders, u64::try_from(total).unwrap_or(0)))
    }

    /// The order `order_id` if `user_id` placed it (another user's order is `None`).
    pub async fn get_order(
        &self,
        user_id: i64,
        order_id: i64,
    ) -> Result<Option<Order>, StoreError> {
        let row = on_pool!(self, |pool| {
            self.db
                .operation("SELECT", "orders")
                .run(
                    sqlx::query_as(concat!(
                        "SELECT ",
                        order_columns!(),
                        " FROM orders WHERE id = $1 AND user_id = $2"
                    ))
                    .bind(order_id)
                    .bind(user_id)
                    .fetch_optional(pool),
                    error_type,
                )
                .await
        })
        .map_err(|error| self.failure(error))?;
        self.with_items(row).await
    }
}
