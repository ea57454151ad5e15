# The shop's GCP project pieces (docs/deploy-gcp.md). Checked here with `terraform fmt` and
# checkov only: no provider can be downloaded here, so `terraform validate` and `plan` run
# first on the operator's machine.
terraform {
  required_version = ">= 1.5"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.10"
    }
  }

  # State holds the PagerDuty key (a sensitive variable): keep it in a bucket only the
  # platform team can read, e.g.
  #   terraform init -backend-config="bucket=<project>-tfstate" -backend-config="prefix=shop"
  backend "gcs" {}
}

provider "google" {
  project = var.project_id
  region  = var.region
}

data "google_project" "this" {
  project_id = var.project_id
}
