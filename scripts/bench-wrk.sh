#!/usr/bin/env bash
# End-to-end cost of the telemetry middleware over real HTTP: the same handler served bare and
# instrumented (100% sampling, OTLP/gRPC export of traces, metrics and logs to a count-only
# receiver in a child process, JSON access lines to /dev/null), each loaded by wrk in turn.
# Variants: bare; instrumented with export off; instrumented exporting over OTLP/gRPC to a
# count-only receiver (it decodes every request, as a collector does); instrumented exporting
# over OTLP/HTTP to a sink that reads and discards (the cheapest possible collector).
# Prints server CPU per request (user+system of the server process, all its threads) and
# throughput, and their ratios. Usage: scripts/bench-wrk.sh [seconds=10] [connections=32]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
connections=${2:-32}

if ! command -v wrk >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends wrk >/dev/null
fi

cargo bench -p telemetry --bench middleware --no-run 2>&1 | tail -1
bin=$(cargo bench -p telemetry --bench middleware --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "middleware" and m.get("executable"):
        print(m["executable"])')

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

run() {
  local mode=$1 port=$2
  "$bin" --serve "$mode" "$port" 2>/dev/null &
  local pid=$!
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/v1/products/1" >/dev/null && break; sleep 0.1; done
  wrk -t1 -c"$connections" -d2s "http://127.0.0.1:$port/v1/products/7" >/dev/null   # warm-up
  local before; before=$(cpu_ticks "$pid")
  local out; out=$(wrk -t1 -c"$connections" -d"${seconds}s" "http://127.0.0.1:$port/v1/products/7")
  local after; after=$(cpu_ticks "$pid")
  pkill -P "$pid" 2>/dev/null || true
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  local requests; requests=$(echo "$out" | awk '/requests in/ {print $1}')
  local rps; rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  local cpu_us; cpu_us=$(python3 -c "print(f'{($after - $before) / $hz * 1e6 / $requests:.2f}')")
  echo "$mode $requests $rps $cpu_us"
}

bare=$(run bare 3101)
noexport=$(run instrumented-no-export 3102)
instr=$(run instrumented 3103)
instr_http=$(run instrumented-http 3104)
python3 - "$bare" "$noexport" "$instr" "$instr_http" <<'PY'
import sys
rows = [a.split() for a in sys.argv[1:]]
b = rows[0]
print(f"{'variant':<24} {'requests':>10} {'req/s':>10} {'server CPU us/req':>18} {'overhead us':>12} {'throughput ratio':>17}")
for row in rows:
    print(f"{row[0]:<24} {row[1]:>10} {float(row[2]):>10.0f} {float(row[3]):>18.2f} "
          f"{float(row[3]) - float(b[3]):>12.2f} {float(row[2]) / float(b[2]):>17.2f}")
PY
