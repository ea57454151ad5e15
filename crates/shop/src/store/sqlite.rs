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
use super::{OpenError, Store, StoreError, error_type};
use crate::config::{ShopConfig, redact_url};

/// `db.system.name` of this backend.
pub const SYSTEM_NAME: &str = "sqlite";

/// The migrations of this backend, embedded at compile time.
static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/sqlite");

/// How long a statement waits for another connection's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The shop's data in a SQLite database.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    db: DbInstruments,
}

/// Opens the pool. Switching a new database file to WAL takes an exclusive lock that SQLite
/// does not wait for (no busy handler yet), so two instances opening the same new file at
/// once can see `SQLITE_BUSY` here: retried a few times with backoff (< 1 s in all).
async fn connect(
    options: &SqliteConnectOptions,
    config: &ShopConfig,
) -> Result<SqlitePool, sqlx::Error> {
    let mut delay = Duration::from_millis(20);
    let mut attempt = 0;
    loop {
        let result = SqlitePoolOptions::new()
            .max_connections(config.db_max_connections)
            .acquire_timeout(config.db_acquire_timeout)
            .connect_with(options.clone())
            .await;
        match result {
            Err(sqlx::Error::Database(error))
                if error.code().as_deref() == Some("5") && attempt < 5 =>
            {
                attempt += 1;
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            other => return other,
        }
    }
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
        let pool = connect(&options, config)
            .await
            .map_err(|source| OpenError::Connect {
                target: options.get_filename().display().to_string(),
                cause: None,
                source,
            })?;
        let store = Self {
            pool,
            db: DbInstruments::new(telemetry, SYSTEM_NAME),
        };
        store.migrate().await?;
        let seeded = store.seed().await.map_err(OpenError::Seed)?;
        if seeded > 0 {
            tracing::info!(shop.catalog.seeded_products = seeded, "catalog seeded");
        }
        Ok(store)
    }

    /// Closes every pooled connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The [`StoreError`] of a failed request-time operation.
    fn failure(&self, error: sqlx::Error) -> StoreError {
        StoreError::from_pool(error, &self.pool)
    }

    /// Applies the pending migrations. sqlx takes no lock on SQLite, so the whole run holds
    /// the database's write lock (`BEGIN IMMEDIATE`; each migration is a savepoint inside it):
    /// a second instance starting on the same file waits, then finds every migration applied.
    async fn migrate(&self) -> Result<(), OpenError> {
        let migrate = async {
            let mut transaction = self.pool.begin_with("BEGIN IMMEDIATE").await?;
            MIGRATOR.run(&mut transaction).await?;
            transaction.commit().await?;
            Ok(())
        };
        self.db
            .operation("MIGRATE", "_sqlx_migrations")
            .run(migrate, |_: &sqlx::migrate::MigrateError| "migrate")
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

super::orders::order_helpers!(SqliteStore, Sqlite);

/// Every query is shared with the other backend ([`super::queries`], [`super::orders`]).
impl Store for SqliteStore {
    super::queries::catalog_and_account_methods!(Sqlite, name_collation = "");
    super::orders::order_methods!(Sqlite, "BEGIN IMMEDIATE");
}
