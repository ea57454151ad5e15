//! Storage: the [`Store`] trait the handlers use, and one implementation per database.
//!
//! [`Backend`] picks the implementation from `DATABASE_URL`. Today that is SQLite
//! ([`SqliteStore`]); PostgreSQL arrives with the orders issue as a `postgres` module
//! implementing [`Store`] plus one more [`Backend`] variant — nothing else changes. Each backend
//! has its migrations under `migrations/<backend>/`.
//!
//! Every statement runs through [`telemetry::db::DbInstruments`], so it gets a CLIENT span (a
//! child of the request's SERVER span) and a `db.client.operation.duration` sample. Only the
//! operation and the table are recorded, never bound values.

mod seed;
pub mod sqlite;

use std::future::Future;
use std::path::PathBuf;

use serde::Serialize;
use telemetry::Telemetry;
use telemetry::config::ConfigError;

use crate::config::{ShopConfig, redact_url};
pub use sqlite::SqliteStore;

/// A product of the catalog, with its current stock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Product {
    /// Database id (positive).
    pub id: i64,
    /// Stock-keeping unit, unique.
    pub sku: String,
    /// Display name.
    pub name: String,
    /// One or two sentences for the product page.
    pub description: String,
    /// Category slug, e.g. `coffee`.
    pub category: String,
    /// Price in cents of the shop's currency.
    pub price_cents: i64,
    /// Units in stock (never negative).
    pub stock: i64,
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

/// What the shop needs from its database. Implemented once per backend.
pub trait Store: Clone + Send + Sync + 'static {
    /// Succeeds when the database answers a query on the catalog (readiness).
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// One page of the catalog in id order, and the number of products in all pages.
    fn list_products(
        &self,
        page: PageRequest,
    ) -> impl Future<Output = Result<(Vec<Product>, u64), StoreError>> + Send;

    /// The product with `id`, if there is one.
    fn get_product(
        &self,
        id: i64,
    ) -> impl Future<Output = Result<Option<Product>, StoreError>> + Send;
}

/// The store chosen by `DATABASE_URL`.
#[derive(Debug, Clone)]
pub enum Backend {
    /// `sqlite:…`
    Sqlite(SqliteStore),
}

impl Backend {
    /// Connects to the database of `config.database_url`, applies the migrations and seeds the
    /// catalog on first start.
    pub async fn open(config: &ShopConfig, telemetry: &Telemetry) -> Result<Self, OpenError> {
        let url = config.database_url.as_str();
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite(SqliteStore::open(config, telemetry).await?))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Err(OpenError::Config(ConfigError::new(
                "DATABASE_URL",
                redact_url(url),
                "a sqlite: URL for now (e.g. sqlite://data/shop.db?mode=rwc): postgres support arrives with the orders issue",
            )))
        } else {
            Err(OpenError::Config(ConfigError::new(
                "DATABASE_URL",
                redact_url(url),
                "a sqlite: URL (e.g. sqlite://data/shop.db?mode=rwc)",
            )))
        }
    }

    /// Closes every pooled connection; later operations fail with [`StoreError::Unavailable`].
    pub async fn close(&self) {
        match self {
            Self::Sqlite(store) => store.close().await,
        }
    }
}

impl Store for Backend {
    async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(store) => store.ping().await,
        }
    }

    async fn list_products(&self, page: PageRequest) -> Result<(Vec<Product>, u64), StoreError> {
        match self {
            Self::Sqlite(store) => store.list_products(page).await,
        }
    }

    async fn get_product(&self, id: i64) -> Result<Option<Product>, StoreError> {
        match self {
            Self::Sqlite(store) => store.get_product(id).await,
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
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] sqlx::Error),
    /// A migration failed (or the database holds migrations this build does not know).
    #[error("cannot migrate the database: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// Seeding the catalog failed.
    #[error("cannot seed the catalog: {0}")]
    Seed(#[source] sqlx::Error),
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
    async fn postgres_urls_are_refused_until_the_backend_exists() {
        let (telemetry, _guard) = Telemetry::builder(telemetry::TelemetryConfig::for_tests("shop"))
            .log_sink(telemetry::log_sink::LogSink::memory())
            .build()
            .unwrap();
        let config = ShopConfig {
            database_url: "postgres://shop:hunter2@db/shop".to_owned(),
            ..ShopConfig::from_lookup(telemetry::config::Persona::Local, |_| None).unwrap()
        };
        let Err(OpenError::Config(error)) = Backend::open(&config, &telemetry).await else {
            panic!("a postgres URL must be refused with a configuration error");
        };
        assert_eq!(error.variable, "DATABASE_URL");
        assert!(
            error
                .allowed
                .contains("postgres support arrives with the orders issue")
        );
        assert!(!error.to_string().contains("hunter2"));
    }
}
