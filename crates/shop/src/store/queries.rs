//! The catalog and account queries, one [`Store`] method each, written once for both backends
//! (the SQL is the same on SQLite and PostgreSQL; `$n` placeholders work on both). The one
//! difference is how names compare when a listing is sorted by name: both compare by code point
//! (SQLite's default `BINARY`; PostgreSQL's `COLLATE "C"`, whatever the database's locale).

use super::{
    CreateUserError, NewUser, Pool, Product, ProductQuery, ProductSort, Store, StoreError, User,
    error_type, is_unique_violation_on, on_pool,
};
use crate::accounts::TokenHash;

/// The `ORDER BY` of a product listing: one of a closed set of static strings.
fn order_by(pool: &Pool, sort: ProductSort) -> &'static str {
    match (sort, pool) {
        (ProductSort::Id, _) => "id",
        (ProductSort::PriceAscending, _) => "price_cents, id",
        (ProductSort::PriceDescending, _) => "price_cents DESC, id",
        (ProductSort::NameAscending, Pool::Sqlite(_)) => "name, id",
        (ProductSort::NameAscending, Pool::Postgres(_)) => "name COLLATE \"C\", id",
        (ProductSort::NameDescending, Pool::Sqlite(_)) => "name DESC, id",
        (ProductSort::NameDescending, Pool::Postgres(_)) => "name COLLATE \"C\" DESC, id",
    }
}

impl Store {
    /// Succeeds when the database answers a query on the catalog (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(self, |pool| {
            self.db
                .operation("SELECT", "products")
                .run(
                    sqlx::query("SELECT 1 FROM products LIMIT 1").fetch_optional(pool),
                    error_type,
                )
                .await
                .map(|_| ())
        })
        .map_err(|error| self.failure(error))
    }

    /// One page of the products `query` selects, in its order, and the number of products it
    /// selects in all pages.
    ///
    /// Two statements (count, then the page) outside a transaction: under concurrent writes
    /// the total may be off by the rows written in between, which a listing tolerates. The
    /// `ORDER BY` is one of a closed set of static strings; the category and the paging are
    /// bound values.
    pub async fn list_products(
        &self,
        query: &ProductQuery,
    ) -> Result<(Vec<Product>, u64), StoreError> {
        let order_by = order_by(&self.pool, query.sort);
        let offset = i64::try_from(query.page.offset()).unwrap_or(i64::MAX);
        let category = query.category.as_ref().map(|c| c.as_str().to_owned());
        let (items, total) = on_pool!(self, |pool| {
            let mut count = sqlx::QueryBuilder::new("SELECT COUNT(*) FROM products");
            let mut select = sqlx::QueryBuilder::new(
                "SELECT id, sku, name, description, category, price_cents, stock FROM products",
            );
            if let Some(category) = &category {
                count.push(" WHERE category = ").push_bind(category.clone());
                select
                    .push(" WHERE category = ")
                    .push_bind(category.clone());
            }
            select
                .push(" ORDER BY ")
                .push(order_by)
                .push(" LIMIT ")
                .push_bind(i64::from(query.page.per_page))
                .push(" OFFSET ")
                .push_bind(offset);
            async {
                let total: i64 = self
                    .db
                    .operation("SELECT", "products")
                    .run(count.build_query_scalar().fetch_one(pool), error_type)
                    .await?;
                let items: Vec<Product> = self
                    .db
                    .operation("SELECT", "products")
                    .run(select.build_query_as().fetch_all(pool), error_type)
                    .await?;
                Ok::<_, sqlx::Error>((items, total))
            }
            .await
        })
        .map_err(|error| self.failure(error))?;
        Ok((items, u64::try_from(total).unwrap_or(0)))
    }

    /// The product with `id`, if there is one.
    pub async fn get_product(&self, id: i64) -> Result<Option<Product>, StoreError> {
        on_pool!(self, |pool| {
            self.db
                .operation("SELECT", "products")
                .run(
                    sqlx::query_as(
                        "SELECT id, sku, name, description, category, price_cents, stock \
                         FROM products WHERE id = $1",
                    )
                    .bind(id)
                    .fetch_optional(pool),
                    error_type,
                )
                .await
        })
        .map_err(|error| self.failure(error))
    }

    /// Registers a user; fails with [`CreateUserError::EmailTaken`] when the email is in use.
    pub async fn create_user(&self, user: NewUser<'_>) -> Result<User, CreateUserError> {
        let inserted = on_pool!(self, |pool| {
            self.db
                .operation("INSERT", "users")
                .run(
                    sqlx::query_as(
                        "INSERT INTO users (email, name, token_hash) VALUES ($1, $2, $3) \
                         RETURNING id, email, name",
                    )
                    .bind(user.email.as_str())
                    .bind(user.name.as_str())
                    .bind(user.token_hash.as_str())
                    .fetch_one(pool),
                    error_type,
                )
                .await
        });
        match inserted {
            Ok(user) => Ok(user),
            Err(error) if is_unique_violation_on(&error, "users", "email") => {
                Err(CreateUserError::EmailTaken)
            }
            Err(error) => Err(self.failure(error).into()),
        }
    }

    /// The user whose token hashes to `token_hash`, if any.
    pub async fn user_by_token_hash(
        &self,
        token_hash: &TokenHash,
    ) -> Result<Option<User>, StoreError> {
        on_pool!(self, |pool| {
            self.db
                .operation("SELECT", "users")
                .run(
                    sqlx::query_as("SELECT id, email, name FROM users WHERE token_hash = $1")
                        .bind(token_hash.as_str())
                        .fetch_optional(pool),
                    error_type,
                )
                .await
        })
        .map_err(|error| self.failure(error))
    }
}
