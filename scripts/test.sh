#!/usr/bin/env bash
# The one test command: what CI runs (.ci/run) and what a newcomer runs on a fresh machine.
# Installs what the tests need, then: the docs' links (scripts/check-doc-links.py), format check, clippy -D warnings, every test, a
# bounded schemathesis run against the real binary (scripts/api-fuzz.sh), the telemetry console in headless Chromium
# (scripts/console-browser.sh), the local stack's checks (scripts/check-deploy.sh) and the cloud deployment's (scripts/check-gcp.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

# The shop's tests run on SQLite and on PostgreSQL (127.0.0.1:5432, database `test`): here a
# missing PostgreSQL fails them instead of skipping.
export SHOP_REQUIRE_POSTGRES=1
export PROPTEST_CASES=2000

apt_install() {
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >/dev/null 2>&1 || {
    $sudo apt-get update >/dev/null 2>&1
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
  }
}

# promtool validates /metrics (Debian's `prometheus` package).
if ! command -v promtool >/dev/null 2>&1; then
  log "installing promtool (Debian package prometheus)"
  apt_install prometheus
fi

# scripts/api-fuzz.sh: curl, and a Python venv for schemathesis (Debian splits venv out).
if ! command -v curl >/dev/null 2>&1; then
  log "installing curl"
  apt_install curl
fi
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  log "installing python3-venv"
  apt_install python3-venv
fi

# The console's test exporting from the Python OpenTelemetry SDK (crates/console): a venv from
# PyPI under target/ (scripts/python-otel-venv.sh); here a missing venv fails that test.
log "Python OpenTelemetry SDK for the console's receiver test (scripts/python-otel-venv.sh)"
CONSOLE_PYTHON="$(scripts/python-otel-venv.sh)"
export CONSOLE_PYTHON CONSOLE_REQUIRE_PYTHON=1

# The collector-hop tests (crates/shop/tests/integration/collector_hop.rs) run a real
# OpenTelemetry collector: PyPI's rotel, pinned, in a git-ignored venv. Here a missing rotel
# fails them instead of skipping.
SHOP_ROTEL_AGENT=$(scripts/rotel-agent.sh)
export SHOP_ROTEL_AGENT
export SHOP_REQUIRE_ROTEL=1

log "docs: every relative link and file path in README.md and docs/ exists"
python3 scripts/check-doc-links.py

log "rustfmt"
cargo fmt --all -- --check

log "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
  cargo test --workspace --locked --doc
else
  cargo test --workspace --locked --no-fail-fast
fi

log "API fuzzing: schemathesis against the running shop and its /openapi.json"
scripts/api-fuzz.sh

log "telemetry console: headless Chromium against the running shop (scripts/console-browser.sh)"
scripts/console-browser.sh

log "local observability stack: static checks, rule and routing tests, live Prometheus (scripts/check-deploy.sh)"
scripts/check-deploy.sh

log "cloud deployment: Terraform, Cloud Run YAML, workflows, Collector configs (scripts/check-gcp.sh)"
scripts/check-gcp.sh

log "all checks passed"
