//! The shop: a small monolith API (accounts, catalog, orders with an outbound payment call)
//! observed end to end by the `telemetry` crate.
//!
//! `main.rs` only parses the command line ([`cli`]) and calls [`run`], which starts telemetry,
//! builds the app ([`app::build`]) and serves it; tests do the same in-process, or build the
//! app with their own telemetry instance and database and [`serve`] it.

pub mod accounts;
pub mod app;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod conformance;
pub mod error;
pub mod events;
mod health;
pub mod observability;
pub mod openapi;
pub mod orders;
pub mod payments;
pub mod run;
pub mod state;
pub mod store;

pub use telemetry::serve::serve;
