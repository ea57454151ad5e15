output "service_url" {
  description = "The service's URL."
  value       = google_cloud_run_v2_service.shop.uri
}

output "image_repository" {
  description = "Where the deploy workflow pushes images (GitHub variable IMAGE_REPOSITORY)."
  value       = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"
}

output "runtime_service_account" {
  description = "The identity the service runs as."
  value       = google_service_account.runtime.email
}

output "deployer_service_account" {
  description = "The identity the deploy workflow impersonates (GitHub variable DEPLOYER_SERVICE_ACCOUNT)."
  value       = google_service_account.deployer.email
}

output "workload_identity_provider" {
  description = "Full name of the Workload Identity provider (GitHub variable WORKLOAD_IDENTITY_PROVIDER)."
  value       = google_iam_workload_identity_pool_provider.github.name
}

output "log_bucket" {
  description = "The service's log bucket (30-day retention)."
  value       = google_logging_project_bucket_config.service.id
}

output "bigquery_logs_dataset" {
  description = "The BigQuery dataset the log sink writes to."
  value       = "${var.project_id}.${google_bigquery_dataset.logs.dataset_id}"
}

output "slos" {
  description = "Full names of the SLOs (select_slo_burn_rate and the SLO page take them)."
  value       = local.slo_names
}
