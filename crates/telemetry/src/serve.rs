//! Serving instrumented apps, and their graceful shutdown within a platform's grace period.
//!
//! [`run`] serves one or more [`Server`]s (an app on a listener, observed by its telemetry
//! instance) until the shutdown future completes (SIGTERM or Ctrl-C: [`ShutdownSignals`]) or a
//! server stops on its own. Then, within [`ShutdownBudget`]: stop accepting and drain the
//! servers' in-flight requests in order (the first drains while the later ones still serve it:
//! an in-process dependency outlives its caller), abandoning what is still running at the drain
//! timeout; then flush every telemetry instance in parallel with what the budget has left. It
//! returns what happened ([`Stopped`]); a binary turns that into its exit code.
//!
//! ```no_run
//! use telemetry::serve::{Server, ShutdownBudget, ShutdownSignals, run};
//! # async fn example(app: axum::Router) -> std::io::Result<()> {
//! let config = telemetry::TelemetryConfig::from_env("my-service", "1.0.0").expect("config");
//! let (telemetry, guard) = telemetry::Telemetry::init(config).expect("telemetry");
//! let signals = ShutdownSignals::install()?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let app = telemetry.observe_router(app);
//! let stopped = run(vec![Server::new(listener, app, guard)], signals.received(), ShutdownBudget::CLOUD_RUN).await;
//! std::process::exit(if stopped.failed { 1 } else { 0 });
//! # }
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use futures_util::future::{join_all, select_all};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::TelemetryGuard;

/// Serves `app` on `listener` until `shutdown` completes, then stops accepting and waits for
/// the in-flight requests. Handlers see the peer address (`ConnectInfo<SocketAddr>`), which the
/// telemetry layer records as `client.address` (as the PII mode allows).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// How long the shutdown may take, counted from the signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownBudget {
    /// Everything after the signal: draining and flushing.
    pub total: Duration,
    /// In-flight requests get this long to finish; the rest of `total` flushes telemetry.
    pub drain: Duration,
}

impl ShutdownBudget {
    /// Cloud Run's 10 s grace period (Kubernetes' default is 30 s): 9.5 s in all, of which 8 s
    /// for in-flight requests, leaving 1.5 s to flush telemetry and a margin to exit.
    pub const CLOUD_RUN: Self = Self {
        total: Duration::from_millis(9_500),
        drain: Duration::from_secs(8),
    };
}

impl Default for ShutdownBudget {
    fn default() -> Self {
        Self::CLOUD_RUN
    }
}

/// One HTTP server for [`run`]: an app on a listener, and the guard of the telemetry instance
/// observing it (flushed when the server has drained).
pub struct Server {
    listener: TcpListener,
    app: Router,
    guard: TelemetryGuard,
    on_drain: Option<Box<dyn FnOnce() + Send>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("listener", &self.listener.local_addr().ok())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// `app` (already instrumented) on `listener`, its telemetry flushed through `guard`.
    pub fn new(listener: TcpListener, app: Router, guard: TelemetryGuard) -> Self {
        Self {
            listener,
            app,
            guard,
            on_drain: None,
        }
    }

    /// Calls `hook` when this server starts draining (before it stops accepting): e.g. to end
    /// requests that would otherwise wait out the drain timeout.
    pub fn on_drain(mut self, hook: impl FnOnce() + Send + 'static) -> Self {
        self.on_drain = Some(Box::new(hook));
        self
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// How [`run`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    /// A server stopped without being asked to, or failed while serving (a binary exits 1).
    pub failed: bool,
    /// Every in-flight request finished within the drain timeout (`false`: some were
    /// abandoned, which is logged at WARN and is no failure).
    pub drained: bool,
}

/// A server being served by [`run`].
struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
    on_drain: Option<Box<dyn FnOnce() + Send>>,
}

/// Serves `servers` until `shutdown` completes or one of them stops on its own, then drains
/// them in order and flushes their telemetry, all within `budget` (see the module docs).
pub async fn run(
    servers: Vec<Server>,
    shutdown: impl Future<Output = ()>,
    budget: ShutdownBudget,
) -> Stopped {
    let mut guards = Vec::with_capacity(servers.len());
    let mut running: Vec<Running> = servers
        .into_iter()
        .map(|server| {
            guards.push(server.guard);
            let (stop, stopped) = oneshot::channel::<()>();
            let task = tokio::spawn(serve(server.listener, server.app, async move {
                let _ = stopped.await;
            }));
            Running {
                stop: Some(stop),
                task: Some(task),
                on_drain: server.on_drain,
            }
        })
        .collect();

    let mut failed = false;
    let ended_on_its_own = if running.is_empty() {
        shutdown.await;
        None
    } else {
        let tasks = running.iter_mut().filter_map(|server| server.task.as_mut());
        tokio::select! {
            () = shutdown => None,
            (finished, index, _) = select_all(tasks) => Some((index, finished)),
        }
    };
    let started = Instant::now();
    let deadline = started + budget.total;
    let drain_deadline = started + budget.drain.min(budget.total);
    if let Some((index, finished)) = ended_on_its_own {
        // The server stopped without being asked to: that is a failure.
        report_server_end(finished);
        failed = true;
        running[index].task = None;
    }
    tracing::info!(
        app.shutdown.drain_timeout_ms = budget.drain.as_millis() as u64,
        "shutting down: draining in-flight requests"
    );

    let mut drained = true;
    for server in &mut running {
        if let Some(hook) = server.on_drain.take() {
            hook();
        }
        if let Some(stop) = server.stop.take() {
            let _ = stop.send(());
        }
        let Some(mut task) = server.task.take() else {
            continue;
        };
        match tokio::time::timeout_at(drain_deadline, &mut task).await {
            Ok(finished) => failed |= !report_server_end(finished),
            Err(_) => {
                tracing::warn!(
                    "in-flight requests did not finish within the drain timeout; abandoning them"
                );
                task.abort();
                drained = false;
            }
        }
    }

    // Every instance flushes with whatever the budget has left; a flush cut short still writes
    // out its stdout buffer (the guard does on drop).
    let remaining = deadline.saturating_duration_since(Instant::now());
    join_all(guards.into_iter().map(|guard| async move {
        let _ = tokio::time::timeout_at(deadline, guard.shutdown_within(remaining)).await;
    }))
    .await;
    Stopped { failed, drained }
}

/// Blocking threads still running when the main future returns are abandoned after this long.
pub const RUNTIME_SHUTDOWN_TIMEOUT: Duration = Duration::from_millis(200);

/// Runs `future` (a binary's whole life) on a new multi-threaded runtime, then abandons its
/// leftover blocking threads after [`RUNTIME_SHUTDOWN_TIMEOUT`], so the exit stays in budget.
pub fn block_on<T>(future: impl Future<Output = T>) -> std::io::Result<T> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let output = runtime.block_on(future);
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN_TIMEOUT);
    Ok(output)
}

/// Logs how a server task ended; returns whether that was a clean stop.
fn report_server_end(finished: Result<std::io::Result<()>, tokio::task::JoinError>) -> bool {
    match finished {
        Ok(Ok(())) => true,
        Ok(Err(error)) => {
            tracing::error!(error = %error, "server failed");
            false
        }
        Err(error) => {
            tracing::error!(error = %error, "server task failed");
            false
        }
    }
}

/// SIGTERM (Cloud Run, Kubernetes, `docker stop`) and SIGINT (Ctrl-C), registered up front:
/// install them before the first request can be answered, so an early SIGTERM still drains.
#[derive(Debug)]
pub struct ShutdownSignals {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    /// Registers the handlers (inside a Tokio runtime).
    #[cfg(unix)]
    pub fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    /// Registers the handlers (inside a Tokio runtime).
    #[cfg(not(unix))]
    pub fn install() -> std::io::Result<Self> {
        Ok(Self {})
    }

    /// Completes when the first signal arrives, logging which.
    #[cfg(unix)]
    pub async fn received(mut self) {
        tokio::select! {
            _ = self.terminate.recv() => tracing::info!(app.shutdown.signal = "SIGTERM", "signal received"),
            _ = self.interrupt.recv() => tracing::info!(app.shutdown.signal = "SIGINT", "signal received"),
        }
    }

    /// Completes when Ctrl-C arrives.
    #[cfg(not(unix))]
    pub async fn received(self) {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
