//! A payment provider simulator with fault injection, served over real HTTP.
//!
//! The shop charges a provider over HTTP; locally and in tests that provider is this simulator,
//! started in-process on an ephemeral port by the shop binary (or alone: the `payments-sim`
//! binary, or `shop payments-sim`). It speaks the
//! provider's wire protocol:
//!
//! - `POST /v1/charges` with an `Idempotency-Key` header (1–64 characters of `[A-Za-z0-9_-]`)
//!   and `{"amount_cents": 1..=100000000, "currency": "EUR", "reference": "1–64 characters"}`:
//!   201 `{"id": "ch_<32 hex>", "status": "approved", "amount_cents", "currency", "reference"}`
//!   or 402 with `"status": "declined", "reason": "card_declined"`. The same key with the same
//!   body answers the recorded charge again (same status and body) with
//!   `Idempotent-Replayed: true`; with another body, 422 `idempotency.key_reused`.
//!   Concurrent requests with one key never record two charges: the lookup and the recording
//!   happen under one lock, so the first records and the others replay it (never 409).
//! - Errors: `{"error": {"code", "message", "field"?}}`, 400/413/422 for bad input, 503
//!   `simulated.unavailable` or 500 `simulated.internal` (half and half) for injected errors.
//! - `GET /admin/faults`, `PUT /admin/faults`, `GET /admin/stats`, `POST /admin/reset` (see
//!   the `admin` module: loopback only, or a bearer token), `GET /healthz`, `GET /metrics`.
//!
//! Faults ([`Faults`]) are decided per request before anything is recorded: an injected error
//! or a hang records nothing, so a retry with the same key is safe. A hang holds the request
//! until the simulator is closed ([`Simulator::close`], done by [`RunningSimulator::stop`]:
//! then 503) or [`MAX_HANG`] passes (then 504). Latency delays every other answer; a new
//! charge is recorded before its delay, so a client that times out finds it by retrying.
//!
//! Charges live in memory, at most [`SimulatorConfig::max_charges`] keys (default 100,000,
//! a few tens of MB at most); recording one more forgets the oldest key.
//!
//! ```no_run
//! use payments_sim::{Simulator, SimulatorConfig, spawn};
//! # async fn run(telemetry: &telemetry::Telemetry) -> std::io::Result<()> {
//! let simulator = Simulator::new(&SimulatorConfig::no_faults());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let running = spawn(listener, simulator, telemetry).await?;
//! println!("charge at {}/v1/charges", running.url);
//! running.stop().await
//! # }
//! ```

mod admin;
mod charges;
mod config;
mod error;
mod faults;
pub mod service;
mod store;

pub use config::{DEFAULT_MAX_CHARGES, DEFAULT_PORT, MIN_ADMIN_TOKEN_LEN, SimulatorConfig};
pub use faults::{Faults, InvalidFault, Latency, MAX_LATENCY_MS};

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use serde::Serialize;
use telemetry::Telemetry;
use telemetry::config::Secret;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use self::error::SimError;
use self::store::{ChargeRequest, ChargeStore, Outcome, Recorded};

/// Longest a hung request is held when the simulator is not closed first.
pub const MAX_HANG: Duration = Duration::from_secs(600);
/// The request header naming the idempotency key.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The response header (`true`) marking an answer replayed from an earlier request.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";
/// Largest accepted request body.
const MAX_BODY_BYTES: usize = 16 * 1024;

/// The simulator: fault knobs, charges and counters, shared by every clone.
#[derive(Debug, Clone)]
pub struct Simulator {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    faults: RwLock<Faults>,
    charges: Mutex<ChargeStore>,
    counters: Counters,
    admin_token: Option<Secret>,
    /// `true` once [`Simulator::close`] was called: hangs and delays end at once.
    closing: watch::Sender<bool>,
}

/// What the simulator did since it started or was last reset (`GET /admin/stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Stats {
    /// Distinct charges recorded (approved + declined; replays not counted).
    pub charges: u64,
    /// Charges recorded as approved.
    pub approved: u64,
    /// Charges recorded as declined.
    pub declined: u64,
    /// Requests answered with an earlier charge (`Idempotent-Replayed: true`).
    pub replayed: u64,
    /// Requests answered with an injected 503/500.
    pub errors_injected: u64,
    /// Requests held by the hang fault.
    pub hangs: u64,
}

#[derive(Debug, Default)]
struct Counters {
    approved: Counter,
    declined: Counter,
    replayed: Counter,
    errors_injected: Counter,
    hangs: Counter,
}

#[derive(Debug, Default)]
struct Counter(AtomicU64);

impl Counter {
    fn increment(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    fn reset(&self) {
        self.0.store(0, Ordering::Relaxed);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Simulator {
    /// A simulator with the knobs, admin token and capacity of `config`, and no charges.
    pub fn new(config: &SimulatorConfig) -> Self {
        let (closing, _) = watch::channel(false);
        Self {
            shared: Arc::new(Shared {
                faults: RwLock::new(config.faults),
                charges: Mutex::new(ChargeStore::new(config.max_charges)),
                counters: Counters::default(),
                admin_token: config.admin_token.clone(),
                closing,
            }),
        }
    }

    /// The simulator's routes — `POST /v1/charges`, `/admin/*`, `GET /healthz` — instrumented
    /// by `telemetry` (which adds `GET /metrics`). Serve it with connect info
    /// (`into_make_service_with_connect_info::<SocketAddr>()`, as [`spawn`] does): without
    /// it no peer counts as loopback, and `/admin` needs the token.
    pub fn router(&self, telemetry: &Telemetry) -> Router {
        let routes = Router::new()
            .route("/v1/charges", post(charges::create))
            .route("/healthz", get(healthz))
            .nest("/admin", admin::router(self))
            .fallback(telemetry::layer::not_found_fallback)
            .method_not_allowed_fallback(telemetry::layer::method_not_allowed_fallback)
            .with_state(self.clone());
        telemetry.observe_router(routes)
    }

    /// Replaces every knob at once, after validating them (nothing changes on error).
    pub fn set_faults(&self, faults: Faults) -> Result<(), InvalidFault> {
        faults.validate()?;
        *self
            .shared
            .faults
            .write()
            .unwrap_or_else(PoisonError::into_inner) = faults;
        Ok(())
    }

    /// Applies a partial JSON object of knobs atomically (see [`Faults::patched`]); returns the
    /// knobs now in force.
    pub fn patch_faults(&self, patch: &serde_json::Value) -> Result<Faults, InvalidFault> {
        let mut faults = self
            .shared
            .faults
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        *faults = faults.patched(patch)?;
        Ok(*faults)
    }

    /// The knobs in force.
    pub fn faults(&self) -> Faults {
        *self
            .shared
            .faults
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The counters since start or the last [`Simulator::reset`].
    pub fn stats(&self) -> Stats {
        let counters = &self.shared.counters;
        let approved = counters.approved.get();
        let declined = counters.declined.get();
        Stats {
            charges: approved + declined,
            approved,
            declined,
            replayed: counters.replayed.get(),
            errors_injected: counters.errors_injected.get(),
            hangs: counters.hangs.get(),
        }
    }

    /// Forgets every charge and zeroes the counters; the knobs stay. Requests in flight meanwhile
    /// may be counted before or after the reset.
    pub fn reset(&self) {
        let mut charges = lock(&self.shared.charges);
        charges.clear();
        let counters = &self.shared.counters;
        for counter in [
            &counters.approved,
            &counters.declined,
            &counters.replayed,
            &counters.errors_injected,
            &counters.hangs,
        ] {
            counter.reset();
        }
    }

    /// Ends every hang (answered 503) and delay now and from now on, so a server serving this
    /// simulator can drain quickly. [`RunningSimulator::stop`] calls it; call it yourself
    /// before a graceful shutdown when serving [`Simulator::router`] another way. Not undone.
    pub fn close(&self) {
        self.shared.closing.send_replace(true);
    }

    /// Records a new charge under `key` (declined with probability `decline_rate`) or finds the
    /// earlier one, counting and logging what happened.
    fn record_or_replay(&self, key: &str, request: &ChargeRequest, decline_rate: f64) -> Recorded {
        let recorded = lock(&self.shared.charges).record_or_replay(key, request, || {
            if Faults::roll(decline_rate) {
                Outcome::Declined
            } else {
                Outcome::Approved
            }
        });
        let counters = &self.shared.counters;
        match &recorded {
            Recorded::New(charge) => {
                match charge.outcome {
                    Outcome::Approved => counters.approved.increment(),
                    Outcome::Declined => counters.declined.increment(),
                }
                tracing::info!(
                    payments_sim.charge.id = %charge.id,
                    payments_sim.charge.outcome = charge.outcome.as_str(),
                    payments_sim.charge.amount_cents = charge.request.amount_cents,
                    "charge recorded"
                );
            }
            Recorded::Replayed(charge) => {
                counters.replayed.increment();
                tracing::info!(
                    payments_sim.charge.id = %charge.id,
                    payments_sim.charge.outcome = charge.outcome.as_str(),
                    "charge replayed"
                );
            }
            Recorded::KeyReused => {}
        }
        recorded
    }

    /// Waits `delay`, or less if the simulator is closed meanwhile.
    async fn delay(&self, delay: Duration) {
        if delay.is_zero() {
            return;
        }
        let mut closing = self.shared.closing.subscribe();
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = closing.wait_for(|closed| *closed) => {}
        }
    }

    /// Holds the request until the simulator is closed (503) or [`MAX_HANG`] passes (504).
    async fn hang(&self) -> SimError {
        use axum::http::StatusCode;
        use telemetry::ErrorKind;
        let mut closing = self.shared.closing.subscribe();
        match tokio::time::timeout(MAX_HANG, closing.wait_for(|closed| *closed)).await {
            Ok(_) => SimError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorKind::Unavailable,
                "simulated.unavailable",
                "the payment simulator is shutting down",
            ),
            Err(_) => SimError::new(
                StatusCode::GATEWAY_TIMEOUT,
                ErrorKind::Timeout,
                "simulated.timeout",
                "the payment provider did not answer in time (simulated hang)",
            ),
        }
    }
}

/// `GET /healthz`: 200 `{"status":"ok"}`.
async fn healthz() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

/// A simulator served on a listener of its own. Dropping it closes the simulator and stops the
/// server without waiting; [`RunningSimulator::stop`] waits for the server to finish.
#[derive(Debug)]
pub struct RunningSimulator {
    /// `http://ADDRESS:PORT` (`127.0.0.1` when listening on every interface).
    pub url: String,
    /// The address the listener is bound to.
    pub address: SocketAddr,
    /// The simulator served (knobs, stats).
    pub simulator: Simulator,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

impl RunningSimulator {
    /// Closes the simulator (hangs and delays end), stops accepting, and waits for the requests
    /// in flight to be answered.
    pub async fn stop(mut self) -> std::io::Result<()> {
        self.simulator.close();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.server.take() {
            Some(server) => server.await.map_err(std::io::Error::other)?,
            None => Ok(()),
        }
    }
}

impl Drop for RunningSimulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            self.simulator.close();
            let _ = stop.send(());
        }
    }
}

/// Serves `simulator` on `listener` (instrumented by `telemetry`, with connect info) on a task
/// of its own until the returned handle is stopped or dropped.
pub async fn spawn(
    listener: TcpListener,
    simulator: Simulator,
    telemetry: &Telemetry,
) -> std::io::Result<RunningSimulator> {
    let mut address = listener.local_addr()?;
    let local = address;
    if address.ip().is_unspecified() {
        address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let app = simulator.router(telemetry);
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(telemetry::serve::serve(listener, app, async move {
        let _ = stopped.await;
    }));
    Ok(RunningSimulator {
        url: format!("http://{address}"),
        address: local,
        simulator,
        stop: Some(stop),
        server: Some(server),
    })
}
