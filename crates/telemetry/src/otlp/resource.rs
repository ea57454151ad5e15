//! The `Resource` and `InstrumentationScope` messages.

use opentelemetry_sdk::Resource;

use super::protobuf::{Writer, key_value};

/// The encoded `Resource` message body (attributes), computed once per exporter.
pub(crate) fn resource_body(resource: &Resource) -> Vec<u8> {
    let mut w = Writer::with_capacity(512);
    for (key, value) in resource.iter() {
        key_value(&mut w, 1, key.as_str(), value);
    }
    w.buf
}

/// An `InstrumentationScope` message as field `field`.
pub(crate) fn scope(w: &mut Writer, field: u32, name: &str, version: &str) {
    w.message(field, |w| {
        w.string(1, name);
        w.string(2, version);
    });
}
