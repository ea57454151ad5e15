//! What the shop tells the telemetry library about its domain: the library knows no shop words,
//! so the shop supplies its own lists here, and every telemetry instance of the shop is built
//! from [`telemetry_builder`].

use telemetry::{Telemetry, TelemetryBuilder, TelemetryConfig};

/// Log fields whose values are email addresses: only the domain is recorded (as the PII mode
/// allows). An email in any other field is scrubbed whole, like all free text.
pub const EMAIL_FIELDS: &[&str] = &["email", "user.email"];

/// The shop's identifiers that must never be a metric attribute, on top of the library's
/// generic list (`telemetry::metrics::FORBIDDEN_METRIC_ATTRIBUTE_KEYS`): they are unbounded.
pub const FORBIDDEN_METRIC_ATTRIBUTE_KEYS: &[&str] = &[
    "order.id",
    "product.id",
    "payment.charge_id",
    "idempotency.key",
];

/// A telemetry builder for `config` with the shop's vocabulary.
pub fn telemetry_builder(config: TelemetryConfig) -> TelemetryBuilder {
    Telemetry::builder(config)
        .email_fields(EMAIL_FIELDS)
        .forbidden_metric_attribute_keys(FORBIDDEN_METRIC_ATTRIBUTE_KEYS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shop_forbids_its_identifiers_on_metrics() {
        let (telemetry, _guard) = telemetry_builder(TelemetryConfig::for_tests("shop"))
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let keys: Vec<&str> = telemetry.forbidden_metric_attribute_keys().collect();
        assert!(keys.contains(&"order.id"), "the shop's");
        assert!(keys.contains(&"enduser.id"), "the library's");
        let mut attributes = vec![
            opentelemetry::KeyValue::new("order.id", 7),
            opentelemetry::KeyValue::new("shop.checkout.outcome", "placed"),
        ];
        telemetry.retain_allowed_metric_attributes(&mut attributes);
        assert_eq!(attributes.len(), 1);
        assert_eq!(attributes[0].key.as_str(), "shop.checkout.outcome");
        assert!(telemetry.pii().is_email_field("email"));
    }
}
