#!/usr/bin/env bash
# Exact instructions per request of the side-by-side benchmark's servers (scripts/bench-stacks.sh),
# independent of machine load: each variant runs under `valgrind --tool=callgrind` twice, loaded
# by loadgen with N1 and then N2 requests; (Ir(N2) − Ir(N1)) / (N2 − N1) is what one request
# costs, all threads included (runtime, export threads, stdout writer; start-up and shutdown
# cancel out). The collector (rotel) runs natively. Profiles stay in target/callgrind/ for
# `callgrind_annotate --inclusive=yes target/callgrind/<variant>-<handler>-<N2>.out`.
#
# Usage: scripts/bench-callgrind.sh [variants="bare ours-grpc ours-http ours-down-grpc peer"]
#   BENCH_HANDLER=trivial|sqlite   BENCH_N1=2000 BENCH_N2=10000
set -euo pipefail
cd "$(dirname "$0")/.."
read -r -a variants <<< "${1:-bare ours-grpc ours-http ours-down-grpc peer}"
handler=${BENCH_HANDLER:-trivial}
n1=${BENCH_N1:-2000}
n2=${BENCH_N2:-10000}

command -v valgrind >/dev/null || { echo "bench-callgrind: valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
artifacts=$(cargo build --release --locked -p loadgen --bins --bench stacks --message-format=json 2>/dev/null)
server=$(echo "$artifacts" | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "stacks" and m.get("executable"):
        print(m["executable"])')
loadgen=target/release/loadgen

rotel=$(scripts/rotel-agent.sh)
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
grpc_port=$(free_port)
http_port=$(free_port)
"$rotel" start --exporter blackhole --otlp-grpc-endpoint "127.0.0.1:$grpc_port" \
  --otlp-http-endpoint "127.0.0.1:$http_port" >/dev/null 2>&1 &
collector=$!
server_pid=""
work=$(mktemp -d)
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
  kill "$collector" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
sleep 1
down=http://127.0.0.1:$(free_port)
declare -A spec=(
  [bare]="bare - -"
  [ours-grpc]="ours http://127.0.0.1:$grpc_port grpc"
  [ours-http]="ours http://127.0.0.1:$http_port http/protobuf"
  [peer]="peer http://127.0.0.1:$grpc_port grpc"
  [ours-down-grpc]="ours $down grpc"
  [ours-down-http]="ours $down http/protobuf"
  [peer-down]="peer $down grpc"
)
cat > "$work/scenario.toml" <<'TOML'
[requests.product]
path = "/v1/products/7"
route = "GET /v1/products/{id}"

[[journey]]
name = "product"
weight = 1
steps = ["product"]
TOML
mkdir -p target/callgrind

instructions() {
  local name=$1 requests=$2 mode endpoint protocol
  read -r mode endpoint protocol <<< "${spec[$name]}"
  local port; port=$(free_port)
  local out=target/callgrind/$name-$handler-$requests.out
  local env=(env -u OTEL_EXPORTER_OTLP_ENDPOINT OTEL_TRACES_SAMPLER=always_on APP_LOG_FORMAT=json
    OTEL_SERVICE_NAME="bench-$name" OTEL_BSP_MAX_QUEUE_SIZE=65536 OTEL_BLRP_MAX_QUEUE_SIZE=65536)
  [ "$endpoint" != "-" ] && env+=(OTEL_EXPORTER_OTLP_ENDPOINT="$endpoint" OTEL_EXPORTER_OTLP_PROTOCOL="$protocol")
  local flags=()
  [ "$handler" = sqlite ] && flags+=(--sqlite)
  "${env[@]}" valgrind --tool=callgrind --callgrind-out-file="$out" \
    "$server" --serve "$mode" "$port" "${flags[@]}" >/dev/null 2>"$work/valgrind.log" &
  server_pid=$!
  for _ in $(seq 600); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
  "$loadgen" --target "http://127.0.0.1:$port" --users 8 --requests "$requests" \
    --scenario "$work/scenario.toml" --json >/dev/null
  kill -INT "$server_pid"
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
  awk '/Collected/ {print $NF}' "$work/valgrind.log"
}

echo "callgrind, $handler handler, ($n2 − $n1) requests; instructions per request, all threads"
echo "| variant | instructions/request | vs bare |"
echo "|---|---|---|"
bare=""
for name in "${variants[@]}"; do
  a=$(instructions "$name" "$n1")
  b=$(instructions "$name" "$n2")
  per=$(( (b - a) / (n2 - n1) ))
  [ "$name" = bare ] && bare=$per
  if [ -n "$bare" ] && [ "$name" != bare ]; then delta=$(printf '%+d' $((per - bare))); else delta="—"; fi
  echo "| $name | $per | $delta |"
done
