resource "google_artifact_registry_repository" "images" {
  #checkov:skip=CKV_GCP_84: Google-managed encryption; a customer-managed key (Cloud KMS) adds a key to run and pay for and protects nothing more for a public application image. Add kms_key_name where policy asks for CMEK.
  location      = var.region
  repository_id = var.service_name
  format        = "DOCKER"
  description   = "Images of ${var.service_name}, pushed by .github/workflows/deploy.yml"

  docker_config {
    immutable_tags = true
  }

  # Keep the 20 newest images (rollback targets); delete untagged ones after a week.
  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 20
    }
  }
  cleanup_policies {
    id     = "delete-untagged"
    action = "DELETE"
    condition {
      tag_state  = "UNTAGGED"
      older_than = "604800s"
    }
  }

  depends_on = [google_project_service.apis]
}
