#!/usr/bin/env bash
# The project's one real OpenTelemetry collector for tests and benchmarks: PyPI's rotel, pinned,
# installed once into the git-ignored .stack-tools/rotel-venv. Prints the rotel-agent binary's
# path on stdout (install messages go to stderr); `--version` prints the pinned version.
# Used by scripts/test.sh (the collector-hop tests), scripts/bench-stacks.sh and
# scripts/bench-callgrind.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

ROTEL_VERSION=0.0.1a15
if [ "${1:-}" = "--version" ]; then
  echo "$ROTEL_VERSION"
  exit 0
fi
venv=.stack-tools/rotel-venv
if [ "$(cat "$venv/rotel.stamp" 2>/dev/null)" != "rotel==$ROTEL_VERSION" ]; then
  echo "installing rotel==$ROTEL_VERSION (PyPI) into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --pre "rotel==$ROTEL_VERSION" >&2
  echo "rotel==$ROTEL_VERSION" > "$venv/rotel.stamp"
fi
agent=$(find "$PWD/$venv/lib" -path '*/site-packages/rotel/rotel-agent' -type f | head -1)
if [ -z "$agent" ]; then
  echo "rotel-agent.sh: no rotel-agent binary in $venv" >&2
  exit 1
fi
echo "$agent"
