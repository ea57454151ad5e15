# The shop with the Collector as a sidecar that starts first: the same service as
# deploy/gcp/service.yaml (scripts/check-gcp.sh compares them).
locals {
  collector_config_dir = "/etc/otelcol-google"
  # Each overlay in a directory of its own, beside (not inside) the base config's mount.
  saas_config_dir = "/etc/otelcol-saas"
  collector_args = concat(
    ["--config=${local.collector_config_dir}/config.yaml"],
    [for name, _ in local.saas_enabled : "--config=${local.saas_config_dir}/${name}/${name}.yaml"],
  )
}

resource "google_cloud_run_v2_service" "shop" {
  #checkov:skip=CKV_GCP_102: the shop is a public API (var.public); ingress stays open to the internet, and requests are authenticated by the shop's own bearer tokens.
  name                = var.service_name
  location            = var.region
  ingress             = "INGRESS_TRAFFIC_ALL"
  deletion_protection = true

  template {
    service_account                  = google_service_account.runtime.email
    execution_environment            = "EXECUTION_ENVIRONMENT_GEN2"
    max_instance_request_concurrency = 80
    # Request timeout = the 10 s Cloud Run allows between SIGTERM and SIGKILL (see service.yaml).
    timeout = "10s"

    scaling {
      min_instance_count = 0
      max_instance_count = 10
    }

    containers {
      name       = "shop"
      image      = var.image
      depends_on = ["collector"]

      ports {
        name           = "http1"
        container_port = 8080
      }

      resources {
        limits = {
          cpu    = "1"
          memory = "512Mi"
        }
        # CPU always allocated: export threads and the sidecar work between requests.
        cpu_idle          = false
        startup_cpu_boost = true
      }

      env {
        name  = "APP_ENV"
        value = "cloud"
      }
      env {
        name  = "OTEL_SERVICE_NAME"
        value = var.service_name
      }
      env {
        name  = "OTEL_EXPORTER_OTLP_ENDPOINT"
        value = "http://localhost:4317"
      }
      env {
        name  = "APP_GCP_PROJECT"
        value = var.project_id
      }
      env {
        name = "APP_PII_KEY"
        value_source {
          secret_key_ref {
            secret  = google_secret_manager_secret.pii_key.secret_id
            version = "latest"
          }
        }
      }
      env {
        name = "DATABASE_URL"
        value_source {
          secret_key_ref {
            secret  = google_secret_manager_secret.database_url.secret_id
            version = "latest"
          }
        }
      }

      startup_probe {
        http_get {
          path = "/readyz"
          port = 8080
        }
        period_seconds    = 2
        timeout_seconds   = 1
        failure_threshold = 30
      }
      liveness_probe {
        http_get {
          path = "/healthz"
          port = 8080
        }
        period_seconds    = 10
        timeout_seconds   = 1
        failure_threshold = 3
      }
    }

    containers {
      name  = "collector"
      image = var.collector_image
      args  = local.collector_args

      resources {
        limits = {
          cpu    = "1"
          memory = "256Mi"
        }
        cpu_idle = false
      }

      # The SaaS keys that are on (secrets.tf), next to the settings of their overlay.
      dynamic "env" {
        for_each = local.saas_enabled
        content {
          name = env.value.key_env
          value_source {
            secret_key_ref {
              secret  = env.value.secret
              version = "latest"
            }
          }
        }
      }
      dynamic "env" {
        for_each = merge({}, [for s in values(local.saas_enabled) : s.env]...)
        content {
          name  = env.key
          value = env.value
        }
      }

      volume_mounts {
        name       = "collector-config"
        mount_path = local.collector_config_dir
      }
      dynamic "volume_mounts" {
        for_each = local.saas_enabled
        content {
          name       = "collector-${volume_mounts.key}"
          mount_path = "${local.saas_config_dir}/${volume_mounts.key}"
        }
      }

      startup_probe {
        http_get {
          path = "/"
          port = 13133
        }
        period_seconds    = 1
        timeout_seconds   = 1
        failure_threshold = 30
      }
      liveness_probe {
        http_get {
          path = "/"
          port = 13133
        }
        period_seconds    = 10
        timeout_seconds   = 1
        failure_threshold = 3
      }
    }

    volumes {
      name = "collector-config"
      secret {
        secret = google_secret_manager_secret.collector_config.secret_id
        items {
          version = "latest"
          path    = "config.yaml"
        }
      }
    }
    dynamic "volumes" {
      for_each = local.saas_enabled
      content {
        name = "collector-${volumes.key}"
        secret {
          secret = google_secret_manager_secret.saas_overlay[volumes.key].secret_id
          items {
            version = "latest"
            path    = "${volumes.key}.yaml"
          }
        }
      }
    }
  }

  # The deploy workflow owns the shop's image and the traffic split (a tagged revision with no
  # traffic, then 100 % once healthy); Terraform sets them once and leaves them alone after.
  lifecycle {
    ignore_changes = [
      template[0].containers[0].image,
      traffic,
      client,
      client_version,
    ]
  }

  depends_on = [
    google_project_service.apis,
    google_project_iam_member.runtime,
    google_secret_manager_secret_iam_member.runtime_reads,
    google_secret_manager_secret_version.collector_config,
    google_secret_manager_secret_version.saas_overlay,
  ]
}

resource "google_cloud_run_v2_service_iam_member" "public" {
  count = var.public ? 1 : 0

  name     = google_cloud_run_v2_service.shop.name
  location = google_cloud_run_v2_service.shop.location
  role     = "roles/run.invoker"
  member   = "allUsers"
}
