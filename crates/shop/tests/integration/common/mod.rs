//! Spawns the shop on an ephemeral port with its own telemetry instance (OTLP to an in-process
//! receiver, logs in memory) and a fresh database: a SQLite file in a temporary directory, or a
//! PostgreSQL database of its own (`shop_test_…`, created through `SHOP_TEST_POSTGRES_URL`,
//! default `postgres://postgres@127.0.0.1:5432/test`, and dropped afterwards), so tests run in
//! parallel.
//!
//! [`on_both_backends!`] runs a test once per backend. Without a reachable PostgreSQL the
//! PostgreSQL half skips with a message on stderr — unless `SHOP_REQUIRE_POSTGRES` or `CI` is
//! set (as `scripts/test.sh` does), where it fails instead.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

pub mod process;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use shop::config::ShopConfig;
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection, SqliteConnection};
use telemetry::config::{OtlpProtocol, TelemetryConfig};
use telemetry::log_sink::LogSink;
use telemetry::testkit::{OtlpReceiver, install_test_subscriber};
use telemetry::{Telemetry, TelemetryGuard};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A running shop. Dropping it stops the server and removes its database.
pub struct TestApp {
    /// The payment simulator the shop charges (`PAYMENTS_URL`), exporting to `receiver` as
    /// `payments-sim`. First, so it stops (and flushes) before the receiver goes away.
    pub payments: TestSimulator,
    /// `http://127.0.0.1:PORT`
    pub base_url: String,
    pub address: SocketAddr,
    /// Captures what the instance exports over OTLP/gRPC.
    pub receiver: OtlpReceiver,
    /// The instance serving the app (`telemetry.log_sink().captured()` has its log lines).
    pub telemetry: Telemetry,
    /// Call `guard.shutdown().await` to flush every exporter before reading `receiver`.
    pub guard: TelemetryGuard,
    pub client: reqwest::Client,
    /// Stops the server (declared before `database`, so it is dropped first).
    pub stop: StopOnDrop,
    pub database: TestDatabase,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// Every JSON log line written so far.
    pub fn log_lines(&self) -> Vec<serde_json::Value> {
        parse_json_lines(&self.telemetry.log_sink().captured())
    }

    /// Signs a new user up with `email`; returns the bearer token.
    pub async fn sign_up(&self, email: &str) -> String {
        let response = self
            .client
            .post(self.url("/v1/users"))
            .json(&serde_json::json!({"email": email, "name": "Buyer"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let body: serde_json::Value = response.json().await.unwrap();
        body["token"].as_str().unwrap().to_owned()
    }
}

/// Stops the server when dropped.
pub struct StopOnDrop(Option<oneshot::Sender<()>>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(stop) = self.0.take() {
            let _ = stop.send(());
        }
    }
}

/// A directory for one test's SQLite file, removed on drop.
pub struct TempDatabase {
    pub directory: PathBuf,
}

impl TempDatabase {
    pub fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let directory = std::env::temp_dir().join(format!(
            "shop-test-{}-{nanos}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&directory).unwrap();
        Self { directory }
    }

    pub fn url(&self) -> String {
        sqlite_url(&self.directory.join("shop.db"))
    }
}

impl Drop for TempDatabase {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.directory);
    }
}

pub fn sqlite_url(file: &Path) -> String {
    format!("sqlite://{}?mode=rwc", file.display())
}

/// Configuration like [`TelemetryConfig::for_tests`] (JSON logs, fixed pseudonym key, fast
/// export) with `extra_env` applied on top, exporting to `receiver` over gRPC.
pub fn telemetry_config(receiver: &OtlpReceiver, extra_env: &[(&str, &str)]) -> TelemetryConfig {
    let config = if extra_env.is_empty() {
        TelemetryConfig::for_tests("shop")
    } else {
        let mut env: HashMap<&str, &str> = HashMap::from([
            ("APP_LOG_FORMAT", "json"),
            ("APP_PII_KEY", "test-pseudonym-key-0123456789"),
        ]);
        env.extend(extra_env.iter().copied());
        let mut config = TelemetryConfig::from_lookup("shop", "0.0.0-test", |k| {
            env.get(k).map(|v| (*v).to_owned())
        })
        .unwrap();
        config.metric_export_interval = Duration::from_millis(200);
        config.span_batch.schedule_delay = Duration::from_millis(100);
        config.log_batch.schedule_delay = Duration::from_millis(100);
        config
    };
    config.with_otlp(receiver.grpc_endpoint(), OtlpProtocol::Grpc)
}

/// Shop configuration for a test: loopback, ephemeral port, `database`, a payment provider
/// URL that nothing answers, with `extra_env` applied on top.
pub fn shop_config(
    telemetry: &TelemetryConfig,
    database: &TestDatabase,
    extra_env: &[(&str, &str)],
) -> ShopConfig {
    let mut env: HashMap<String, String> = HashMap::from([
        ("APP_HOST".to_owned(), "127.0.0.1".to_owned()),
        ("PORT".to_owned(), "0".to_owned()),
        ("DATABASE_URL".to_owned(), database.url()),
        // Tests that charge nothing need no provider: port 9 (discard) is never called.
        ("PAYMENTS_URL".to_owned(), "http://127.0.0.1:9".to_owned()),
    ]);
    env.extend(
        extra_env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    ShopConfig::from_lookup(telemetry.persona, |k| env.get(k).cloned()).unwrap()
}

/// A telemetry instance for a test: OTLP to a fresh receiver, log lines in memory.
pub async fn test_telemetry(
    extra_env: &[(&str, &str)],
) -> (Telemetry, TelemetryGuard, OtlpReceiver) {
    install_test_subscriber();
    let receiver = OtlpReceiver::start().await.unwrap();
    let config = telemetry_config(&receiver, extra_env);
    let (telemetry, guard) = shop::observability::telemetry_builder(config)
        .log_sink(LogSink::memory())
        .build()
        .unwrap();
    (telemetry, guard, receiver)
}

/// Serves `app` on 127.0.0.1:0; returns the address and the handle that stops it.
pub async fn serve(app: axum::Router) -> (SocketAddr, StopOnDrop) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(shop::serve(listener, app, async move {
        let _ = stopped.await;
    }));
    (address, StopOnDrop(Some(stop)))
}

/// Starts the shop as `main` does, but with test telemetry and a fresh SQLite database.
pub async fn spawn_app(extra_env: &[(&str, &str)]) -> TestApp {
    spawn_app_on(Db::Sqlite, extra_env).await
}

/// Starts the shop as `main` does, but with test telemetry and a fresh database of `db`.
/// A payment simulator without faults charges its checkouts (see [`spawn_app_with_faults`]).
pub async fn spawn_app_on(db: Db, extra_env: &[(&str, &str)]) -> TestApp {
    spawn_app_with_faults(db, shop::payments::simulator::Faults::default(), extra_env).await
}

/// Like [`spawn_app_on`], the payment simulator injecting `faults`.
pub async fn spawn_app_with_faults(
    db: Db,
    faults: shop::payments::simulator::Faults,
    extra_env: &[(&str, &str)],
) -> TestApp {
    let (telemetry, guard, receiver) = test_telemetry(extra_env).await;
    let payments = spawn_simulator(&receiver, faults).await;
    let database = TestDatabase::create(db).await;
    let mut env = vec![("PAYMENTS_URL", payments.url.as_str())];
    env.extend_from_slice(extra_env);
    let config = shop_config(telemetry.config(), &database, &env);
    let app = shop::app::build(&config, &telemetry).await.unwrap();
    let (address, stop) = serve(app).await;
    TestApp {
        base_url: format!("http://{address}"),
        address,
        receiver,
        telemetry,
        guard,
        client: reqwest::Client::new(),
        stop,
        database,
        payments,
    }
}

pub fn parse_json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"))
        })
        .collect()
}

/// The database backends the shop runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

impl Db {
    /// `db.system.name` of the backend.
    pub fn system_name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgresql",
        }
    }
}

/// A fresh database for one test, removed on drop.
pub enum TestDatabase {
    Sqlite(TempDatabase),
    Postgres(PgDatabase),
}

impl TestDatabase {
    pub async fn create(db: Db) -> Self {
        match db {
            Db::Sqlite => Self::Sqlite(TempDatabase::new()),
            Db::Postgres => Self::Postgres(PgDatabase::create().await),
        }
    }

    pub fn db(&self) -> Db {
        match self {
            Self::Sqlite(_) => Db::Sqlite,
            Self::Postgres(_) => Db::Postgres,
        }
    }

    /// The `DATABASE_URL` of this database.
    pub fn url(&self) -> String {
        match self {
            Self::Sqlite(database) => database.url(),
            Self::Postgres(database) => database.url.clone(),
        }
    }
}

/// The PostgreSQL server the tests use: `SHOP_TEST_POSTGRES_URL`, default the CI service.
pub fn postgres_admin_url() -> String {
    std::env::var("SHOP_TEST_POSTGRES_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Whether a missing PostgreSQL must fail the tests (CI, `scripts/test.sh`) rather than skip.
fn postgres_required() -> bool {
    let set = |key: &str| {
        std::env::var(key)
            .is_ok_and(|v| !v.trim().is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
    };
    set("SHOP_REQUIRE_POSTGRES") || set("CI")
}

/// Whether the PostgreSQL half of `test` can run. When the server is unreachable this prints
/// why and returns `false` (skip), or panics when PostgreSQL is required.
pub async fn postgres_ready(test: &str) -> bool {
    let url = postgres_admin_url();
    let connected = tokio::time::timeout(Duration::from_secs(5), PgConnection::connect(&url)).await;
    let error = match connected {
        Ok(Ok(connection)) => {
            let _ = connection.close().await;
            return true;
        }
        Ok(Err(error)) => error.to_string(),
        Err(_) => "no answer within 5 s".to_owned(),
    };
    assert!(
        !postgres_required(),
        "{test}: PostgreSQL is required (SHOP_REQUIRE_POSTGRES or CI is set) but unreachable \
         through SHOP_TEST_POSTGRES_URL or 127.0.0.1:5432/test: {error}"
    );
    eprintln!(
        "SKIPPED {test} on PostgreSQL: unreachable through SHOP_TEST_POSTGRES_URL or \
         127.0.0.1:5432/test ({error}); set SHOP_REQUIRE_POSTGRES=1 to make this a failure"
    );
    false
}

/// A PostgreSQL database of its own, created on the server of [`postgres_admin_url`] and
/// dropped (with its connections) on drop.
pub struct PgDatabase {
    pub name: String,
    pub url: String,
    admin_url: String,
}

impl PgDatabase {
    pub async fn create() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let admin_url = postgres_admin_url();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!(
            "shop_test_{}_{nanos}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = PgConnection::connect(&admin_url).await.unwrap();
        admin
            .execute(sqlx::raw_sql(AssertSqlSafe(format!(
                "CREATE DATABASE \"{name}\""
            ))))
            .await
            .unwrap();
        let _ = admin.close().await;
        let url = database_url_on(&admin_url, &name);
        Self {
            name,
            url,
            admin_url,
        }
    }
}

/// `admin_url` with its database replaced by `name` (user, host and query kept).
fn database_url_on(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (admin_url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let server = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let statement = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        // Drop runs inside the test's runtime: do the async work on a thread of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let mut admin = PgConnection::connect(&admin_url).await?;
                admin
                    .execute(sqlx::raw_sql(AssertSqlSafe(statement)))
                    .await?;
                admin.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}: {dropped:?}", self.name);
        }
    }
}

/// Runs each listed `async fn name(db: Db)` once per backend, as the tests `sqlite::name` and
/// `postgres::name`.
#[allow(unused_macros)]
macro_rules! on_both_backends {
    ($($test:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test($crate::common::Db::Sqlite).await;
                }
            )+
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    if $crate::common::postgres_ready(stringify!($test)).await {
                        super::$test($crate::common::Db::Postgres).await;
                    }
                }
            )+
        }
    };
}
#[allow(unused_imports)]
pub(crate) use on_both_backends;

/// Another session holding the write lock on the `users` table (SQLite: a `BEGIN IMMEDIATE`
/// transaction, which blocks every other writer; PostgreSQL: `LOCK TABLE users IN EXCLUSIVE
/// MODE`, which blocks inserts but not reads) until [`UsersWriteLock::release`].
pub enum UsersWriteLock {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

impl UsersWriteLock {
    pub async fn acquire(database: &TestDatabase) -> Self {
        match database {
            TestDatabase::Sqlite(_) => {
                let mut connection = SqliteConnection::connect(&database.url()).await.unwrap();
                connection.execute("BEGIN IMMEDIATE").await.unwrap();
                Self::Sqlite(connection)
            }
            TestDatabase::Postgres(_) => {
                let mut connection = PgConnection::connect(&database.url()).await.unwrap();
                connection
                    .execute(sqlx::raw_sql("BEGIN; LOCK TABLE users IN EXCLUSIVE MODE"))
                    .await
                    .unwrap();
                Self::Postgres(connection)
            }
        }
    }

    pub async fn release(self) {
        match self {
            Self::Sqlite(mut connection) => {
                connection.execute("ROLLBACK").await.unwrap();
                connection.close().await.unwrap();
            }
            Self::Postgres(mut connection) => {
                connection.execute("ROLLBACK").await.unwrap();
                connection.close().await.unwrap();
            }
        }
    }
}

/// A payment simulator served on 127.0.0.1:0 with its own telemetry instance (`service.name`
/// `payments-sim`, OTLP to the given receiver, log lines in memory).
pub struct TestSimulator {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// Its knobs and counters.
    pub simulator: shop::payments::simulator::Simulator,
    /// The simulator's own instance (`telemetry.log_sink().captured()` has its log lines).
    pub telemetry: Telemetry,
    /// Call `guard.shutdown().await` to flush every exporter before reading the receiver.
    pub guard: TelemetryGuard,
    /// The server; `server.stop().await` closes it (hangs end), dropping it too.
    pub server: shop::payments::simulator::RunningSimulator,
}

impl TestSimulator {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Every JSON log line the simulator wrote so far.
    pub fn log_lines(&self) -> Vec<serde_json::Value> {
        parse_json_lines(&self.telemetry.log_sink().captured())
    }
}

/// Starts a payment simulator with `faults` (and no admin token), exporting to `receiver`.
pub async fn spawn_simulator(
    receiver: &OtlpReceiver,
    faults: shop::payments::simulator::Faults,
) -> TestSimulator {
    let config = shop::payments::simulator::SimulatorConfig {
        faults,
        ..shop::payments::simulator::SimulatorConfig::no_faults()
    };
    spawn_simulator_with(receiver, &config).await
}

/// Starts a payment simulator configured by `config`, exporting to `receiver`.
pub async fn spawn_simulator_with(
    receiver: &OtlpReceiver,
    config: &shop::payments::simulator::SimulatorConfig,
) -> TestSimulator {
    install_test_subscriber();
    let telemetry_config = TelemetryConfig::for_tests("payments-sim")
        .with_otlp(receiver.grpc_endpoint(), OtlpProtocol::Grpc);
    let (telemetry, guard) = Telemetry::builder(telemetry_config)
        .log_sink(LogSink::memory())
        .build()
        .unwrap();
    let simulator = shop::payments::simulator::Simulator::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = shop::payments::simulator::spawn(listener, simulator.clone(), &telemetry)
        .await
        .unwrap();
    TestSimulator {
        url: server.url.clone(),
        simulator,
        telemetry,
        guard,
        server,
    }
}
