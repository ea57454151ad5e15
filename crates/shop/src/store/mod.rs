//! Storage: the [`Store`] the handlers use, on SQLite or PostgreSQL.
//!
//! `DATABASE_URL` picks the backend: SQLite (the default, one file under `data/`) or
//! PostgreSQL. Both behave the same (the same integration tests run against each); each has its
//! migrations under `migrations/<backend>/`, applied on start, and seeds the same catalog
//! (`sqlite.rs`, `postgres.rs`: connecting, migrating, seeding). The queries are methods of
//! [`Store`], each written once for both backends (`queries.rs`, `orders.rs`): the SQL is the
//! same and `$n` placeholders work on SQLite too; `on_pool!` runs a body with the backend's
//! pool.
//!
//! Every statement runs through [`telemetry::db::DbInstruments`], so it gets a CLIENT span (a
//! child of the request's SERVER span) and a `db.client.operation.duration` sample. Only the
//! operation and the table are recorded, never bound values.

mod orders;
mod postgres;
mod queries;
mod seed;
mod sqlite;

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;
use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;
use telemetry::Telemetry;
use telemetry::config::ConfigError;
use telemetry::db::DbInstruments;
use utoipa::ToSchema;

use crate::accounts::{TokenHash, UserEmail, UserName};
use crate::catalog::Category;
use crate::config::{ShopConfig, redact_url};
pub(crate) use orders::now_ms;

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

/// The shop's database: a pool of SQLite or PostgreSQL connections (chosen by `DATABASE_URL`)
/// and the instruments every statement runs through. Cheap to clone (the pool is shared).
///
/// Each query is one method (`queries.rs`, `orders.rs`) whose body is written once for both
/// backends: `on_pool!` runs it with the backend's pool.
#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
    db: DbInstruments,
}

/// The connection pool of one backend.
#[derive(Debug, Clone)]
enum Pool {
    /// `sqlite:…`
    Sqlite(SqlitePool),
    /// `postgres://…` or `postgresql://…`
    Postgres(PgPool),
}

/// `on_pool!(store, |pool| body)` evaluates `body` with `pool` bound to `store`'s SQLite or
/// PostgreSQL pool: the one place where a query meets the two backends. `body` is compiled once
/// per backend (sqlx's types differ) and must have the same type for both, e.g.
/// `Result<T, sqlx::Error>` with `T` a row type, a scalar or `rows_affected()`.
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.pool {
            $crate::store::Pool::Sqlite($pool) => $body,
            $crate::store::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

impl Store {
    /// Connects to the database of `config.database_url`, applies the migrations and seeds the
    /// catalog on first start.
    pub async fn open(config: &ShopConfig, telemetry: &Telemetry) -> Result<Self, OpenError> {
        let url = config.database_url.as_str();
        if url.starts_with("sqlite:") {
            sqlite::open(config, telemetry).await
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            postgres::open(config, telemetry).await
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
        match self.pool {
            Pool::Sqlite(_) => sqlite::SYSTEM_NAME,
            Pool::Postgres(_) => postgres::SYSTEM_NAME,
        }
    }

    /// Closes every pooled connection; later operations fail with [`StoreError::Unavailable`].
    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(pool) => pool.close().await,
            Pool::Postgres(pool) => pool.close().await,
        }
    }

    /// The [`StoreError`] of a failed request-time operation.
    fn failure(&self, error: sqlx::Error) -> StoreError {
        match &self.pool {
            Pool::Sqlite(pool) => StoreError::from_pool(error, pool),
            Pool::Postgres(pool) => StoreError::from_pool(error, pool),
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
        let Err(OpenError::Config(error)) = Store::open(&config, &telemetry).await else {
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
