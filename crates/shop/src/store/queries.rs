//! The catalog and account queries, written once for both backends like the order queries
//! ([`super::orders`]): the SQL is the same on SQLite and PostgreSQL (`$n` placeholders work on
//! both), so the macro below expands into each backend's `impl Store`. The one difference is
//! how names compare when a listing is sorted by name: `$name_collation` makes both compare by
//! code point (SQLite's default `BINARY`; PostgreSQL's `COLLATE "C"`, whatever the database's
//! locale).

/// The catalog and account methods of `impl Store for …` (expanded inside that block; the
/// store has `pool` and `db` fields and a `failure` method). `$db` is the sqlx database type.
macro_rules! catalog_and_account_methods {
    ($db:ty, name_collation = $name_collation:literal) => {
        async fn ping(&self) -> Result<(), $crate::store::StoreError> {
            self.db
                .operation("SELECT", "products")
                .run(
                    sqlx::query("SELECT 1 FROM products LIMIT 1").fetch_optional(&self.pool),
                    $crate::store::error_type,
                )
                .await
                .map_err(|error| self.failure(error))?;
            Ok(())
        }

        /// Two statements (count, then the page) outside a transaction: under concurrent
        /// writes the total may be off by the rows written in between, which a listing
        /// tolerates. The `ORDER BY` is one of a closed set of static strings; the category
        /// and the paging are bound values.
        async fn list_products(
            &self,
            query: &$crate::store::ProductQuery,
        ) -> Result<(Vec<$crate::store::Product>, u64), $crate::store::StoreError> {
            use $crate::store::{ProductSort, error_type};
            fn order_by(sort: ProductSort) -> &'static str {
                match sort {
                    ProductSort::Id => "id",
                    ProductSort::PriceAscending => "price_cents, id",
                    ProductSort::PriceDescending => "price_cents DESC, id",
                    ProductSort::NameAscending => concat!("name", $name_collation, ", id"),
                    ProductSort::NameDescending => concat!("name", $name_collation, " DESC, id"),
                }
            }
            let filter = |statement: &mut sqlx::QueryBuilder<$db>| {
                if let Some(category) = &query.category {
                    statement
                        .push(" WHERE category = ")
                        .push_bind(category.as_str().to_owned());
                }
            };

            let mut count = sqlx::QueryBuilder::<$db>::new("SELECT COUNT(*) FROM products");
            filter(&mut count);
            let total: i64 = self
                .db
                .operation("SELECT", "products")
                .run(count.build_query_scalar().fetch_one(&self.pool), error_type)
                .await
                .map_err(|error| self.failure(error))?;

            let offset = i64::try_from(query.page.offset()).unwrap_or(i64::MAX);
            let mut select = sqlx::QueryBuilder::<$db>::new(
                "SELECT id, sku, name, description, category, price_cents, stock FROM products",
            );
            filter(&mut select);
            select
                .push(" ORDER BY ")
                .push(order_by(query.sort))
                .push(" LIMIT ")
                .push_bind(i64::from(query.page.per_page))
                .push(" OFFSET ")
                .push_bind(offset);
            let items: Vec<$crate::store::Product> = self
                .db
                .operation("SELECT", "products")
                .run(select.build_query_as().fetch_all(&self.pool), error_type)
                .await
                .map_err(|error| self.failure(error))?;
            Ok((items, u64::try_from(total).unwrap_or(0)))
        }

        async fn get_product(
            &self,
            id: i64,
        ) -> Result<Option<$crate::store::Product>, $crate::store::StoreError> {
            self.db
                .operation("SELECT", "products")
                .run(
                    sqlx::query_as(
                        "SELECT id, sku, name, description, category, price_cents, stock \
                         FROM products WHERE id = $1",
                    )
                    .bind(id)
                    .fetch_optional(&self.pool),
                    $crate::store::error_type,
                )
                .await
                .map_err(|error| self.failure(error))
        }

        async fn create_user(
            &self,
            user: $crate::store::NewUser<'_>,
        ) -> Result<$crate::store::User, $crate::store::CreateUserError> {
            let inserted = self
                .db
                .operation("INSERT", "users")
                .run(
                    sqlx::query_as(
                        "INSERT INTO users (email, name, token_hash) VALUES ($1, $2, $3) \
                         RETURNING id, email, name",
                    )
                    .bind(user.email.as_str())
                    .bind(user.name.as_str())
                    .bind(user.token_hash.as_str())
                    .fetch_one(&self.pool),
                    $crate::store::error_type,
                )
                .await;
            match inserted {
                Ok(user) => Ok(user),
                Err(error) if $crate::store::is_unique_violation_on(&error, "users", "email") => {
                    Err($crate::store::CreateUserError::EmailTaken)
                }
                Err(error) => Err(self.failure(error).into()),
            }
        }

        async fn user_by_token_hash(
            &self,
            token_hash: &$crate::accounts::TokenHash,
        ) -> Result<Option<$crate::store::User>, $crate::store::StoreError> {
            self.db
                .operation("SELECT", "users")
                .run(
                    sqlx::query_as("SELECT id, email, name FROM users WHERE token_hash = $1")
                        .bind(token_hash.as_str())
                        .fetch_optional(&self.pool),
                    $crate::store::error_type,
                )
                .await
                .map_err(|error| self.failure(error))
        }
    };
}

pub(super) use catalog_and_account_methods;
