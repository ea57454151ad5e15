-- The product catalog (mirror of migrations/sqlite/0001_catalog.sql).
-- Prices are integer cents; stock never goes below zero.
CREATE TABLE products (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sku         TEXT   NOT NULL UNIQUE,
    name        TEXT   NOT NULL,
    description TEXT   NOT NULL,
    category    TEXT   NOT NULL,
    price_cents BIGINT NOT NULL CHECK (price_cents >= 0),
    stock       BIGINT NOT NULL CHECK (stock >= 0)
);

CREATE INDEX products_category_id ON products (category, id);
