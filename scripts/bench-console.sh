#!/usr/bin/env bash
# The embedded console's memory bound and CPU cost, on the release shop binary (in-process
# payment simulator, fresh SQLite database, JSON logs to /dev/null, no OTLP endpoint):
# loadgen's default journeys (browse, sign up, checkout, order history, bad requests), closed
# model, a fixed number of requests, once with APP_CONSOLE=on and once with APP_CONSOLE=off.
# Samples the shop's VmRSS (/proc/PID/status) every 2 s while the load runs, and prints the
# samples, and the shop's CPU (user+system, all threads, /proc/PID/stat) per request.
# Usage: scripts/bench-console.sh [requests=100000] [users=16]
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${1:-100000}
users=${2:-16}

cargo build --release -p shop -p loadgen 2>&1 | tail -1
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
hz=$(getconf CLK_TCK)
work=$(mktemp -d)
shop_pid=""
trap '[ -n "$shop_pid" ] && kill "$shop_pid" 2>/dev/null; rm -rf "$work"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run() {
  local console=$1 port; port=$(free_port)
  rm -f "$work"/shop.db*
  APP_CONSOLE=$console PORT=$port APP_LOG_FORMAT=json DATABASE_URL="sqlite://$work/shop.db?mode=rwc" \
    "$target_dir/release/shop" >/dev/null 2>&1 &
  local pid=$!
  shop_pid=$pid
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  local start_rss; start_rss=$(rss_kib "$pid")
  local before; before=$(cpu_ticks "$pid")
  "$target_dir/release/loadgen" --target "http://127.0.0.1:$port" --users "$users" \
    --requests "$requests" --json > "$work/loadgen.json" &
  local load=$!
  local samples="" t=0
  while kill -0 "$load" 2>/dev/null; do
    sleep 2; t=$((t + 2))
    samples="$samples ${t}s:$(( $(rss_kib "$pid") / 1024 ))"
  done
  wait "$load" || true
  local after; after=$(cpu_ticks "$pid")
  local end_rss; end_rss=$(rss_kib "$pid")
  local stored=""
  if [ "$console" = on ]; then
    stored=$(curl -s "http://127.0.0.1:$port/_console/api/metrics" | python3 -c '
import json, sys
p = json.load(sys.stdin)["pipeline"]
c = p["console"]
s = c["store"]
print("store: %d spans, %d logs, %d MiB estimated; evicted %d spans, %d logs; batches dropped %d; queues dropped %d spans, %d logs" % (
    s["spans"], s["logs"], s["bytes"] // 1048576, c["evicted_spans"], c["evicted_logs"], c["batches_dropped"],
    p["spans_dropped"], p["logs_dropped"]))')
  fi
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  local sent rps errors
  read -r sent rps errors < <(python3 -c 'import json,sys; d = json.load(open(sys.argv[1])); print(d["requests"], round(d["throughput_rps"]), d["errors"])' "$work/loadgen.json")
  python3 - "$console" "$sent" "$before" "$after" "$hz" "$start_rss" "$end_rss" "$rps" "$errors" <<'PY'
import sys
console, sent, before, after, hz, start, end, rps, errors = sys.argv[1:]
cpu_us = (int(after) - int(before)) / int(hz) * 1e6 / int(sent)
print(f"APP_CONSOLE={console}: {sent} requests ({rps}/s, {errors} errors), shop CPU {cpu_us:.1f} us/request, VmRSS {int(start)//1024} MiB at start, {int(end)//1024} MiB at the end")
PY
  echo "  VmRSS MiB every 2 s:$samples"
  [ -n "$stored" ] && echo "  $stored"
  return 0
}

run on
run off
