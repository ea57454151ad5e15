//! The export request around a batch: `Export{Trace,Logs}ServiceRequest`.
//!
//! `ResourceSpans`/`ResourceLogs` and `ScopeSpans`/`ScopeLogs` have the same wire shape
//! (resource = 1, scopes = 2; scope = 1, records = 2), so one envelope serves both signals.

use super::protobuf::{Writer, append_message, len_field};
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
    let scope_lens: Vec<usize> = heads
        .iter()
        .zip(scopes)
        .map(|(head, (_, records))| head.len() + records.len())
        .collect();
    let body_len =
        len_field(resource.len()) + scope_lens.iter().map(|&len| len_field(len)).sum::<usize>();
    let mut w = Writer::with_capacity(len_field(body_len));
    w.message_head(1, body_len);
    w.bytes(1, resource);
    for ((head, (_, records)), &len) in heads.iter().zip(scopes).zip(&scope_lens) {
        w.message_head(2, len);
        w.raw(head);
        w.raw(records);
    }
    debug_assert_eq!(w.buf.len(), len_field(body_len));
    w.buf
}
