# Secrets the service reads. Terraform creates the secrets, never their values: the operator
# adds a version of shop-pii-key and shop-database-url (docs/deploy-gcp.md, step 3), so no value
# is in a file or in the Terraform state. The Collector's config is not secret, but Secret
# Manager is how Cloud Run mounts a file; its version is the committed file.
locals {
  saas = {
    datadog = {
      enabled = var.datadog_api_key_secret != ""
      secret  = var.datadog_api_key_secret
      key_env = "DD_API_KEY"
      env     = { DD_SITE = var.datadog_site }
    }
    newrelic = {
      enabled = var.newrelic_license_key_secret != ""
      secret  = var.newrelic_license_key_secret
      key_env = "NEW_RELIC_LICENSE_KEY"
      env     = { NEW_RELIC_OTLP_ENDPOINT = var.newrelic_otlp_endpoint }
    }
  }
  saas_enabled = { for name, s in local.saas : name => s if s.enabled }

  # Secrets the runtime service account may read: its own, plus the SaaS keys that are on.
  runtime_secrets = merge(
    {
      pii_key          = google_secret_manager_secret.pii_key.secret_id
      database_url     = google_secret_manager_secret.database_url.secret_id
      collector_config = google_secret_manager_secret.collector_config.secret_id
    },
    { for name, s in local.saas_enabled : "${name}_key" => s.secret },
    { for name, s in google_secret_manager_secret.saas_overlay : "${name}_overlay" => s.secret_id },
  )
}

resource "google_secret_manager_secret" "pii_key" {
  #checkov:skip=CKV_GCP_125: the replication policy is automatic (Google-managed keys); a customer-managed key is an org policy choice, not needed for an HMAC key only this service reads.
  secret_id = "${var.service_name}-pii-key"
  labels    = { service = var.service_name }
  replication {
    auto {}
  }
  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret" "database_url" {
  #checkov:skip=CKV_GCP_125: see pii_key.
  secret_id = "${var.service_name}-database-url"
  labels    = { service = var.service_name }
  replication {
    auto {}
  }
  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret" "collector_config" {
  #checkov:skip=CKV_GCP_125: see pii_key; the Collector config holds no secret at all.
  secret_id = "${var.service_name}-collector-config"
  labels    = { service = var.service_name }
  replication {
    auto {}
  }
  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_version" "collector_config" {
  secret      = google_secret_manager_secret.collector_config.id
  secret_data = file("${path.module}/../collector/config.yaml")
}

# One secret per SaaS overlay that is on (deploy/saas/<name>.yaml), mounted beside the base config.
resource "google_secret_manager_secret" "saas_overlay" {
  #checkov:skip=CKV_GCP_125: see pii_key; an overlay names its key by environment variable only.
  for_each = local.saas_enabled

  secret_id = "${var.service_name}-collector-${each.key}"
  labels    = { service = var.service_name }
  replication {
    auto {}
  }
  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_version" "saas_overlay" {
  for_each = local.saas_enabled

  secret      = google_secret_manager_secret.saas_overlay[each.key].id
  secret_data = file("${path.module}/../../saas/${each.key}.yaml")
}

resource "google_secret_manager_secret_iam_member" "runtime_reads" {
  for_each = local.runtime_secrets

  secret_id = each.value
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.runtime.email}"
}
