//! The PostgreSQL backend: a connection pool, migrated from `migrations/postgres` and seeded
//! on first start.
//!
//! Several instances may start against one database at once: `sqlx` serialises the migrations
//! with an advisory lock, and the seed inserts the catalog with fixed ids and
//! `ON CONFLICT DO NOTHING`, so whichever instance comes second inserts nothing and the ids are
//! the same as on SQLite.

use std::str::FromStr;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, QueryBuilder};
use telemetry::Telemetry;
use telemetry::config::ConfigError;
use telemetry::db::DbInstruments;

use super::seed::PRODUCTS;
use super::{OpenError, Pool, Store, error_type};
use crate::config::{ShopConfig, redact_url};

/// `db.system.name` of this backend.
pub(super) const SYSTEM_NAME: &str = "postgresql";

/// The migrations of this backend, embedded at compile time.
static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/postgres");

/// `application_name` of the shop's sessions (`pg_stat_activity`) unless the URL sets one.
const APPLICATION_NAME: &str = "shop";

/// The start-up error of a failed first connection, naming `host:port` (never the user or the
/// password). The pool reports only its acquire timeout when every attempt failed ("pool timed
/// out while waiting for an open connection"); one direct attempt then says why (refused,
/// unknown host, authentication failed).
async fn connect_error(
    options: &PgConnectOptions,
    config: &ShopConfig,
    source: sqlx::Error,
) -> OpenError {
    let cause = if matches!(source, sqlx::Error::PoolTimedOut) {
        use sqlx::Connection;
        match tokio::time::timeout(
            config.db_acquire_timeout,
            sqlx::PgConnection::connect_with(options),
        )
        .await
        {
            Ok(Err(error)) => Some(error.to_string()),
            Ok(Ok(connection)) => {
                let _ = connection.close().await;
                None
            }
            Err(_) => Some(format!(
                "no answer within {} ms",
                config.db_acquire_timeout.as_millis()
            )),
        }
    } else {
        None
    };
    OpenError::Connect {
        target: format!("{}:{}", options.get_host(), options.get_port()),
        cause,
        source,
    }
}

/// Connects to `config.database_url` with a pool of `config.db_max_connections` (a request
/// waits at most `config.db_acquire_timeout` for one, then fails with
/// [`StoreError::PoolExhausted`](super::StoreError::PoolExhausted)), migrates the database and
/// seeds an empty catalog.
pub(super) async fn open(config: &ShopConfig, telemetry: &Telemetry) -> Result<Store, OpenError> {
    let mut options = PgConnectOptions::from_str(&config.database_url).map_err(|error| {
        ConfigError::new(
            "DATABASE_URL",
            redact_url(&config.database_url),
            format!(
                "a valid postgres:// URL, e.g. postgres://shop@127.0.0.1:5432/shop ({})",
                scrub_url_error(&error, &config.database_url)
            ),
        )
    })?;
    if options.get_application_name().is_none() {
        options = options.application_name(APPLICATION_NAME);
    }
    let pool = match PgPoolOptions::new()
        .max_connections(config.db_max_connections)
        .acquire_timeout(config.db_acquire_timeout)
        .connect_with(options.clone())
        .await
    {
        Ok(pool) => pool,
        Err(source) => return Err(connect_error(&options, config, source).await),
    };
    // DB spans name the server (`server.address`, `server.port`).
    let db = DbInstruments::new(telemetry, SYSTEM_NAME)
        .with_server(options.get_host(), Some(options.get_port()));
    migrate(&pool, &db).await?;
    let seeded = seed(&pool, &db).await.map_err(OpenError::Seed)?;
    if seeded > 0 {
        tracing::info!(shop.catalog.seeded_products = seeded, "catalog seeded");
    }
    Ok(Store {
        pool: Pool::Postgres(pool),
        db,
    })
}

async fn migrate(pool: &PgPool, db: &DbInstruments) -> Result<(), OpenError> {
    db.operation("MIGRATE", "_sqlx_migrations")
        .run(
            MIGRATOR.run(pool),
            |_: &sqlx::migrate::MigrateError| "migrate",
        )
        .await
        .map_err(OpenError::Migrate)
}

/// Inserts the seed catalog into an empty `products` table; returns how many rows it added.
///
/// Safe when two instances seed at once: rows carry their ids (1, 2, … in seed order, as SQLite
/// assigns them) and conflicts are skipped, so the second instance adds nothing. The identity
/// sequence then continues after the highest id.
async fn seed(pool: &PgPool, db: &DbInstruments) -> Result<u64, sqlx::Error> {
    let existing: i64 = db
        .operation("SELECT", "products")
        .run(
            sqlx::query_scalar("SELECT COUNT(*) FROM products").fetch_one(pool),
            error_type,
        )
        .await?;
    if existing > 0 {
        return Ok(0);
    }
    let mut insert = QueryBuilder::<Postgres>::new(
        "INSERT INTO products (id, sku, name, description, category, price_cents, stock) \
         OVERRIDING SYSTEM VALUE ",
    );
    insert.push_values(PRODUCTS.iter().zip(1_i64..), |mut row, (product, id)| {
        row.push_bind(id)
            .push_bind(product.sku)
            .push_bind(product.name)
            .push_bind(product.description)
            .push_bind(product.category)
            .push_bind(product.price_cents)
            .push_bind(product.stock);
    });
    insert.push(" ON CONFLICT DO NOTHING");
    let done = db
        .operation("INSERT", "products")
        .run(insert.build().execute(pool), error_type)
        .await?;
    db.operation("SELECT", "products")
        .run(
            sqlx::query(
                "SELECT setval(pg_get_serial_sequence('products', 'id'), \
                 (SELECT MAX(id) FROM products))",
            )
            .execute(pool),
            error_type,
        )
        .await?;
    Ok(done.rows_affected())
}

/// The parse error of a `DATABASE_URL`, without the URL's password if the message repeats it.
fn scrub_url_error(error: &sqlx::Error, url: &str) -> String {
    let message = error.to_string();
    match url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(user_info, _)| user_info.split_once(':'))
    {
        Some((_, password)) if !password.is_empty() => message.replace(password, "[REDACTED]"),
        _ => message,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::StoreError;
    use std::time::Duration;

    #[tokio::test]
    async fn an_unreachable_server_is_unavailable_not_an_exhausted_pool() {
        let (telemetry, _guard) = Telemetry::builder(telemetry::TelemetryConfig::for_tests("shop"))
            .log_sink(telemetry::log_sink::LogSink::memory())
            .build()
            .unwrap();
        // Port 1: nothing listens, every connection attempt is refused until the timeout.
        let options = PgConnectOptions::from_str("postgres://shop@127.0.0.1:1/shop").unwrap();
        let store = Store {
            pool: Pool::Postgres(
                PgPoolOptions::new()
                    .max_connections(2)
                    .acquire_timeout(Duration::from_millis(200))
                    .connect_lazy_with(options),
            ),
            db: DbInstruments::new(&telemetry, SYSTEM_NAME),
        };
        assert!(matches!(
            store.ping().await,
            Err(StoreError::Unavailable(sqlx::Error::PoolTimedOut))
        ));
    }

    #[test]
    fn url_parse_errors_never_repeat_the_password() {
        let error = sqlx::Error::Configuration("bad port in postgres://shop:hunter2@db:x/".into());
        let message = scrub_url_error(&error, "postgres://shop:hunter2@db:x/");
        assert!(!message.contains("hunter2"), "{message}");
        assert!(message.contains("[REDACTED]"), "{message}");
    }
}
