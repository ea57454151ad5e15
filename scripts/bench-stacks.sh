#!/usr/bin/env bash
# Side by side, interleaved, on one machine: the same handler served bare, with our telemetry
# (all three signals at 100 % sampling over OTLP/gRPC and OTLP/HTTP to a real collector
# process: rotel with the blackhole exporter), with the hand-assembled peer stack (tower-http
# TraceLayer + tracing-opentelemetry + JSON fmt access event + OTel histogram + stock OTLP/gRPC
# exporters), and ours / the peer with the collector unreachable; on a trivial handler and on
# one that runs one SQLite query. Load: loadgen's closed model (traceparent on every request).
# Prints per variant the medians over rounds: server CPU µs/request (all threads), throughput
# and p50/p99 as ratios to bare, the collector's CPU µs/request, peak RSS of the server.
# Usage: scripts/bench-stacks.sh [seconds=8] [connections=32] [rounds=3]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-8}
connections=${2:-32}
rounds=${3:-3}

cargo build --release -p loadgen 2>&1 | tail -1
loadgen=target/release/loadgen
server=$(cargo bench -p loadgen --bench stacks --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "stacks" and m.get("executable"):
        print(m["executable"])')

# The collector: rotel (PyPI), blackhole exporter, in a venv under target/.
venv=target/bench-venv
if [ ! -x "$venv/bin/python" ]; then python3 -m venv "$venv"; fi
if ! "$venv/bin/python" -c 'import rotel' 2>/dev/null; then "$venv/bin/pip" install -q --pre rotel; fi
rotel=$("$venv/bin/python" -c 'import os, rotel; print(os.path.join(os.path.dirname(rotel.__file__), "rotel-agent"))')
"$rotel" start --exporter blackhole --otlp-grpc-endpoint 127.0.0.1:14317 \
  --otlp-http-endpoint 127.0.0.1:14318 >/dev/null 2>&1 &
collector=$!
trap 'kill $collector 2>/dev/null || true' EXIT
sleep 1

scenario=$(mktemp --suffix=.toml)
cat > "$scenario" <<'TOML'
[requests.product]
path = "/v1/products/7"
route = "GET /v1/products/{id}"

[[journey]]
name = "product"
weight = 1
steps = ["product"]
TOML

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
grpc=http://127.0.0.1:14317
http=http://127.0.0.1:14318
down=http://127.0.0.1:9   # nothing listens

# name mode endpoint protocol
variants=(
  "bare bare - -"
  "ours-grpc ours $grpc grpc"
  "ours-http ours $http http/protobuf"
  "peer peer $grpc grpc"
  "ours-down ours $down grpc"
  "peer-down peer $down grpc"
)

run() {
  local name=$1 mode=$2 endpoint=$3 protocol=$4 handler=$5 port=$6
  local env=(env -u OTEL_EXPORTER_OTLP_ENDPOINT OTEL_TRACES_SAMPLER=always_on APP_LOG_FORMAT=json)
  if [ "$endpoint" != "-" ]; then
    env+=(OTEL_EXPORTER_OTLP_ENDPOINT="$endpoint" OTEL_EXPORTER_OTLP_PROTOCOL="$protocol")
  fi
  local flags=()
  [ "$handler" = sqlite ] && flags+=(--sqlite)
  "${env[@]}" "$server" --serve "$mode" "$port" "${flags[@]}" >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.05; done
  if ! kill -0 "$pid" 2>/dev/null; then echo "the $name server did not start" >&2; exit 1; fi
  "$loadgen" --target "http://127.0.0.1:$port" --users "$connections" --duration 1s \
    --scenario "$scenario" --json >/dev/null   # warm-up
  local before; before=$(ticks "$pid")
  local collector_before; collector_before=$(ticks "$collector")
  local json; json=$("$loadgen" --target "http://127.0.0.1:$port" --users "$connections" \
    --duration "${seconds}s" --scenario "$scenario" --json)
  local after; after=$(ticks "$pid")
  local collector_after; collector_after=$(ticks "$collector")
  local rss; rss=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  kill -INT "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  echo "$json" | python3 -c '
import json, sys
d = json.load(sys.stdin)
name, handler, ticks, collector, rss, hz = sys.argv[1:7]
n = max(d["requests"], 1)
print(name, handler, d["requests"], d["throughput_rps"], d["latency_ms"]["p50"], d["latency_ms"]["p99"],
      float(ticks) / float(hz) * 1e6 / n, float(collector) / float(hz) * 1e6 / n, rss, d["errors"])
' "$name" "$handler" "$((after - before))" "$((collector_after - collector_before))" "$rss" "$hz"
}

results=$(mktemp)
for handler in trivial sqlite; do
  for round in $(seq "$rounds"); do
    for variant in "${variants[@]}"; do
      port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
      # shellcheck disable=SC2086
      run $variant "$handler" "$port" >> "$results"
    done
  done
done
rm -f "$scenario"

python3 - "$results" <<'PY'
import collections, statistics, sys
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    name, handler, requests, rps, p50, p99, cpu, coll, rss, errors = line.split()
    rows[(handler, name)].append(dict(rps=float(rps), p50=float(p50), p99=float(p99), cpu=float(cpu),
                                      coll=float(coll), rss=int(rss), errors=int(errors)))
med = lambda xs: statistics.median(xs)
for handler in ["trivial", "sqlite"]:
    bare = rows[(handler, "bare")]
    b = {k: med([r[k] for r in bare]) for k in ["rps", "p50", "p99", "cpu"]}
    print(f"\n{handler} handler (medians of {len(bare)} interleaved rounds)")
    print(f"{'variant':<10} {'req/s':>8} {'CPU us/req':>10} {'+us vs bare':>11} {'tput ratio':>10} {'p50 ratio':>9} {'p99 ratio':>9} {'collector us/req':>16} {'peak RSS MiB':>12} {'errors':>6}")
    for name in ["bare", "ours-grpc", "ours-http", "peer", "ours-down", "peer-down"]:
        rs = rows[(handler, name)]
        m = {k: med([r[k] for r in rs]) for k in ["rps", "p50", "p99", "cpu", "coll"]}
        rss = max(r["rss"] for r in rs) / 1024
        errors = sum(r["errors"] for r in rs)
        print(f"{name:<10} {m['rps']:>8.0f} {m['cpu']:>10.2f} {m['cpu'] - b['cpu']:>11.2f} {m['rps'] / b['rps']:>10.2f} "
              f"{m['p50'] / b['p50']:>9.2f} {m['p99'] / b['p99']:>9.2f} {m['coll']:>16.2f} {rss:>12.1f} {errors:>6}")
PY
rm -f "$results"
