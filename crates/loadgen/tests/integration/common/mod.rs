//! The harness: the shop binary (built on first use), a fresh database per shop, and the
//! loadgen binary with a clean environment.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// `target/debug/shop`. `cargo nextest run --workspace` builds it fresh with the shop's own
/// tests; when it is missing (e.g. `cargo nextest run -p loadgen` on a clean tree) it is built
/// here with `cargo build -p shop`. After changing the shop, build it (or run the workspace)
/// before testing loadgen alone. It is not rebuilt unconditionally: `-p shop` alone resolves
/// other dependency features than the workspace's test build, so it would relink the binary
/// the shop's own tests are running. The loadgen speaks HTTP to it like any client: no
/// dependency on its code.
fn shop_binary() -> &'static PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let loadgen = PathBuf::from(env!("CARGO_BIN_EXE_loadgen"));
        let shop = loadgen.with_file_name("shop");
        if shop.exists() {
            return shop;
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", "shop", "--bin", "shop"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo runs");
        assert!(status.success(), "cargo build -p shop failed");
        assert!(shop.exists(), "{} was not built", shop.display());
        shop
    })
}

fn clean(command: &mut Command) -> &mut Command {
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("OTEL_")
            || key.starts_with("APP_")
            || key.starts_with("PAYMENTS_")
            || ["RUST_LOG", "PORT", "DATABASE_URL"].contains(&key.as_str())
        {
            command.env_remove(key);
        }
    }
    command
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running shop; killed when dropped.
pub(crate) struct Shop {
    pub(crate) url: String,
    child: Child,
    database: PathBuf,
}

impl Shop {
    /// Starts the shop with `env` on a free port and a fresh SQLite file; waits for `/readyz`.
    pub(crate) async fn start(env: &[(&str, &str)]) -> Shop {
        let port = free_port();
        let database =
            std::env::temp_dir().join(format!("loadgen-test-{}-{port}.db", std::process::id()));
        let _ = std::fs::remove_file(&database);
        let mut command = Command::new(shop_binary());
        clean(&mut command)
            .env("PORT", port.to_string())
            .env(
                "DATABASE_URL",
                format!("sqlite://{}?mode=rwc", database.display()),
            )
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = command.spawn().expect("the shop starts");
        let url = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if client
                .get(format!("{url}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
            {
                break;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the shop exited during start-up: {status}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the shop did not become ready within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Shop {
            url,
            child,
            database,
        }
    }

    /// The shop's own request counts (`http.server.request.duration` from `/metrics`), by
    /// `METHOD route`.
    pub(crate) async fn served_by_route(&self) -> std::collections::BTreeMap<String, u64> {
        let text = reqwest::get(format!("{}/metrics", self.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let mut counts = std::collections::BTreeMap::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("http_server_request_duration_seconds_count{")
            else {
                continue;
            };
            let (labels, value) = rest.rsplit_once("} ").unwrap();
            let label = |name: &str| {
                labels
                    .split(',')
                    .find_map(|pair| pair.strip_prefix(&format!("{name}=\"")))
                    .map(|v| v.trim_end_matches('"').to_owned())
            };
            let (Some(method), Some(route)) = (label("http_request_method"), label("http_route"))
            else {
                continue;
            };
            *counts.entry(format!("{method} {route}")).or_default() +=
                value.trim().parse::<u64>().unwrap();
        }
        counts
    }
}

impl Drop for Shop {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.database.display()));
        }
    }
}

/// `loadgen ARGS` with a clean environment plus `env`, run to completion.
pub(crate) fn loadgen(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_loadgen"));
    clean(&mut command)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    command.output().expect("loadgen runs")
}

/// The JSON summary of a successful `--json` run.
pub(crate) fn json(output: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(&stdout).unwrap_or_else(|error| {
        panic!(
            "stdout is not one JSON document ({error}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

pub(crate) fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A scenario file in the temp directory.
pub(crate) fn scenario_file(name: &str, text: &str) -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("loadgen-test-{}-{name}.toml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}
