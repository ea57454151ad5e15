//! The export request around a batch: `Export{Trace,Logs}ServiceRequest`.
//!
//! `ResourceSpans`/`ResourceLogs` and `ScopeSpans`/`ScopeLogs` have the same wire shape
//! (resource = 1, scopes = 2; scope = 1, records = 2), so one envelope serves both signals.

use super::protobuf::{Writer, append_message, varint_len};
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
    // Every length is known before its body is written, so nothing is moved to make room
    // for a length prefix (a batch is up to 2 MiB).
    let heads: Vec<Vec<u8>> = scopes
        .iter()
        .map(|(name, _)| {
            let mut w = Writer::with_capacity(64);
            scope(&mut w, 1, name, scope_version);
            w.buf
        })
        .collect();
    let scope_len =
        |(head, (_, records)): (&Vec<u8>, &(&'static str, Vec<u8>))| head.len() + records.len();
    let field = |len: usize| 1 + varint_len(len as u64) + len;
    let body_len = field(resource.len())
        + heads
            .iter()
            .zip(scopes)
            .map(|pair| field(scope_len(pair)))
            .sum::<usize>();
    let mut w = Writer::with_capacity(field(body_len));
    w.message_head(1, body_len);
    w.bytes(1, resource);
    for pair in heads.iter().zip(scopes) {
        w.message_head(2, scope_len(pair));
        w.raw(pair.0);
        w.raw(&pair.1.1);
    }
    debug_assert_eq!(w.buf.len(), field(body_len));
    w.buf
}
