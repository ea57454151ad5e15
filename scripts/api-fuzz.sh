#!/usr/bin/env bash
# A bounded schemathesis run against the real shop binary: the OpenAPI document at
# /openapi.json must describe every answer the service really gives.
#
# Builds `shop`, starts it on a free loopback port with a throwaway SQLite database, signs up
# a user for a bearer token, and lets schemathesis (a pinned version, installed from PyPI into
# a venv under the cargo target directory) generate requests for every documented operation.
# Any finding fails the script: a 5xx, a body that does not match its documented schema, a
# status, content type or header the document does not list, an undocumented method not
# answered 405, an authenticated route answering without the token. The server's output is
# printed on failure. Called by scripts/test.sh; runs alone too.
#
# Knobs: API_FUZZ_MAX_EXAMPLES (default 50 test cases per operation and phase),
# API_FUZZ_SEED (default fixed, so CI runs are reproducible; set another to explore),
# API_FUZZ_WORKERS (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION="4.32.5"
# No 5xx; bodies, statuses, content types and headers as documented; an undocumented method
# answers 405 with a correct Allow header; the bearer token is really required where declared.
CHECKS="not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance,response_headers_conformance,unsupported_method,allow_header_conformance,missing_required_header,ignored_auth"
MAX_EXAMPLES="${API_FUZZ_MAX_EXAMPLES:-50}"
SEED="${API_FUZZ_SEED:-20261127}"
WORKERS="${API_FUZZ_WORKERS:-2}"

target_dir="${CARGO_TARGET_DIR:-target}"
mkdir -p "$target_dir"
target_dir="$(cd "$target_dir" && pwd)"
venv="$target_dir/schemathesis-venv"

# The venv is reused while it holds the pinned version.
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -qx "schemathesis, version $SCHEMATHESIS_VERSION"; then
  echo "installing schemathesis $SCHEMATHESIS_VERSION into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

cargo build -p shop --locked
work="$(mktemp -d "${TMPDIR:-/tmp}/shop-api-fuzz.XXXXXX")"
# A copy: another checkout sharing CARGO_TARGET_DIR may rebuild target/debug/shop meanwhile.
shop="$work/shop"
cp "$target_dir/debug/shop" "$shop"
server_log="$work/server.log"
server_pid=""

finish() {
  local status=$?
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [ "$status" -ne 0 ]; then
    echo "---- shop output ($server_log) ----" >&2
    cat "$server_log" >&2 || true
    echo "---- end of shop output; kept in $work ----" >&2
  else
    rm -rf "$work"
  fi
  exit "$status"
}
trap finish EXIT
trap 'exit 130' INT TERM

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
base="http://127.0.0.1:$port"

# No OTLP export (nothing listens), JSON logs, local persona.
env -u OTEL_EXPORTER_OTLP_ENDPOINT -u APP_CONFORMANCE \
  APP_ENV=local APP_HOST=127.0.0.1 PORT="$port" APP_LOG_FORMAT=json RUST_LOG=info \
  DATABASE_URL="sqlite://$work/shop.db?mode=rwc" \
  "$shop" >"$server_log" 2>&1 &
server_pid=$!

for _ in $(seq 1 300); do
  if curl -fsS -o /dev/null "$base/healthz" 2>/dev/null; then
    break
  fi
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "the shop exited before answering /healthz" >&2
    exit 1
  fi
  sleep 0.1
done
curl -fsS -o /dev/null "$base/healthz"

token="$(curl -fsS -X POST "$base/v1/users" -H 'content-type: application/json' \
  -d '{"email": "schemathesis@example.com", "name": "Schemathesis"}' |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')"

echo "schemathesis $SCHEMATHESIS_VERSION against $base/openapi.json (max $MAX_EXAMPLES examples per operation, seed $SEED)"
started=$SECONDS
# From the work directory: schemathesis keeps its replay cache (.schemathesis/) in the current
# one, kept with the server log when the run fails.
(cd "$work" && "$venv/bin/schemathesis" run "$base/openapi.json" \
  --checks "$CHECKS" \
  --max-examples "$MAX_EXAMPLES" \
  --seed "$SEED" \
  --workers "$WORKERS" \
  --request-timeout 10 \
  --generation-database none \
  --header "Authorization: Bearer $token" \
  --no-color)
echo "schemathesis finished in $((SECONDS - started)) s"

if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "the shop is no longer running" >&2
  exit 1
fi
