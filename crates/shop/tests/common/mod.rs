//! Spawns the shop on an ephemeral port with its own telemetry instance (OTLP to an in-process
//! receiver, logs in memory) and a fresh SQLite database.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use shop::config::ShopConfig;
use telemetry::config::{OtlpProtocol, TelemetryConfig};
use telemetry::log_sink::LogSink;
use telemetry::testkit::{OtlpReceiver, install_test_subscriber};
use telemetry::{Telemetry, TelemetryGuard};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A running shop. Dropping it stops the server and removes its database.
pub struct TestApp {
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
    pub database: TempDatabase,
    pub stop: StopOnDrop,
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

/// Shop configuration for a test: loopback, ephemeral port, `database`'s SQLite file, with
/// `extra_env` applied on top.
pub fn shop_config(
    telemetry: &TelemetryConfig,
    database: &TempDatabase,
    extra_env: &[(&str, &str)],
) -> ShopConfig {
    let mut env: HashMap<String, String> = HashMap::from([
        ("APP_HOST".to_owned(), "127.0.0.1".to_owned()),
        ("PORT".to_owned(), "0".to_owned()),
        ("DATABASE_URL".to_owned(), database.url()),
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
    let (telemetry, guard) = Telemetry::builder(config)
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

/// Starts the shop as `main` does, but with test telemetry and a fresh database.
pub async fn spawn_app(extra_env: &[(&str, &str)]) -> TestApp {
    let (telemetry, guard, receiver) = test_telemetry(extra_env).await;
    let database = TempDatabase::new();
    let config = shop_config(telemetry.config(), &database, extra_env);
    let app = shop::app::build(&config, &telemetry).await.unwrap();
    let (address, stop) = serve(app).await;
    TestApp {
        base_url: format!("http://{address}"),
        address,
        receiver,
        telemetry,
        guard,
        client: reqwest::Client::new(),
        database,
        stop,
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
