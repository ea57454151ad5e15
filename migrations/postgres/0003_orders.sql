-- Orders (mirror of migrations/sqlite/0003_orders.sql). An order is written `pending` together
-- with its stock reservation (one transaction), then becomes `paid` or `failed` once the
-- payment provider has answered. A failed order has given its stock back.
--
-- Idempotency: `orders_user_id_idempotency_key_key` makes `(user_id, idempotency_key)` unique
-- (the store recognises that name), so a retried checkout with the same `Idempotency-Key`
-- finds its order instead of creating a second one; `request_hash` (hex SHA-256 of the
-- normalised items) tells a retry from a different checkout reusing the key. `payment_key` (random,
-- 32 hex characters) is the `Idempotency-Key` of every charge attempt for this order, so the
-- provider charges an order at most once however often its payment is retried.
-- `reserved_at_ms` (Unix ms) is when the order's stock was last reserved: a `pending` order whose
-- reservation is older than any checkout can take was abandoned (a crash, a failed settlement),
-- and a retry with its key takes it over.
CREATE TABLE orders (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id         BIGINT NOT NULL REFERENCES users (id),
    status          TEXT   NOT NULL CHECK (status IN ('pending', 'paid', 'failed')),
    total_cents     BIGINT NOT NULL CHECK (total_cents >= 0),
    idempotency_key TEXT,
    request_hash    TEXT   NOT NULL CHECK (length(request_hash) = 64),
    payment_key     TEXT   NOT NULL CHECK (length(payment_key) = 32),
    payment_id      TEXT,
    reserved_at_ms  BIGINT NOT NULL,
    failure_reason  TEXT   CHECK (failure_reason IN ('declined', 'unavailable', 'timeout')),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT orders_user_id_idempotency_key_key UNIQUE (user_id, idempotency_key)
);

CREATE INDEX orders_user_id_id ON orders (user_id, id);

CREATE TABLE order_items (
    order_id         BIGINT NOT NULL REFERENCES orders (id),
    product_id       BIGINT NOT NULL REFERENCES products (id),
    quantity         BIGINT NOT NULL CHECK (quantity > 0),
    unit_price_cents BIGINT NOT NULL CHECK (unit_price_cents >= 0),
    PRIMARY KEY (order_id, product_id)
);
