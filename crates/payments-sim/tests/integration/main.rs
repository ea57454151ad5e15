//! Every integration test of the `payments-sim` crate, in one binary (one link on a 2-core
//! machine). Each module is one concern; `common` is their shared harness.

mod binary;
mod common;
mod simulator;
