//! Every integration test of the `telemetry` crate, in one binary (one link on a 2-core machine).
//! Each module is one former test file; `common` is their shared harness.

mod cardinality_limit;
mod client_address;
mod collector_outages;
mod common;
mod export_health;
mod gcp_metadata;
mod hostile_input;
mod http_contract;
mod outbound;
mod probes;
mod prometheus_exposition;
mod sentry;
mod testkit_receiver;
mod tls_export;
mod tracing_spans;
