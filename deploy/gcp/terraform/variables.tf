variable "project_id" {
  description = "The GCP project the service runs in."
  type        = string
}

variable "region" {
  description = "Region of the Cloud Run service, the Artifact Registry repository and the BigQuery dataset."
  type        = string
  default     = "europe-west1"
}

variable "service_name" {
  description = "Cloud Run service name; also names the service account, the repository, the log bucket and the BigQuery dataset (<service>_logs)."
  type        = string
  default     = "shop"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}[a-z0-9]$", var.service_name))
    error_message = "service_name: 3-22 characters of a-z, 0-9 and '-', starting with a letter."
  }
}

variable "image" {
  description = "The shop's image for the first deploy (later deploys come from .github/workflows/deploy.yml, which Terraform does not undo), e.g. europe-west1-docker.pkg.dev/<project>/shop/shop@sha256:..."
  type        = string
}

variable "collector_image" {
  description = "The Google-Built OpenTelemetry Collector, pinned; its component list is deploy/gcp/collector/components-0.137.0.txt."
  type        = string
  default     = "us-docker.pkg.dev/cloud-ops-agents-artifacts/google-cloud-opentelemetry-collector/otelcol-google:0.137.0"
}

variable "log_retention_days" {
  description = "Retention of the service's log bucket and of the BigQuery log partitions."
  type        = number
  default     = 30
}

variable "public" {
  description = "Let anyone invoke the service (a public shop API). false: only principals granted roles/run.invoker."
  type        = bool
  default     = true
}

variable "github_owner" {
  description = "Owner (user or organisation) of the GitHub repository whose workflows may deploy (Workload Identity Federation)."
  type        = string
}

variable "github_repository_name" {
  description = "Name of that repository (without the owner)."
  type        = string
}

variable "pagerduty_service_key" {
  description = "PagerDuty integration key (Events API v2) of the service to page. Pass it as TF_VAR_pagerduty_service_key (e.g. from Secret Manager), never in a file."
  type        = string
  sensitive   = true
}

variable "ticket_email" {
  description = "E-mail address for slow-burn (ticket) alerts and budget alerts; empty: tickets go to PagerDuty too, at low urgency."
  type        = string
  default     = ""
}

variable "billing_account" {
  description = "Billing account id (XXXXXX-XXXXXX-XXXXXX) the budget is set on."
  type        = string
}

variable "monthly_budget" {
  description = "Monthly budget of the project in the billing account's currency; alerts at 80 % and 100 %."
  type        = number
  default     = 100
}

variable "datadog_api_key_secret" {
  description = "Secret Manager secret id holding the Datadog API key; set, it turns on the deploy/saas/datadog.yaml overlay (metrics to Datadog). Empty: off."
  type        = string
  default     = ""
}

variable "datadog_site" {
  description = "Datadog site of the OTLP intake (datadoghq.com, datadoghq.eu, us5.datadoghq.com, ...)."
  type        = string
  default     = "datadoghq.com"
}

variable "newrelic_license_key_secret" {
  description = "Secret Manager secret id holding the New Relic license key; set, it turns on the deploy/saas/newrelic.yaml overlay (traces to New Relic). Empty: off."
  type        = string
  default     = ""
}

variable "newrelic_otlp_endpoint" {
  description = "New Relic OTLP endpoint (https://otlp.nr-data.net, EU https://otlp.eu01.nr-data.net)."
  type        = string
  default     = "https://otlp.nr-data.net"
}
