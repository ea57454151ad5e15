//! Running the real `payments-sim` binary from tests: a clean environment, a free port,
//! output collected on threads, a bounded wait for exit.

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The binary with a clean environment: nothing from the developer's shell leaks in.
pub fn sim_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_payments-sim"));
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("OTEL_")
            || key.starts_with("APP_")
            || key.starts_with("PAYMENTS_")
            || key.starts_with("K_")
            || key == "RUST_LOG"
        {
            command.env_remove(key);
        }
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

pub fn collect(mut stream: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stream.read_to_string(&mut text);
        text
    })
}

/// Waits (up to 30 s) for `GET {base}/healthz` to answer 200; `Err` with the exit status when
/// the child exited first.
pub async fn wait_healthy(base: &str, child: &mut Child) -> Result<(), ExitStatus> {
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        if client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return Ok(());
        }
        if let Some(status) = child.try_wait().unwrap() {
            return Err(status);
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{base} did not become healthy within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The exit status of `child` once it exits within `timeout`; otherwise kills it and panics.
pub async fn exit_within(child: &mut Child, timeout: Duration, what: &str) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("{what} did not exit within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// SIGTERM, then the exit status within 10 s (Cloud Run's grace period).
pub async fn terminate(child: &mut Child) -> ExitStatus {
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    exit_within(child, Duration::from_secs(10), "the process after SIGTERM").await
}
