//! Integration tests of `loadgen`, in one binary: the real binary against the real `shop`
//! binary (spawned on a free port with a fresh SQLite database), over real HTTP. `common` is
//! the shared harness.

#![allow(clippy::unwrap_used)]

mod common;

mod cli_errors;
mod counts;
mod interrupt;
mod json_schema;
mod open_model;
mod thresholds;
mod tracing;
