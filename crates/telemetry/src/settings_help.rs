//! The `--help` text of the library's settings: every environment variable
//! [`TelemetryConfig::from_env`](crate::TelemetryConfig::from_env) reads, with its default.
//! A binary prints it under its own settings.

/// One line per variable read by [`TelemetryConfig::from_lookup`](crate::TelemetryConfig::from_lookup):
/// name, what it sets, default. A test checks that every variable read is listed.
pub const SETTINGS_HELP: &str = "\
Telemetry (the telemetry library):
  APP_ENV                         persona: local | cloud                       [default: local]
  OTEL_SERVICE_NAME               service.name                                 [default: the binary's name]
  APP_VERSION                     service.version                              [default: the crate version]
  APP_DEPLOYMENT_ENVIRONMENT      deployment.environment.name                  [default: local; cloud: production]
  OTEL_SDK_DISABLED               true: no OTLP export at all                  [default: false]
  OTEL_EXPORTER_OTLP_ENDPOINT     OTLP collector URL (http://, or https:// for TLS) [default: none, no export; cloud: http://localhost:4317 or :4318]
  OTEL_EXPORTER_OTLP_PROTOCOL     grpc | http/protobuf                         [default: grpc]
  OTEL_EXPORTER_OTLP_HEADERS      key=value,... sent with every export         [default: none]
  OTEL_EXPORTER_OTLP_TIMEOUT      export timeout, ms                           [default: 10000]
  OTEL_EXPORTER_OTLP_CERTIFICATE  CA file (PEM) trusted for an https:// collector [default: the platform's root certificates]
  OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE, OTEL_EXPORTER_OTLP_CLIENT_KEY
                                  client certificate and key files (PEM), mutual TLS [default: none]
  OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE, OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE, OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY,
  OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE, OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE, OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY,
  OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE, OTEL_EXPORTER_OTLP_LOGS_CLIENT_CERTIFICATE, OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY
                                  the same per signal                          [default: the variables above]
  OTEL_TRACES_SAMPLER             parentbased_always_on | always_on | always_off | parentbased_always_off |
                                  traceidratio | parentbased_traceidratio      [default: parentbased_always_on]
  OTEL_TRACES_SAMPLER_ARG         sampling ratio, 0..1                         [default: 1]
  OTEL_BSP_MAX_QUEUE_SIZE         span queue size                              [default: 2048]
  OTEL_BSP_SCHEDULE_DELAY         span export delay, ms                        [default: 5000]
  OTEL_BSP_MAX_EXPORT_BATCH_SIZE  spans per export                             [default: 512]
  OTEL_BLRP_MAX_QUEUE_SIZE        log record queue size                        [default: 2048]
  OTEL_BLRP_SCHEDULE_DELAY        log export delay, ms                         [default: 1000]
  OTEL_BLRP_MAX_EXPORT_BATCH_SIZE log records per export                       [default: 512]
  OTEL_METRIC_EXPORT_INTERVAL     metric export interval, ms                   [default: 60000]
  APP_LOG_FORMAT                  stdout lines: json | gcp | pretty            [default: pretty on a terminal, else json; cloud: gcp]
  RUST_LOG                        log filter: off|error|warn|info|debug|trace, target=level [default: info]
  APP_PII_MODE                    pseudonym | off | full                       [default: pseudonym]
  APP_PII_KEY                     pseudonym key, >= 16 bytes (secret)          [default: a random key per process; cloud: required]
  APP_TRACE_INCOMING              continue | link (start a new trace)          [default: continue]
  APP_SPANS_OUTSIDE_REQUESTS      trace | drop (tracing spans outside requests) [default: trace]
  APP_ACCESS_LOG_EXCLUDE          routes without an access line, comma-separated [default: /healthz,/readyz,/metrics]
  APP_METRIC_CARDINALITY_LIMIT    label sets per instrument, 10..10000         [default: 200]
  APP_GCP_PROJECT                 project of Cloud Logging trace ids, cloud.account.id [default: GOOGLE_CLOUD_PROJECT]
  GOOGLE_CLOUD_PROJECT            fallback for APP_GCP_PROJECT                 [default: none; cloud: the metadata server's]
  APP_GCP_METADATA                on | off: read project, region, instance id from the metadata server
                                  at start-up (1.5 s at most; a WARN line if it does not answer) [default: off; cloud: on]
  GCE_METADATA_HOST               metadata server, host[:port]                 [default: metadata.google.internal]
  K_SERVICE, K_REVISION           faas.name, faas.version (set by Cloud Run)   [default: none]
  APP_TRUSTED_PROXIES             whose forwarding header sets client.address: off | a number of proxies
                                  (1-16) | trusted networks, e.g. 10.0.0.0/8,2001:db8::/32 [default: off; cloud: 1]
  APP_FORWARDED_HEADER            the header those proxies append to: x-forwarded-for | forwarded [default: x-forwarded-for]
  APP_TRACE_PROBES                on | off: spans for the probe routes         [default: off]
  APP_PROBE_ROUTES                probe routes, comma-separated (metrics and access lines unchanged) [default: /healthz,/readyz]
  SENTRY_DSN                      report 5xx and panics to Sentry (needs the `sentry` feature; secret) [default: none, off]
";

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::SETTINGS_HELP;
    use crate::TelemetryConfig;
    use std::cell::RefCell;

    /// Every variable `from_lookup` asks for (in both personas) is listed in the help.
    #[test]
    fn every_variable_read_is_listed() {
        let read = RefCell::new(Vec::<String>::new());
        for persona in ["local", "cloud"] {
            TelemetryConfig::from_lookup("svc", "1.0.0", |key| {
                read.borrow_mut().push(key.to_owned());
                match key {
                    "APP_ENV" => Some(persona.to_owned()),
                    "APP_PII_KEY" => Some("a-key-of-sixteen-bytes-or-more".to_owned()),
                    // Read, but the metadata server is not asked here.
                    "APP_GCP_METADATA" => Some("off".to_owned()),
                    _ => None,
                }
            })
            .unwrap();
        }
        let read = read.into_inner();
        assert!(read.len() > 20, "{read:?}");
        for key in read {
            assert!(
                SETTINGS_HELP.contains(&key),
                "{key} is read but not in SETTINGS_HELP"
            );
        }
    }
}
