#!/usr/bin/env bash
# The telemetry console in a real browser: headless Chromium (Debian's `chromium`, with
# `chromium-driver`) driven by playwright-core (npm, pinned by tests/browser/package-lock.json,
# installed with `npm ci` into the git-ignored tests/browser/node_modules; it downloads no
# browser of its own) against the real shop binary.
#
# Builds `shop`, starts it on a free loopback port with a throwaway SQLite database, and runs
# tests/browser/console.test.mjs: it sends requests (a checkout across the shop and its payment
# simulator, a failing one, one with hostile strings), sees them appear live in the console,
# filters, pauses, opens the checkout's trace (spans of both services in one waterfall, its log
# lines), follows a log line to its span, checks keyboard use and a narrow window. Every step
# asserts; a failure names the step, prints the shop's output and exits non-zero.
#
#   scripts/console-browser.sh                # the test (scripts/test.sh runs this)
#   scripts/console-browser.sh --screenshots  # the same, then writes docs/console/*.png
set -euo pipefail
cd "$(dirname "$0")/.."

shots=""
case "${1:-}" in
  "") ;;
  --screenshots) shots="$(pwd)/docs/console" ;;
  *)
    echo "usage: scripts/console-browser.sh [--screenshots]" >&2
    exit 2
    ;;
esac

apt_install() {
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >/dev/null 2>&1 || {
    $sudo apt-get update >/dev/null 2>&1
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
  }
}

if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  echo "installing chromium and chromium-driver (Debian)"
  apt_install chromium chromium-driver fonts-dejavu-core
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "installing npm (Debian)"
  apt_install npm
fi
if ! command -v curl >/dev/null 2>&1; then
  apt_install curl
fi

# `npm ci` again only when the lock file changed since the last install.
lock_sum="$(sha256sum tests/browser/package-lock.json | cut -d' ' -f1)"
if [ "$(cat tests/browser/node_modules/.lock-sha256 2>/dev/null)" != "$lock_sum" ]; then
  echo "npm ci in tests/browser (playwright-core)"
  (cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --silent)
  echo "$lock_sum" > tests/browser/node_modules/.lock-sha256
fi

# Telemetry reaches the page as text only: no HTML parsing sinks in the UI's script.
if grep -nE '\.(inner|outer)HTML|insertAdjacentHTML|document\.write|\beval\(|new Function' crates/console/assets/app.js; then
  echo "crates/console/assets/app.js uses an HTML or code sink (above): put data in with textContent" >&2
  exit 1
fi

target_dir="${CARGO_TARGET_DIR:-target}"
mkdir -p "$target_dir"
target_dir="$(cd "$target_dir" && pwd)"
cargo build -p shop --locked
work="$(mktemp -d "${TMPDIR:-/tmp}/shop-console-browser.XXXXXX")"
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
    echo "---- shop output ($server_log, last 200 lines) ----" >&2
    tail -n 200 "$server_log" >&2 || true
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

# No OTLP export (nothing listens), JSON logs, local persona: the console is on by default.
env -u OTEL_EXPORTER_OTLP_ENDPOINT -u APP_CONFORMANCE -u APP_CONSOLE -u PAYMENTS_URL \
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

echo "console browser test against $base/_console/ (chromium $(chromium --version 2>/dev/null | awk '{print $2}'))"
CONSOLE_BASE="$base" CONSOLE_SERVER_LOG="$server_log" CONSOLE_SCREENSHOTS="$shots" \
  CHROMIUM="$(command -v chromium)" node tests/browser/console.test.mjs

if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "the shop is no longer running" >&2
  exit 1
fi
