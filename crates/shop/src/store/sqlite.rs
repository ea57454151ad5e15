//! The SQLite backend: one file (WAL mode, foreign keys on), migrated from
//! `migrations/sqlite` and seeded on first start.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite};
use telemetry::Telemetry;
use telemetry::config::ConfigError;
use telemetry::db::DbInstruments;

use super::seed::PRODUCTS;
use super::{OpenError, PageRequest, Product, Store, StoreError, error_type};
use crate::config::{ShopConfig, redact_url};

/// The migrations of this backend, embedded at compile time.
static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/sqlite");

/// How long a statement waits for another connection's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The catalog in a SQLite database.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    db: DbInstruments,
}

impl SqliteStore {
    /// Opens (creating the file and its directory when the URL says `mode=rwc`) the database
    /// of `config.database_url`, migrates it and seeds an empty catalog.
    pub async fn open(config: &ShopConfig, telemetry: &Telemetry) -> Result<Self, OpenError> {
        let options = SqliteConnectOptions::from_str(&config.database_url)
            .map_err(|error| {
                ConfigError::new(
                    "DATABASE_URL",
                    redact_url(&config.database_url),
                    format!("a valid sqlite: URL, e.g. sqlite://data/shop.db?mode=rwc ({error})"),
                )
            })?
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        if let Some(directory) = options.get_filename().parent()
            && !directory.as_os_str().is_empty()
            && !directory.exists()
        {
            std::fs::create_dir_all(directory).map_err(|source| OpenError::CreateDir {
                path: directory.to_owned(),
                source,
            })?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(config.db_max_connections)
            .acquire_timeout(config.db_acquire_timeout)
            .connect_with(options)
            .await
            .map_err(OpenError::Connect)?;
        let store = Self {
            pool,
            db: DbInstruments::new(telemetry, "sqlite"),
        };
        store.migrate().await?;
        let seeded = store.seed().await.map_err(OpenError::Seed)?;
        if seeded > 0 {
            tracing::info!(products = seeded, "catalog seeded");
        }
        Ok(store)
    }

    /// Closes every pooled connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn migrate(&self) -> Result<(), OpenError> {
        self.db
            .operation("MIGRATE", "_sqlx_migrations")
            .run(
                MIGRATOR.run(&self.pool),
                |_: &sqlx::migrate::MigrateError| "migrate",
            )
            .await
            .map_err(OpenError::Migrate)
    }

    /// Inserts the seed catalog into an empty `products` table; returns how many rows it added.
    /// Idempotent, also when two instances start at once (`ON CONFLICT (sku) DO NOTHING`).
    async fn seed(&self) -> Result<u64, sqlx::Error> {
        let existing: i64 = self
            .db
            .operation("SELECT", "products")
            .run(
                sqlx::query_scalar("SELECT COUNT(*) FROM products").fetch_one(&self.pool),
                error_type,
            )
            .await?;
        if existing > 0 {
            return Ok(0);
        }
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO products (sku, name, description, category, price_cents, stock) ",
        );
        insert.push_values(PRODUCTS, |mut row, product| {
            row.push_bind(product.sku)
                .push_bind(product.name)
                .push_bind(product.description)
                .push_bind(product.category)
                .push_bind(product.price_cents)
                .push_bind(product.stock);
        });
        insert.push(" ON CONFLICT (sku) DO NOTHING");
        let done = self
            .db
            .operation("INSERT", "products")
            .run(insert.build().execute(&self.pool), error_type)
            .await?;
        Ok(done.rows_affected())
    }
}

impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.db
            .operation("SELECT", "products")
            .run(
                sqlx::query_scalar::<_, i64>("SELECT 1 FROM products LIMIT 1")
                    .fetch_optional(&self.pool),
                error_type,
            )
            .await?;
        Ok(())
    }

    /// Two statements (count, then the page) outside a transaction: under concurrent writes
    /// the total may be off by the rows written in between, which a listing tolerates.
    async fn list_products(&self, page: PageRequest) -> Result<(Vec<Product>, u64), StoreError> {
        let total: i64 = self
            .db
            .operation("SELECT", "products")
            .run(
                sqlx::query_scalar("SELECT COUNT(*) FROM products").fetch_one(&self.pool),
                error_type,
            )
            .await?;
        let offset = i64::try_from(page.offset()).unwrap_or(i64::MAX);
        let items: Vec<Product> = self
            .db
            .operation("SELECT", "products")
            .run(
                sqlx::query_as(
                    "SELECT id, sku, name, description, category, price_cents, stock \
                     FROM products ORDER BY id LIMIT ? OFFSET ?",
                )
                .bind(i64::from(page.per_page))
                .bind(offset)
                .fetch_all(&self.pool),
                error_type,
            )
            .await?;
        Ok((items, u64::try_from(total).unwrap_or(0)))
    }

    async fn get_product(&self, id: i64) -> Result<Option<Product>, StoreError> {
        let product = self
            .db
            .operation("SELECT", "products")
            .run(
                sqlx::query_as(
                    "SELECT id, sku, name, description, category, price_cents, stock \
                     FROM products WHERE id = ?",
                )
                .bind(id)
                .fetch_optional(&self.pool),
                error_type,
            )
            .await?;
        Ok(product)
    }
}
