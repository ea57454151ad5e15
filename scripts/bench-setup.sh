# shellcheck shell=bash
# shellcheck disable=SC2034,SC2154  # sourced: its variables are the callers', `bench` is theirs
# Shared set-up of the side-by-side benchmarks, sourced by scripts/bench-stacks.sh and
# scripts/bench-callgrind.sh (from the repository root, with `bench` set to the caller's name
# for messages): the release servers and loadgen, free_port, the collector (rotel, blackhole
# exporter, gRPC and HTTP receivers on free ports), the variants' endpoints (`spec`), the
# one-request scenario in "$work/scenario.toml", and clean-up on exit (the server being
# measured, the collector and every pid the caller adds to `extra_pids`).

# --- binaries (release) ---------------------------------------------------------------------
artifacts=$(cargo build --release --locked -p loadgen --bins --bench stacks --message-format=json 2>/dev/null)
server=$(echo "$artifacts" | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "stacks" and m.get("executable"):
        print(m["executable"])')
loadgen=target/release/loadgen
if [ ! -x "$server" ] || [ ! -x "$loadgen" ]; then
  echo "$bench: the release build failed (cargo build --release -p loadgen --bins --bench stacks)" >&2
  exit 1
fi

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# --- the collector: rotel from PyPI, in a git-ignored venv ----------------------------------
ROTEL_VERSION=$(scripts/rotel-agent.sh --version)
rotel=$(scripts/rotel-agent.sh)
grpc_port=$(free_port)
http_port=$(free_port)
"$rotel" start --exporter blackhole --otlp-grpc-endpoint "127.0.0.1:$grpc_port" \
  --otlp-http-endpoint "127.0.0.1:$http_port" >/dev/null 2>&1 &
collector=$!
server_pid=""
extra_pids=()
work=$(mktemp -d)
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
  kill "$collector" "${extra_pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 100); do
  python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $grpc_port), 0.2)" 2>/dev/null && break
  sleep 0.05
done
kill -0 "$collector" 2>/dev/null || { echo "$bench: rotel did not start" >&2; exit 1; }
grpc=http://127.0.0.1:$grpc_port
http=http://127.0.0.1:$http_port
down=http://127.0.0.1:$(free_port)   # nothing listens here

# name → mode endpoint protocol (callers add their own variants)
declare -A spec=(
  [bare]="bare - -"
  [ours-grpc]="ours $grpc grpc"
  [ours-http]="ours $http http/protobuf"
  [peer]="peer $grpc grpc"
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
