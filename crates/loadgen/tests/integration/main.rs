//! Integration tests of `loadgen`: the real binary against the real `shop` binary (spawned on
//! a free port with a fresh SQLite database), over real HTTP.

mod common;

mod cli_errors;
mod counts;
mod json_schema;
mod open_model;
mod thresholds;
mod tracing;
