//! The console crate's one integration test binary.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod api;
mod common;
mod python_sdk;
mod tap;
