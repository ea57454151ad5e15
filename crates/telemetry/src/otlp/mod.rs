//! The OTLP wire format, in one place: the protobuf writer ([`protobuf`]), the encoders of
//! each record kind — spans, SERVER and child alike ([`span`]), log records ([`log_record`]),
//! the resource and the instrumentation scope ([`resource`]) — and the export request that
//! wraps a batch ([`request`]). The batch queue ([`queue`]) only batches encoded bytes; the
//! transport (`otlp_export.rs`) only sends them.
//!
//! Every record is encoded once, on the thread that produces it, straight into protobuf bytes:
//! the stock path converts every batch into `opentelemetry-proto` structs (a `String` per
//! attribute key and value) and lets prost encode them, recomputing nested lengths at every
//! level; measured here, that was most of the per-request export cost. The receiver in
//! [`crate::testkit`] and this module's tests decode with the official generated types, so
//! every contract test checks this encoding.

pub(crate) mod log_record;
pub(crate) mod protobuf;
pub(crate) mod queue;
pub(crate) mod request;
pub(crate) mod resource;
pub(crate) mod span;
pub(crate) mod warnings;

#[cfg(all(test, feature = "testkit"))]
mod decode_tests;
