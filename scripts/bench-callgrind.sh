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
bench="bench-callgrind"
# shellcheck source=scripts/bench-setup.sh
source scripts/bench-setup.sh
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
