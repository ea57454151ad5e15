//! Storage: the [`Store`] trait the handlers use, and one implementation per database.
//!
//! [`Backend`] picks the implementation from `DATABASE_URL`: SQLite ([`SqliteStore`], the
//! default, one file under `data/`) or PostgreSQL ([`PostgresStore`]). Both behave the same (the
//! same integration tests run against each); each has its migrations under
//! `migrations/<backend>/`, applied on start, and seeds the same catalog. The queries
//! themselves are written once for both (`queries.rs`, `orders.rs`): the SQL is the same and
//! `$n` placeholders work on SQLite too; the backend files hold connecting, migrating and
//! seeding.
//!
//! Every statement runs through [`telemetry::db::DbInstruments`], so it gets a CLIENT span (a
//! child of the request's SERVER span) and a `db.client.operation.duration` sample. Only the
//! operation and the table are recorded, never bound values.

mod orders;
pub mod postgres;
mod queries;
mod seed;
pub mod sqlite;

use std::fmt;
use std::future::Future;
use std::path::PathBuf;

use serde::Serialize;
use telemetry::Telemetry;
use telemetry::config::ConfigError;
use utoipa::ToSchema;

use crate::accounts::{TokenHash, UserEmail, UserName};
use crate::catalog::Category;
use crate::config::{ShopConfig, redact_url};
pub(crate) use orders::now_ms;
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// A product of the catalog, with its current stock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, ToSchema)]
pub struct Product {
    /// Database id (positive).
    #[schema(minimum = 1, example = 3)]
    pub id: i64,
    /// Stock-keeping unit, unique.
    #[schema(example = "COF-003")]
    pub sku: String,
    /// Display name.
    #[schema(example = "Sumatra Mandheling")]
    pub name: String,
    /// One or two sentences for the product page.
    pub description: String,
    /// Category slug, e.g. `coffee`.
    #[schema(example = "coffee")]
    pub category: String,
    /// Price in cents of the shop's currency.
    #[schema(minimum = 0, example = 1350)]
    pub price_cents: i64,
    /// Units in stock (never negative).
    #[schema(minimum = 0, example = 80)]
    pub stock: i64,
}

/// A registered user. Never holds the token (only its hash is stored, and it is never read
/// back). `Debug` hides the email and the name.
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct User {
    /// Database id (positive).
    pub id: i64,
    /// Normalised (lower-case) email address, unique.
    pub email: String,
    /// Display name.
    pub name: String,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("email", &"[REDACTED]")
            .field("name", &"[REDACTED]")
            .finish()
    }
}

/// A user to register: validated values and the hash of the user's new token.
#[derive(Debug, Clone, Copy)]
pub struct NewUser<'a> {
    /// The (unique) email address.
    pub email: &'a UserEmail,
    /// The display name.
    pub name: &'a UserName,
    /// SHA-256 of the token handed to the user.
    pub token_hash: &'a TokenHash,
}

/// Why a user could not be registered.
#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    /// Another user has this email address (the unique constraint said so: no race).
    #[error("the email address is already registered")]
    EmailTaken,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Which page of a listing to read. Construct it from validated input: `page >= 1` and
/// `per_page >= 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// 1-based page number.
    pub page: u32,
    /// Items per page.
    pub per_page: u32,
}

impl PageRequest {
    /// How many items precede this page.
    pub fn offset(&self) -> u64 {
        u64::from(self.page.saturating_sub(1)) * u64::from(self.per_page)
    }
}

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    /// Stock reserved, payment not settled yet.
    Pending,
    /// Charged: the order is placed.
    Paid,
    /// Not charged; its stock was given back.
    Failed,
}

impl OrderStatus {
    /// The value stored in `orders.status`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Paid => "paid",
            Self::Failed => "failed",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "pending" => Some(Self::Pending),
            "paid" => Some(Self::Paid),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// Why a failed order failed (`orders.failure_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OrderFailure {
    /// The provider declined the charge: final (a retry with the same key replays it).
    Declined,
    /// The provider failed: a retry with the same `Idempotency-Key` tries the same order again.
    Unavailable,
    /// The provider did not answer in time: a retry with the same key tries again (the
    /// provider's own idempotency key makes sure it charges at most once).
    Timeout,
}

impl OrderFailure {
    /// The value stored in `orders.failure_reason`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Declined => "declined",
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
        }
    }

    /// Whether a retried checkout may try this order again.
    pub const fn is_transient(self) -> bool {
        !matches!(self, Self::Declined)
    }

    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "declined" => Some(Self::Declined),
            "unavailable" => Some(Self::Unavailable),
            "timeout" => Some(Self::Timeout),
            _ => None,
        }
    }
}

/// One line of an order: the price is the one the product had when the order was placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct OrderItem {
    /// The product.
    pub product_id: i64,
    /// Units (≥ 1).
    pub quantity: i64,
    /// Price of one unit, in cents.
    pub unit_price_cents: i64,
}

/// An order with its lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// Database id (positive).
    pub id: i64,
    /// The user who placed it.
    pub user_id: i64,
    /// Where it stands.
    pub status: OrderStatus,
    /// Sum of the lines, in cents.
    pub total_cents: i64,
    /// Set when `status` is `failed`.
    pub failure_reason: Option<OrderFailure>,
    /// The `Idempotency-Key` of every charge attempt for this order (random, 32 hex).
    pub payment_key: String,
    /// The provider's charge id, set when `status` is `paid`.
    pub payment_id: Option<String>,
    /// Hex SHA-256 of the normalised request (tells a retry from a reused key).
    pub request_hash: String,
    /// The lines, by product id.
    pub items: Vec<OrderItem>,
}

/// One product and quantity asked for at checkout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestedItem {
    /// The product (positive).
    pub product_id: i64,
    /// Units (positive).
    pub quantity: i64,
}

/// An order to write as `pending`, reserving its stock.
#[derive(Debug, Clone, Copy)]
pub struct NewOrder<'a> {
    /// The buyer.
    pub user_id: i64,
    /// The client's `Idempotency-Key`, if it sent one.
    pub idempotency_key: Option<&'a str>,
    /// Hex SHA-256 of the normalised request.
    pub request_hash: &'a str,
    /// The provider idempotency key of the order's charges (random, 32 hex characters).
    pub payment_key: &'a str,
    /// Sorted by product id, each product once.
    pub items: &'a [RequestedItem],
}

/// Why stock could not be reserved for an order.
#[derive(Debug, thiserror::Error)]
pub enum ReserveError {
    /// No product has this id.
    #[error("no product with id {product_id}")]
    UnknownProduct {
        /// The id asked for.
        product_id: i64,
    },
    /// The product has fewer units in stock than asked for.
    #[error("not enough stock of product {product_id}")]
    OutOfStock {
        /// The product.
        product_id: i64,
    },
    /// The user already has an order with this idempotency key (read it and decide).
    #[error("the idempotency key is already used by another order of this user")]
    KeyInUse,
    /// The order is not in a state that can be retried (another request took it over).
    #[error("the order cannot be retried in its current state")]
    NotRetryable,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How a product listing is ordered. Every order ends with the product id, so equal prices or
/// names keep a stable order and paging neither repeats nor skips a product.
///
/// Names compare by Unicode code point (case-sensitive), the same on every backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum ProductSort {
    /// By id, ascending (`id`, the default).
    #[default]
    Id,
    /// Cheapest first (`price`), then by id.
    PriceAscending,
    /// Most expensive first (`-price`), then by id.
    PriceDescending,
    /// By name, A to Z (`name`), then by id.
    NameAscending,
    /// By name, Z to A (`-name`), then by id.
    NameDescending,
}

impl ProductSort {
    /// Every order, in the order the API documents them.
    pub const ALL: [Self; 5] = [
        Self::Id,
        Self::PriceAscending,
        Self::PriceDescending,
        Self::NameAscending,
        Self::NameDescending,
    ];

    /// The value of the `sort` query parameter that asks for this order.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::PriceAscending => "price",
            Self::PriceDescending => "-price",
            Self::NameAscending => "name",
            Self::NameDescending => "-name",
        }
    }

    /// The order named by a `sort` query value (exact match), if any.
    pub fn from_query_value(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|sort| sort.as_str() == raw)
    }
}

/// What a product listing asks for: a page of the products of one category (or of all), in
/// one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductQuery {
    /// Which page.
    pub page: PageRequest,
    /// Only products of this category; `None` for all.
    pub category: Option<Category>,
    /// The order of the listing.
    pub sort: ProductSort,
}

/// Why a storage operation failed, in the terms the HTTP layer needs to answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Every pooled connection stayed busy for the whole acquire timeout (overload).
    #[error("no database connection became free within the acquire timeout")]
    PoolExhausted,
    /// The database cannot be reached (closed pool, I/O error, crashed worker).
    #[error("the database is unreachable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// Anything else: a bug, a schema mismatch, corrupt data.
    #[error("unexpected database error: {0}")]
    Unexpected(#[source] sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::PoolTimedOut => Self::PoolExhausted,
            sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Tls(_) => Self::Unavailable(error),
            other => Self::Unexpected(other),
        }
    }
}

impl StoreError {
    /// Like `From<sqlx::Error>`, but tells an overloaded pool from an unreachable database:
    /// sqlx reports both as an acquire timeout, and only a pool at its size limit is
    /// exhausted — with room to spare, every attempt to open a connection failed.
    pub(crate) fn from_pool<DB: sqlx::Database>(error: sqlx::Error, pool: &sqlx::Pool<DB>) -> Self {
        match error {
            sqlx::Error::PoolTimedOut if pool.size() < pool.options().get_max_connections() => {
                Self::Unavailable(error)
            }
            other => other.into(),
        }
    }
}

/// What the shop needs from its database. Implemented once per backend.
pub trait Store: Clone + Send + Sync + 'static {
    /// Succeeds when the database answers a query on the catalog (readiness).
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// One page of the products `query` selects, in its order, and the number of products it
    /// selects in all pages.
    fn list_products(
        &self,
        query: &ProductQuery,
    ) -> impl Future<Output = Result<(Vec<Product>, u64), StoreError>> + Send;

    /// The product with `id`, if there is one.
    fn get_product(
        &self,
        id: i64,
    ) -> impl Future<Output = Result<Option<Product>, StoreError>> + Send;

    /// Registers a user; fails with [`CreateUserError::EmailTaken`] when the email is in use.
    fn create_user(
        &self,
        user: NewUser<'_>,
    ) -> impl Future<Output = Result<User, CreateUserError>> + Send;

    /// The user whose token hashes to `token_hash`, if any.
    fn user_by_token_hash(
        &self,
        token_hash: &TokenHash,
    ) -> impl Future<Output = Result<Option<User>, StoreError>> + Send;

    /// In one transaction: takes each item's quantity from its product's stock (never below
    /// zero, whatever runs concurrently) and writes the order as `pending` at the current
    /// prices. Nothing is changed when it fails.
    fn reserve_order(
        &self,
        order: NewOrder<'_>,
    ) -> impl Future<Output = Result<Order, ReserveError>> + Send;

    /// In one transaction: turns a `failed` order with a transient reason back into `pending`,
    /// reserving its stock again ([`ReserveError::NotRetryable`] when it is not in that state).
    fn retry_order(
        &self,
        order_id: i64,
    ) -> impl Future<Output = Result<Order, ReserveError>> + Send;

    /// Takes over a `pending` order whose stock was reserved before `reserved_before_ms` (Unix
    /// ms): its checkout was abandoned (a crash, a failed settlement). Marks it reserved now
    /// (so one request wins) and returns it; `None` when it is not pending or not that old.
    fn take_over_order(
        &self,
        order_id: i64,
        reserved_before_ms: i64,
    ) -> impl Future<Output = Result<Option<Order>, StoreError>> + Send;

    /// The order `user_id` placed with `idempotency_key`, if any.
    fn order_by_idempotency_key(
        &self,
        user_id: i64,
        idempotency_key: &str,
    ) -> impl Future<Output = Result<Option<Order>, StoreError>> + Send;

    /// `pending` → `paid` with the provider's charge id (also succeeds when the order is
    /// already paid with this charge id).
    fn mark_order_paid(
        &self,
        order_id: i64,
        payment_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// In one transaction: `pending` → `failed` and the order's stock given back.
    fn mark_order_failed(
        &self,
        order_id: i64,
        reason: OrderFailure,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// One page of `user_id`'s orders, newest first, and how many they have in all.
    fn list_orders(
        &self,
        user_id: i64,
        page: PageRequest,
    ) -> impl Future<Output = Result<(Vec<Order>, u64), StoreError>> + Send;

    /// The order `order_id` if `user_id` placed it (another user's order is `None`).
    fn get_order(
        &self,
        user_id: i64,
        order_id: i64,
    ) -> impl Future<Output = Result<Option<Order>, StoreError>> + Send;
}

/// The store chosen by `DATABASE_URL`.
#[derive(Debug, Clone)]
pub enum Backend {
    /// `sqlite:…`
    Sqlite(SqliteStore),
    /// `postgres://…` or `postgresql://…`
    Postgres(PostgresStore),
}

impl Backend {
    /// Connects to the database of `config.database_url`, applies the migrations and seeds the
    /// catalog on first start.
    pub async fn open(config: &ShopConfig, telemetry: &Telemetry) -> Result<Self, OpenError> {
        let url = config.database_url.as_str();
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite(SqliteStore::open(config, telemetry).await?))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres(
                PostgresStore::open(config, telemetry).await?,
            ))
        } else {
            Err(OpenError::Config(ConfigError::new(
                "DATABASE_URL",
                redact_url(url),
                "a sqlite: URL (e.g. sqlite://data/shop.db?mode=rwc) or a postgres:// URL",
            )))
        }
    }

    /// `db.system.name` of this backend: `sqlite` or `postgresql`.
    pub fn system_name(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => sqlite::SYSTEM_NAME,
            Self::Postgres(_) => postgres::SYSTEM_NAME,
        }
    }

    /// Closes every pooled connection; later operations fail with [`StoreError::Unavailable`].
    pub async fn close(&self) {
        match self {
            Self::Sqlite(store) => store.close().await,
            Self::Postgres(store) => store.close().await,
        }
    }
}

impl Store for Backend {
    async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(store) => store.ping().await,
            Self::Postgres(store) => store.ping().await,
        }
    }

    async fn list_products(&self, query: &ProductQuery) -> Result<(Vec<Product>, u64), StoreError> {
        match self {
            Self::Sqlite(store) => store.list_products(query).await,
            Self::Postgres(store) => store.list_products(query).await,
        }
    }

    async fn get_product(&self, id: i64) -> Result<Option<Product>, StoreError> {
        match self {
            Self::Sqlite(store) => store.get_product(id).await,
            Self::Postgres(store) => store.get_product(id).await,
        }
    }

    async fn create_user(&self, user: NewUser<'_>) -> Result<User, CreateUserError> {
        match self {
            Self::Sqlite(store) => store.create_user(user).await,
            Self::Postgres(store) => store.create_user(user).await,
        }
    }

    async fn user_by_token_hash(&self, token_hash: &TokenHash) -> Result<Option<User>, StoreError> {
        match self {
            Self::Sqlite(store) => store.user_by_token_hash(token_hash).await,
            Self::Postgres(store) => store.user_by_token_hash(token_hash).await,
        }
    }

    async fn reserve_order(&self, order: NewOrder<'_>) -> Result<Order, ReserveError> {
        match self {
            Self::Sqlite(store) => store.reserve_order(order).await,
            Self::Postgres(store) => store.reserve_order(order).await,
        }
    }

    async fn retry_order(&self, order_id: i64) -> Result<Order, ReserveError> {
        match self {
            Self::Sqlite(store) => store.retry_order(order_id).await,
            Self::Postgres(store) => store.retry_order(order_id).await,
        }
    }

    async fn take_over_order(
        &self,
        order_id: i64,
        reserved_before_ms: i64,
    ) -> Result<Option<Order>, StoreError> {
        match self {
            Self::Sqlite(store) => store.take_over_order(order_id, reserved_before_ms).await,
            Self::Postgres(store) => store.take_over_order(order_id, reserved_before_ms).await,
        }
    }

    async fn order_by_idempotency_key(
        &self,
        user_id: i64,
        idempotency_key: &str,
    ) -> Result<Option<Order>, StoreError> {
        match self {
            Self::Sqlite(store) => {
                store
                    .order_by_idempotency_key(user_id, idempotency_key)
                    .await
            }
            Self::Postgres(store) => {
                store
                    .order_by_idempotency_key(user_id, idempotency_key)
                    .await
            }
        }
    }

    async fn mark_order_paid(&self, order_id: i64, payment_id: &str) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(store) => store.mark_order_paid(order_id, payment_id).await,
            Self::Postgres(store) => store.mark_order_paid(order_id, payment_id).await,
        }
    }

    async fn mark_order_failed(
        &self,
        order_id: i64,
        reason: OrderFailure,
    ) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(store) => store.mark_order_failed(order_id, reason).await,
            Self::Postgres(store) => store.mark_order_failed(order_id, reason).await,
        }
    }

    async fn list_orders(
        &self,
        user_id: i64,
        page: PageRequest,
    ) -> Result<(Vec<Order>, u64), StoreError> {
        match self {
            Self::Sqlite(store) => store.list_orders(user_id, page).await,
            Self::Postgres(store) => store.list_orders(user_id, page).await,
        }
    }

    async fn get_order(&self, user_id: i64, order_id: i64) -> Result<Option<Order>, StoreError> {
        match self {
            Self::Sqlite(store) => store.get_order(user_id, order_id).await,
            Self::Postgres(store) => store.get_order(user_id, order_id).await,
        }
    }
}

/// Why the store could not be opened at start-up.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// `DATABASE_URL` names something this build cannot use.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The directory of the SQLite file could not be created.
    #[error("cannot create the database directory {}: {source}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why not.
        #[source]
        source: std::io::Error,
    },
    /// The first connection failed.
    #[error("cannot connect to the database at {target}: {source}{}", cause.as_deref().map(|c| format!(" (a direct attempt: {c})")).unwrap_or_default())]
    Connect {
        /// Where: `host:port` (PostgreSQL; never the user or password) or the SQLite file.
        target: String,
        /// What a direct connection attempt said when the pool only reported its timeout.
        cause: Option<String>,
        /// The pool's error.
        #[source]
        source: sqlx::Error,
    },
    /// A migration failed (or the database holds migrations this build does not know).
    #[error("cannot migrate the database: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// Seeding the catalog failed.
    #[error("cannot seed the catalog: {0}")]
    Seed(#[source] sqlx::Error),
}

/// Whether `error` is a unique-constraint violation on `table.column` (PostgreSQL names the
/// constraint `{table}_{column}_key`; SQLite says `UNIQUE constraint failed: table.column`).
pub(crate) fn is_unique_violation_on(error: &sqlx::Error, table: &str, column: &str) -> bool {
    let sqlx::Error::Database(error) = error else {
        return false;
    };
    if error.kind() != sqlx::error::ErrorKind::UniqueViolation {
        return false;
    }
    match error.constraint() {
        Some(constraint) => constraint == format!("{table}_{column}_key"),
        None => error
            .message()
            .split_once("UNIQUE constraint failed: ")
            .is_some_and(|(_, columns)| {
                columns
                    .split(", ")
                    .any(|c| c == format!("{table}.{column}"))
            }),
    }
}

/// `error.type` of a failed database operation on its CLIENT span and duration metric: a
/// small closed set, never the error message.
pub(crate) fn error_type(error: &sqlx::Error) -> &'static str {
    match error {
        sqlx::Error::PoolTimedOut => "pool_timed_out",
        sqlx::Error::PoolClosed => "pool_closed",
        sqlx::Error::Io(_) => "io",
        sqlx::Error::Tls(_) => "tls",
        sqlx::Error::WorkerCrashed => "worker_crashed",
        sqlx::Error::Database(error) => match error.kind() {
            sqlx::error::ErrorKind::UniqueViolation => "unique_violation",
            sqlx::error::ErrorKind::ForeignKeyViolation => "foreign_key_violation",
            sqlx::error::ErrorKind::NotNullViolation => "not_null_violation",
            sqlx::error::ErrorKind::CheckViolation => "check_violation",
            _ => "database",
        },
        sqlx::Error::RowNotFound => "row_not_found",
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => "decode",
        sqlx::Error::Protocol(_) => "protocol",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn page_offsets_count_the_items_before_the_page() {
        assert_eq!(
            PageRequest {
                page: 1,
                per_page: 20
            }
            .offset(),
            0
        );
        assert_eq!(
            PageRequest {
                page: 3,
                per_page: 20
            }
            .offset(),
            40
        );
        assert_eq!(
            PageRequest {
                page: u32::MAX,
                per_page: 100
            }
            .offset(),
            (u64::from(u32::MAX) - 1) * 100
        );
    }

    #[test]
    fn sort_values_round_trip_and_nothing_else_is_a_sort() {
        for sort in ProductSort::ALL {
            assert_eq!(ProductSort::from_query_value(sort.as_str()), Some(sort));
        }
        assert_eq!(ProductSort::default(), ProductSort::Id);
        for raw in [
            "",
            "Price",
            "+price",
            "price ",
            "-id",
            "id,name",
            "price_cents",
        ] {
            assert_eq!(ProductSort::from_query_value(raw), None, "{raw:?}");
        }
    }

    #[test]
    fn pool_timeouts_are_exhaustion_and_closed_pools_are_unavailability() {
        assert!(matches!(
            StoreError::from(sqlx::Error::PoolTimedOut),
            StoreError::PoolExhausted
        ));
        assert!(matches!(
            StoreError::from(sqlx::Error::PoolClosed),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            StoreError::from(sqlx::Error::RowNotFound),
            StoreError::Unexpected(_)
        ));
    }

    #[tokio::test]
    async fn unknown_database_schemes_are_refused_naming_database_url() {
        let (telemetry, _guard) = Telemetry::builder(telemetry::TelemetryConfig::for_tests("shop"))
            .log_sink(telemetry::log_sink::LogSink::memory())
            .build()
            .unwrap();
        let config = ShopConfig {
            database_url: "mysql://shop:hunter2@db/shop".to_owned(),
            ..ShopConfig::from_lookup(telemetry::config::Persona::Local, |_| None).unwrap()
        };
        let Err(OpenError::Config(error)) = Backend::open(&config, &telemetry).await else {
            panic!("a mysql URL must be refused with a configuration error");
        };
        assert_eq!(error.variable, "DATABASE_URL");
        assert!(error.allowed.contains("postgres://"));
        assert!(!error.to_string().contains("hunter2"));
    }

    #[test]
    fn user_debug_output_hides_email_and_name() {
        let user = User {
            id: 7,
            email: "ann@example.com".to_owned(),
            name: "Ann".to_owned(),
        };
        let debug = format!("{user:?}");
        assert!(debug.contains("id: 7"), "{debug}");
        assert!(!debug.contains("ann@") && !debug.contains("Ann"), "{debug}");
    }
}
