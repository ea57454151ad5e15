//! The order queries, written once for both backends: the SQL is the same on SQLite and
//! PostgreSQL (`$n` placeholders work on both), so the two macros below expand into each
//! backend's `impl` blocks. Only the statement that opens a write transaction differs
//! (`BEGIN IMMEDIATE` on SQLite, so concurrent checkouts queue for the write lock instead of
//! failing to upgrade a read lock; plain `BEGIN` on PostgreSQL, where row locks do the work).
//!
//! Overselling is impossible by construction: stock is taken with
//! `UPDATE products SET stock = stock - q WHERE id = p AND stock >= q`, which either takes
//! the units or changes nothing, and items are taken in product-id order so two checkouts
//! never wait for each other's rows in opposite orders (no deadlock on PostgreSQL).

use super::{Order, OrderFailure, OrderItem, OrderStatus, StoreError};

/// The columns [`OrderRow`] reads, in its field order (a macro, for `concat!`).
macro_rules! order_columns {
    () => {
        "id, user_id, status, total_cents, failure_reason, payment_key, payment_id, request_hash"
    };
}

/// A row of `orders` as stored.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct OrderRow {
    pub(super) id: i64,
    pub(super) user_id: i64,
    pub(super) status: String,
    pub(super) total_cents: i64,
    pub(super) failure_reason: Option<String>,
    pub(super) payment_key: String,
    pub(super) payment_id: Option<String>,
    pub(super) request_hash: String,
}

impl OrderRow {
    /// The order, with its lines.
    pub(super) fn into_order(self, items: Vec<OrderItem>) -> Result<Order, StoreError> {
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
pub(super) struct OrderItemRow {
    pub(super) order_id: i64,
    pub(super) product_id: i64,
    pub(super) quantity: i64,
    pub(super) unit_price_cents: i64,
}

/// Whether `error` is the unique `(user_id, idempotency_key)` constraint of `orders`
/// (PostgreSQL names it; SQLite lists the columns).
pub(super) fn is_idempotency_key_violation(error: &sqlx::Error) -> bool {
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
pub(super) fn attach_items(
    rows: Vec<OrderRow>,
    items: Vec<OrderItemRow>,
) -> Result<Vec<Order>, StoreError> {
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

/// Inherent helpers of a store (`$store` has `pool` and `db` fields and a `failure` method;
/// `$db` is its sqlx database type).
macro_rules! order_helpers {
    ($store:ty, $db:ty) => {
        impl $store {
            /// The lines of order `order_id`, by product id, read through `executor` (the pool,
            /// or a transaction that just changed the order).
            async fn order_items<'e, E>(
                &self,
                executor: E,
                order_id: i64,
            ) -> Result<Vec<$crate::store::OrderItem>, $crate::store::StoreError>
            where
                E: sqlx::Executor<'e, Database = $db>,
            {
                self.db
                    .operation("SELECT", "order_items")
                    .run(
                        sqlx::query_as(
                            "SELECT product_id, quantity, unit_price_cents FROM order_items \
                             WHERE order_id = $1 ORDER BY product_id",
                        )
                        .bind(order_id)
                        .fetch_all(executor),
                        $crate::store::error_type,
                    )
                    .await
                    .map_err(|error| self.failure(error))
            }

            /// Takes `quantity` units of `product_id` from its stock through `executor` (a
            /// transaction) and returns the product's price — or changes nothing and returns
            /// `None` when the stock is too low or there is no such product. The one statement
            /// that keeps stock from going below zero, whatever runs concurrently.
            async fn take_stock<'e, E>(
                &self,
                executor: E,
                product_id: i64,
                quantity: i64,
            ) -> Result<Option<i64>, $crate::store::StoreError>
            where
                E: sqlx::Executor<'e, Database = $db>,
            {
                self.db
                    .operation("UPDATE", "products")
                    .run(
                        sqlx::query_scalar(
                            "UPDATE products SET stock = stock - $1 \
                             WHERE id = $2 AND stock >= $1 RETURNING price_cents",
                        )
                        .bind(quantity)
                        .bind(product_id)
                        .fetch_optional(executor),
                        $crate::store::error_type,
                    )
                    .await
                    .map_err(|error| self.failure(error))
            }

            /// Rolls `transaction` back now, with its own span. (Dropping it leaves the rollback
            /// to sqlx's drop handling, which may only send it when the connection is next used,
            /// holding SQLite's write lock or PostgreSQL's row locks meanwhile.)
            async fn rollback<DB: sqlx::Database>(&self, transaction: sqlx::Transaction<'_, DB>) {
                let _ = self
                    .db
                    .statement("ROLLBACK")
                    .run(transaction.rollback(), $crate::store::error_type)
                    .await;
            }

            /// `row` with its lines.
            async fn with_items(
                &self,
                row: Option<$crate::store::orders::OrderRow>,
            ) -> Result<Option<$crate::store::Order>, $crate::store::StoreError> {
                match row {
                    None => Ok(None),
                    Some(row) => {
                        let items = self.order_items(&self.pool, row.id).await?;
                        row.into_order(items).map(Some)
                    }
                }
            }
        }
    };
}

/// The order methods of `impl Store for …` (expanded inside that block). `$db` is the sqlx
/// database type, `$begin` the statement that opens a write transaction.
macro_rules! order_methods {
    ($db:ty, $begin:literal) => {
        async fn reserve_order(
            &self,
            order: $crate::store::NewOrder<'_>,
        ) -> Result<$crate::store::Order, $crate::store::ReserveError> {
            use $crate::store::{ReserveError, error_type};
            let mut transaction = self
                .db
                .statement("BEGIN")
                .run(self.pool.begin_with($begin), error_type)
                .await
                .map_err(|error| self.failure(error))?;
            let reserved = async {
                let mut items = Vec::with_capacity(order.items.len());
                let mut total_cents: i64 = 0;
                for item in order.items {
                    let price = self
                        .take_stock(&mut *transaction, item.product_id, item.quantity)
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
                            .await
                            .map_err(|error| self.failure(error))?;
                        return Err(match exists {
                            Some(_) => ReserveError::OutOfStock {
                                product_id: item.product_id,
                            },
                            None => ReserveError::UnknownProduct {
                                product_id: item.product_id,
                            },
                        });
                    };
                    total_cents = total_cents.saturating_add(price.saturating_mul(item.quantity));
                    items.push($crate::store::OrderItem {
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
                            "INSERT INTO orders (user_id, status, total_cents, idempotency_key, \
                             request_hash, payment_key, reserved_at_ms) \
                             VALUES ($1, 'pending', $2, $3, $4, $5, $6) RETURNING id",
                        )
                        .bind(order.user_id)
                        .bind(total_cents)
                        .bind(order.idempotency_key)
                        .bind(order.request_hash)
                        .bind(order.payment_key)
                        .bind($crate::store::orders::now_ms())
                        .fetch_one(&mut *transaction),
                        error_type,
                    )
                    .await;
                let id: i64 = match inserted {
                    Ok(id) => id,
                    Err(error) if $crate::store::orders::is_idempotency_key_violation(&error) => {
                        return Err(ReserveError::KeyInUse);
                    }
                    Err(error) => return Err(self.failure(error).into()),
                };
                let mut insert = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO order_items (order_id, product_id, quantity, unit_price_cents) ",
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
                    .await
                    .map_err(|error| self.failure(error))?;
                Ok::<_, ReserveError>((id, items, total_cents))
            }
            .await;
            let (id, items, total_cents) = match reserved {
                Ok(reserved) => reserved,
                Err(error) => {
                    self.rollback(transaction).await;
                    return Err(error);
                }
            };
            self.db
                .statement("COMMIT")
                .run(transaction.commit(), error_type)
                .await
                .map_err(|error| self.failure(error))?;
            Ok($crate::store::Order {
                id,
                user_id: order.user_id,
                status: $crate::store::OrderStatus::Pending,
                total_cents,
                failure_reason: None,
                payment_key: order.payment_key.to_owned(),
                payment_id: None,
                request_hash: order.request_hash.to_owned(),
                items,
            })
        }

        async fn retry_order(
            &self,
            order_id: i64,
        ) -> Result<$crate::store::Order, $crate::store::ReserveError> {
            use $crate::store::{ReserveError, error_type};
            let mut transaction = self
                .db
                .statement("BEGIN")
                .run(self.pool.begin_with($begin), error_type)
                .await
                .map_err(|error| self.failure(error))?;
            let retried = async {
                let row: Option<$crate::store::orders::OrderRow> = self
                    .db
                    .operation("UPDATE", "orders")
                    .run(
                        sqlx::query_as(concat!(
                            "UPDATE orders SET status = 'pending', failure_reason = NULL, \
                             reserved_at_ms = $2 WHERE id = $1 AND status = 'failed' \
                             AND failure_reason IN ('unavailable', 'timeout') RETURNING ",
                            $crate::store::orders::order_columns!()
                        ))
                        .bind(order_id)
                        .bind($crate::store::orders::now_ms())
                        .fetch_optional(&mut *transaction),
                        error_type,
                    )
                    .await
                    .map_err(|error| self.failure(error))?;
                let Some(row) = row else {
                    return Err(ReserveError::NotRetryable);
                };
                let items = self.order_items(&mut *transaction, order_id).await?;
                for item in &items {
                    let taken = self
                        .take_stock(&mut *transaction, item.product_id, item.quantity)
                        .await?;
                    if taken.is_none() {
                        return Err(ReserveError::OutOfStock {
                            product_id: item.product_id,
                        });
                    }
                }
                Ok::<_, ReserveError>((row, items))
            }
            .await;
            let (row, items) = match retried {
                Ok(retried) => retried,
                Err(error) => {
                    self.rollback(transaction).await;
                    return Err(error);
                }
            };
            self.db
                .statement("COMMIT")
                .run(transaction.commit(), error_type)
                .await
                .map_err(|error| self.failure(error))?;
            Ok(row.into_order(items)?)
        }

        async fn take_over_order(
            &self,
            order_id: i64,
            reserved_before_ms: i64,
        ) -> Result<Option<$crate::store::Order>, $crate::store::StoreError> {
            let row = self
                .db
                .operation("UPDATE", "orders")
                .run(
                    sqlx::query_as(concat!(
                        "UPDATE orders SET reserved_at_ms = $2 \
                         WHERE id = $1 AND status = 'pending' AND reserved_at_ms < $3 \
                         RETURNING ",
                        $crate::store::orders::order_columns!()
                    ))
                    .bind(order_id)
                    .bind($crate::store::orders::now_ms())
                    .bind(reserved_before_ms)
                    .fetch_optional(&self.pool),
                    $crate::store::error_type,
                )
                .await
                .map_err(|error| self.failure(error))?;
            self.with_items(row).await
        }

        async fn order_by_idempotency_key(
            &self,
            user_id: i64,
            idempotency_key: &str,
        ) -> Result<Option<$crate::store::Order>, $crate::store::StoreError> {
            let row = self
                .db
                .operation("SELECT", "orders")
                .run(
                    sqlx::query_as(concat!(
                        "SELECT ",
                        $crate::store::orders::order_columns!(),
                        " FROM orders WHERE user_id = $1 AND idempotency_key = $2"
                    ))
                    .bind(user_id)
                    .bind(idempotency_key)
                    .fetch_optional(&self.pool),
                    $crate::store::error_type,
                )
                .await
                .map_err(|error| self.failure(error))?;
            self.with_items(row).await
        }

        async fn mark_order_paid(
            &self,
            order_id: i64,
            payment_id: &str,
        ) -> Result<(), $crate::store::StoreError> {
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
                    .execute(&self.pool),
                    $crate::store::error_type,
                )
                .await
                .map_err(|error| self.failure(error))?;
            if done.rows_affected() == 1 {
                return Ok(());
            }
            // Not pending: fine if it is already paid with this very charge (a request that
            // took the order over settled it first with the same provider answer).
            let settled: Option<Option<String>> = self
                .db
                .operation("SELECT", "orders")
                .run(
                    sqlx::query_scalar(
                        "SELECT payment_id FROM orders WHERE id = $1 AND status = 'paid'",
                    )
                    .bind(order_id)
                    .fetch_optional(&self.pool),
                    $crate::store::error_type,
                )
                .await
                .map_err(|error| self.failure(error))?;
            match settled {
                Some(Some(id)) if id == payment_id => Ok(()),
                _ => Err($crate::store::StoreError::Unexpected(sqlx::Error::RowNotFound)),
            }
        }

        async fn mark_order_failed(
            &self,
            order_id: i64,
            reason: $crate::store::OrderFailure,
        ) -> Result<(), $crate::store::StoreError> {
            use $crate::store::error_type;
            let mut transaction = self
                .db
                .statement("BEGIN")
                .run(self.pool.begin_with($begin), error_type)
                .await
                .map_err(|error| self.failure(error))?;
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
                .await
                .map_err(|error| self.failure(error))?;
            if done.rows_affected() == 0 {
                // Not pending (already settled): its stock is not ours to give back.
                self.rollback(transaction).await;
                return Ok(());
            }
            self.db
                .operation("UPDATE", "products")
                .run(
                    sqlx::query(
                        "UPDATE products SET stock = stock + (SELECT quantity FROM order_items \
                         WHERE order_id = $1 AND product_id = products.id) \
                         WHERE id IN (SELECT product_id FROM order_items WHERE order_id = $1)",
                    )
                    .bind(order_id)
                    .execute(&mut *transaction),
                    error_type,
                )
                .await
                .map_err(|error| self.failure(error))?;
            self.db
                .statement("COMMIT")
                .run(transaction.commit(), error_type)
                .await
                .map_err(|error| self.failure(error))
        }

        async fn list_orders(
            &self,
            user_id: i64,
            page: $crate::store::PageRequest,
        ) -> Result<(Vec<$crate::store::Order>, u64), $crate::store::StoreError> {
            use $crate::store::error_type;
            let total: i64 = self
                .db
                .operation("SELECT", "orders")
                .run(
                    sqlx::query_scalar("SELECT COUNT(*) FROM orders WHERE user_id = $1")
                        .bind(user_id)
                        .fetch_one(&self.pool),
                    error_type,
                )
                .await
                .map_err(|error| self.failure(error))?;
            let offset = i64::try_from(page.offset()).unwrap_or(i64::MAX);
            let rows: Vec<$crate::store::orders::OrderRow> = self
                .db
                .operation("SELECT", "orders")
                .run(
                    sqlx::query_as(concat!(
                        "SELECT ",
                        $crate::store::orders::order_columns!(),
                        " FROM orders WHERE user_id = $1 \
                         ORDER BY id DESC LIMIT $2 OFFSET $3"
                    ))
                    .bind(user_id)
                    .bind(i64::from(page.per_page))
                    .bind(offset)
                    .fetch_all(&self.pool),
                    error_type,
                )
                .await
                .map_err(|error| self.failure(error))?;
            let (Some(newest), Some(oldest)) = (rows.first(), rows.last()) else {
                return Ok((Vec::new(), u64::try_from(total).unwrap_or(0)));
            };
            let items: Vec<$crate::store::orders::OrderItemRow> = self
                .db
                .operation("SELECT", "order_items")
                .run(
                    sqlx::query_as(
                        "SELECT oi.order_id, oi.product_id, oi.quantity, oi.unit_price_cents \
                         FROM order_items oi JOIN orders o ON o.id = oi.order_id \
                         WHERE o.user_id = $1 AND o.id BETWEEN $2 AND $3 \
                         ORDER BY oi.order_id, oi.product_id",
                    )
                    .bind(user_id)
                    .bind(oldest.id)
                    .bind(newest.id)
                    .fetch_all(&self.pool),
                    error_type,
                )
                .await
                .map_err(|error| self.failure(error))?;
            let orders = $crate::store::orders::attach_items(rows, items)?;
            Ok((orders, u64::try_from(total).unwrap_or(0)))
        }

        async fn get_order(
            &self,
            user_id: i64,
            order_id: i64,
        ) -> Result<Option<$crate::store::Order>, $crate::store::StoreError> {
            let row = self
                .db
                .operation("SELECT", "orders")
                .run(
                    sqlx::query_as(concat!(
                        "SELECT ",
                        $crate::store::orders::order_columns!(),
                        " FROM orders WHERE id = $1 AND user_id = $2"
                    ))
                    .bind(order_id)
                    .bind(user_id)
                    .fetch_optional(&self.pool),
                    $crate::store::error_type,
                )
                .await
                .map_err(|error| self.failure(error))?;
            self.with_items(row).await
        }
    };
}

pub(super) use {order_columns, order_helpers, order_methods};
