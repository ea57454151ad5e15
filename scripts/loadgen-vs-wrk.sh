#!/usr/bin/env bash
# Is loadgen fast enough not to be the bottleneck? Drives the same trivial handler (the
# telemetry benchmark's bare axum server, GET /v1/products/7) with wrk and with loadgen's
# closed model, same connections and duration, interleaved for `rounds` rounds; prints
# requests/s of each and loadgen's ratio to wrk, plus the CPU each generator used per request.
# Usage: scripts/loadgen-vs-wrk.sh [seconds=10] [connections=32] [rounds=3]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
connections=${2:-32}
rounds=${3:-3}

if ! command -v wrk >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends wrk >/dev/null
fi

cargo build --release -p loadgen 2>&1 | tail -1
loadgen=target/release/loadgen
bin=$(cargo bench -p telemetry --bench middleware --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "middleware" and m.get("executable"):
        print(m["executable"])')

port=3191
"$bin" --serve bare "$port" 2>/dev/null &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/v1/products/7" >/dev/null && break; sleep 0.1; done

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

wrk -t1 -c"$connections" -d2s "http://127.0.0.1:$port/v1/products/7" >/dev/null   # warm-up
results=()
for round in $(seq "$rounds"); do
  out=$(/usr/bin/time -f 'cpu %U %S' wrk -t1 -c"$connections" -d"${seconds}s" "http://127.0.0.1:$port/v1/products/7" 2>&1)
  wrk_cpu=$(echo "$out" | awk '/^cpu / {print $2 + $3}')
  wrk_rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  wrk_requests=$(echo "$out" | awk '/requests in/ {print $1}')
  json=$(mktemp)
  /usr/bin/time -f '%U %S' -o "$json.time" "$loadgen" --target "http://127.0.0.1:$port" \
    --users "$connections" --duration "${seconds}s" --scenario "$scenario" --json > "$json"
  lg_rps=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["throughput_rps"])' "$json")
  lg_requests=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["requests"])' "$json")
  lg_errors=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["errors"])' "$json")
  lg_cpu=$(awk '{print $1 + $2}' "$json.time")
  rm -f "$json" "$json.time"
  results+=("$round $wrk_rps $wrk_requests $lg_rps $lg_requests $lg_errors $lg_cpu $wrk_cpu")
done
rm -f "$scenario"
python3 - "${results[@]}" <<'PY'
import statistics, sys
rows = [r.split() for r in sys.argv[1:]]
print(f"{'round':>5} {'wrk req/s':>11} {'loadgen req/s':>14} {'ratio':>6} {'loadgen errors':>15} {'wrk CPU us/req':>15} {'loadgen CPU us/req':>19}")
ratios = []
for r in rows:
    wrk, lg = float(r[1]), float(r[3])
    ratios.append(lg / wrk)
    cpu = float(r[6]) * 1e6 / max(int(r[4]), 1)
    wrk_cpu = float(r[7]) * 1e6 / max(int(r[2]), 1)
    print(f"{r[0]:>5} {wrk:>11.0f} {lg:>14.0f} {lg / wrk:>6.2f} {r[5]:>15} {wrk_cpu:>15.2f} {cpu:>19.2f}")
print(f"median ratio loadgen / wrk: {statistics.median(ratios):.2f}")
PY
