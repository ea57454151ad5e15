//! Every integration test of the `shop` crate, in one binary (one link on a 2-core machine).
//! Each module is one former test file; `common` is their shared harness.

mod accounts;
mod binary;
mod catalog;
mod collector_hop;
mod common;
mod console;
mod metric_contract;
mod openapi;
mod operations;
mod orders;
mod payments_binary;
mod privacy;
mod shutdown;
mod stdout_service;
mod tls;
mod w3c_conformance;
