//! The shop: a small monolith API (accounts, catalog, orders with an outbound payment call)
//! observed end to end by the `telemetry` crate.
//!
//! `main.rs` only reads configuration, starts telemetry and calls [`app::build`] and
//! [`serve`]; tests do the same with their own telemetry instance and database.

pub mod accounts;
pub mod app;
pub mod catalog;
pub mod config;
pub mod conformance;
pub mod error;
pub mod events;
mod health;
pub mod observability;
pub mod openapi;
pub mod orders;
pub mod payments;
pub mod store;

use std::future::Future;
use std::net::SocketAddr;

/// Serves `app` on `listener` until `shutdown` completes, then stops accepting and waits for
/// the in-flight requests. Handlers see the peer address (`ConnectInfo<SocketAddr>`), which the
/// telemetry layer records as `client.address` (as the PII mode allows).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
