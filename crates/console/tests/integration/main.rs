//! The console crate's one integration test binary.

mod api;
mod common;
mod python_sdk;
mod tap;
