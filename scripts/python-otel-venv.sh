#!/usr/bin/env bash
# Installs the Python OpenTelemetry SDK and its OTLP exporters (HTTP/protobuf and gRPC) from
# PyPI into a venv under the cargo target directory (git-ignored), for the console crate's test
# that exports from a process that is not ours (crates/console/tests/integration/python_sdk.rs).
# Idempotent: the venv is reused while it holds the pinned versions. Prints the venv's python.
set -euo pipefail
cd "$(dirname "$0")/.."

OTEL_PYTHON_VERSION=1.45.2
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
venv="$target_dir/otel-python-venv"

installed() {
  "$venv/bin/python" - "$OTEL_PYTHON_VERSION" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
wanted = sys.argv[1]
for package in ("opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http", "opentelemetry-exporter-otlp-proto-grpc"):
    if version(package) != wanted:
        sys.exit(1)
PY
}

if ! installed; then
  echo "installing the Python OpenTelemetry SDK $OTEL_PYTHON_VERSION into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "opentelemetry-sdk==$OTEL_PYTHON_VERSION" \
    "opentelemetry-exporter-otlp-proto-http==$OTEL_PYTHON_VERSION" \
    "opentelemetry-exporter-otlp-proto-grpc==$OTEL_PYTHON_VERSION" >&2
fi
echo "$venv/bin/python"
