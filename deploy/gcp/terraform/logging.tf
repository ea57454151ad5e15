# Logs: Cloud Run ships the shop's stdout (gcp format) to Cloud Logging; that is the only copy
# (the sidecar drops the OTLP copy, deploy/gcp/collector/config.yaml). Here they are routed to a
# bucket of their own with 30-day retention, kept out of _Default (so no line is stored twice),
# and copied to BigQuery.
locals {
  # The service's revisions: its stdout/stderr and Cloud Run's request log of it.
  service_logs = join(" AND ", [
    "resource.type=\"cloud_run_revision\"",
    "resource.labels.service_name=\"${var.service_name}\"",
  ])

  # Not stored anywhere. Successful requests are in the shop's own access line already
  # (APP_ACCESS_LOG_EXCLUDE keeps successful probes out of it), so below WARNING:
  exclusions = {
    # Cloud Run's request log duplicates the shop's access line; its 5xx and timeouts stay
    # (some never reach the shop: 503 at max instances, 504 at the request timeout).
    "request-log-below-warning" = "logName=\"projects/${var.project_id}/logs/run.googleapis.com%2Frequests\" AND severity<WARNING"
    # Health and readiness probes, and /metrics, unless they failed.
    "health-checks" = "httpRequest.requestUrl=~\"/(healthz|readyz|metrics)\" AND severity<WARNING"
    # DEBUG and lines without a severity: noise in production (RUST_LOG is info by default).
    "below-info" = "severity<INFO"
  }
}

resource "google_logging_project_bucket_config" "service" {
  project        = var.project_id
  location       = "global"
  bucket_id      = var.service_name
  retention_days = var.log_retention_days
  description    = "Logs of the ${var.service_name} Cloud Run service"
}

resource "google_logging_project_sink" "to_bucket" {
  name        = "${var.service_name}-to-bucket"
  destination = "logging.googleapis.com/${google_logging_project_bucket_config.service.id}"
  filter      = local.service_logs

  dynamic "exclusions" {
    for_each = local.exclusions
    content {
      name   = exclusions.key
      filter = exclusions.value
    }
  }

  unique_writer_identity = true
}

# Kept out of the _Default bucket: it would hold the same lines a second time (and for its own
# retention). Exclusions of the _Default sink are project exclusions.
resource "google_logging_project_exclusion" "not_in_default" {
  name        = "${var.service_name}-not-in-default"
  description = "${var.service_name} logs go to their own bucket (sink ${google_logging_project_sink.to_bucket.name})"
  filter      = local.service_logs
}

# BigQuery: dataset <service>_logs, one date-partitioned table per log; partitions older than
# the retention are deleted (a table expiry would delete the whole table at once).
resource "google_bigquery_dataset" "logs" {
  #checkov:skip=CKV_GCP_81: Google-managed encryption; add default_encryption_configuration with a Cloud KMS key where policy asks for CMEK.
  dataset_id                      = "${replace(var.service_name, "-", "_")}_logs"
  location                        = var.region
  description                     = "Logs of the ${var.service_name} Cloud Run service (log sink ${var.service_name}-to-bigquery)"
  default_partition_expiration_ms = var.log_retention_days * 24 * 60 * 60 * 1000
  delete_contents_on_destroy      = false

  depends_on = [google_project_service.apis]
}

resource "google_logging_project_sink" "to_bigquery" {
  name        = "${var.service_name}-to-bigquery"
  destination = "bigquery.googleapis.com/projects/${var.project_id}/datasets/${google_bigquery_dataset.logs.dataset_id}"
  filter      = local.service_logs

  dynamic "exclusions" {
    for_each = local.exclusions
    content {
      name   = exclusions.key
      filter = exclusions.value
    }
  }

  bigquery_options {
    use_partitioned_tables = true
  }
  unique_writer_identity = true
}

resource "google_bigquery_dataset_iam_member" "sink_writes" {
  dataset_id = google_bigquery_dataset.logs.dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = google_logging_project_sink.to_bigquery.writer_identity
}
