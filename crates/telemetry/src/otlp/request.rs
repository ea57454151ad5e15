//! The export request around a batch: `Export{Trace,Logs}ServiceRequest`.
//!
//! `ResourceSpans`/`ResourceLogs` and `ScopeSpans`/`ScopeLogs` have the same wire shape
//! (resource = 1, scopes = 2; scope = 1, records = 2), so one envelope serves both signals.

use super::protobuf::{Writer, append_message};
use super::resource::scope;

/// Appends one encoded record (a `Span` or `LogRecord` body) to a scope's batch, framed as
/// `ScopeSpans.spans` / `ScopeLogs.log_records`.
pub(crate) fn append_record(batch: &mut Vec<u8>, record: &[u8]) {
    append_message(batch, 2, record);
}

/// The export request for `scopes` (each a scope name and its framed records), under the
/// encoded `resource`.
pub(crate) fn export_request(
    resource: &[u8],
    scope_version: &str,
    scopes: &[(&'static str, Vec<u8>)],
) -> Vec<u8> {
    let size: usize = scopes.iter().map(|(_, b)| b.len() + 64).sum::<usize>() + resource.len() + 16;
    let mut w = Writer::with_capacity(size);
    w.message(1, |w| {
        w.bytes(1, resource);
        for (name, records) in scopes {
            w.message(2, |w| {
                scope(w, 1, name, scope_version);
                w.raw(records);
            });
        }
    });
    w.buf
}
