#!/usr/bin/env bash
# The side-by-side benchmark of docs/benchmarks.md, in one run on one machine: the same handler
# served
#   bare       axum, no instrumentation;
#   ours-grpc  our telemetry, all three signals at 100 % sampling, OTLP/gRPC to a real collector
#              process (rotel, blackhole exporter);
#   ours-http  the same over OTLP/HTTP protobuf;
#   peer       the hand-assembled stack (tower-http TraceLayer with the extracted W3C parent,
#              tracing-opentelemetry, tracing-subscriber JSON fmt with an INFO access event, an
#              OTel http.server.request.duration histogram, stock OTLP/gRPC exporters with their
#              default batch processors) to the same collector;
#   ours-down-grpc / ours-down-http / peer-down  the same with the collector unreachable;
#   ours-console  ours-grpc plus the embedded console (APP_CONSOLE=on; the others run with off);
#   ours-sink  ours over OTLP/HTTP to a sink that reads and discards every export request (no
#              collector decoding on the same cores: what the instrumentation itself costs);
# on a trivial handler and on one that runs one SQLite query; rounds interleaved (every round
# runs every variant of both handlers, in an order rotated per round).
# Prints per variant the medians over rounds: server CPU µs/request (user+system of every
# thread, /proc/<pid>/stat), throughput and p50/p99 as ratios to bare, the collector's CPU
# µs/request, peak RSS, errors, and our records lost (dropped/failed exports); then the shop's
# cold start (process start to the first 200 from /readyz) and its peak RSS under load.
#
# Usage: scripts/bench-stacks.sh [seconds=8] [connections=32] [rounds=3]
#   BENCH_LOAD=loadgen|wrk   the load (default loadgen, closed model, a fresh traceparent per
#                            request; wrk -t1 sends one fixed traceparent)
#   BENCH_RATE=N             loadgen's open model instead: N requests/s on schedule (at most
#                            [connections] in flight), the same offered load for every variant,
#                            so CPU per request and latency are compared below saturation
#   BENCH_HANDLERS="trivial sqlite"   BENCH_VARIANTS="bare ours-grpc …"   subsets
#   BENCH_SHOP=0             skip the shop's cold start and peak RSS
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-8}
connections=${2:-32}
rounds=${3:-3}
load=${BENCH_LOAD:-loadgen}
rate=${BENCH_RATE:-}
if [ -n "$rate" ] && [ "$load" != loadgen ]; then echo "bench-stacks: BENCH_RATE needs BENCH_LOAD=loadgen" >&2; exit 2; fi
if [ -n "$rate" ] && ! [[ $rate =~ ^[1-9][0-9]*$ ]]; then echo "bench-stacks: BENCH_RATE must be a positive number of requests/s, not '$rate'" >&2; exit 2; fi
read -r -a handlers <<< "${BENCH_HANDLERS:-trivial sqlite}"
all_variants="bare ours-grpc ours-http peer ours-down-grpc ours-down-http peer-down ours-console ours-sink"
read -r -a selected <<< "${BENCH_VARIANTS:-$all_variants}"

bench="bench-stacks"
# shellcheck source=scripts/bench-setup.sh
source scripts/bench-setup.sh   # the servers, loadgen, rotel, `spec`, the scenario, clean-up
if [ "${BENCH_SHOP:-1}" = 1 ]; then
  cargo build --release --locked -p shop --bin shop 2>&1 | tail -1
fi
if [ "$load" = wrk ] && ! command -v wrk >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends wrk >/dev/null
fi
sink_port=$(free_port)
"$server" --serve sink "$sink_port" >/dev/null 2>&1 &
sink=$!
extra_pids+=("$sink")
sleep 0.2
kill -0 "$sink" 2>/dev/null || { echo "bench-stacks: the discarding OTLP sink did not start" >&2; exit 1; }
spec[ours-console]="ours $grpc grpc"
spec[ours-sink]="ours http://127.0.0.1:$sink_port http/protobuf"

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
user_ticks() { awk '{print $14}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
loadavg() { cut -d' ' -f1 /proc/loadavg; }

# Export queues (ours and the peer's SDK batch processors read the same variables) big enough
# that nothing is dropped on a full queue, so every variant pays for every record; at the spec's
# default of 2,048 a loaded 2-core machine overflows them (BENCH_QUEUE=2048 to see it).
queue=${BENCH_QUEUE:-65536}

# Prints "requests rps p50_ms p99_ms errors" for one measured load.
measure() {
  local port=$1 duration=$2
  if [ "$load" = wrk ]; then
    wrk -t1 -c"$connections" -d"$duration" --latency \
      -H 'traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' \
      "http://127.0.0.1:$port/v1/products/7" | python3 -c '
import re, sys
text = sys.stdin.read()
def ms(v):
    n, unit = re.match(r"([\d.]+)(us|ms|s)", v).groups()
    return float(n) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
requests = int(re.search(r"(\d+) requests in", text).group(1))
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
p50 = ms(re.search(r"50%\s+(\S+)", text).group(1))
p99 = ms(re.search(r"99%\s+(\S+)", text).group(1))
errors = sum(int(x) for x in re.findall(r"Non-2xx or 3xx responses: (\d+)", text))
print(requests, rps, p50, p99, errors)'
  else
    local model=(--users "$connections")
    [ -n "$rate" ] && model=(--rate "$rate" --connections "$connections")
    "$loadgen" --target "http://127.0.0.1:$port" "${model[@]}" --duration "$duration" \
      --scenario "$work/scenario.toml" --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(d["requests"], d["throughput_rps"], d["latency_ms"]["p50"], d["latency_ms"]["p99"], d["errors"])'
  fi
}

run() {
  local name=$1 handler=$2 mode endpoint protocol
  read -r mode endpoint protocol <<< "${spec[$name]}"
  local port; port=$(free_port)
  local env=(env -u OTEL_EXPORTER_OTLP_ENDPOINT OTEL_TRACES_SAMPLER=always_on APP_LOG_FORMAT=json
    OTEL_METRIC_EXPORT_INTERVAL=1000 OTEL_SERVICE_NAME="bench-$name"
    OTEL_BSP_MAX_QUEUE_SIZE="$queue" OTEL_BLRP_MAX_QUEUE_SIZE="$queue")
  if [ "$endpoint" != "-" ]; then
    env+=(OTEL_EXPORTER_OTLP_ENDPOINT="$endpoint" OTEL_EXPORTER_OTLP_PROTOCOL="$protocol")
  fi
  case $name in
    ours-console) env+=(APP_CONSOLE=on) ;;
    ours*) env+=(APP_CONSOLE=off) ;;
  esac
  local flags=()
  [ "$handler" = sqlite ] && flags+=(--sqlite)
  "${env[@]}" "$server" --serve "$mode" "$port" "${flags[@]}" >/dev/null 2>&1 &
  server_pid=$!
  for _ in $(seq 200); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.05; done
  if ! kill -0 "$server_pid" 2>/dev/null; then echo "bench-stacks: the $name server did not start" >&2; exit 1; fi
  measure "$port" 1s >/dev/null   # warm-up
  local load_before; load_before=$(loadavg)
  local receiver=$collector
  [ "$name" = ours-sink ] && receiver=$sink
  local before; before=$(ticks "$server_pid")
  local user_before; user_before=$(user_ticks "$server_pid")
  local collector_before; collector_before=$(ticks "$receiver")
  local figures; figures=$(measure "$port" "${seconds}s")
  local after; after=$(ticks "$server_pid")
  local user_after; user_after=$(user_ticks "$server_pid")
  local collector_after; collector_after=$(ticks "$receiver")
  local rss; rss=$(awk '/VmHWM/ {print $2}' "/proc/$server_pid/status")
  local lost="- -"
  if [ "$mode" = ours ]; then
    # Since the process started: records dropped on a full queue, export requests that failed.
    lost=$(curl -sf "http://127.0.0.1:$port/bench/telemetry" | awk '
      /^app_telemetry_dropped_total/ {d += $NF} /^app_telemetry_export_failures_total/ {f += $NF}
      END {print d + 0, f + 0}')
  fi
  kill -INT "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
  echo "$name $handler $figures $((after - before)) $((collector_after - collector_before)) $rss $lost $load_before $((user_after - user_before))"
}

git_rev=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates || echo "+dirty")
echo "bench-stacks: $(date -u +%FT%TZ), commit $git_rev, $(nproc) cores, load: $load${rate:+ open model at $rate requests/s}" \
  "($connections connections, ${seconds}s per variant, $rounds rounds), collector rotel $ROTEL_VERSION, export queues $queue;" \
  "loadavg at start $(cut -d' ' -f1-3 /proc/loadavg)"
results=$work/results
for round in $(seq "$rounds"); do
  # Rotate the order each round so no variant always runs first (or right after a build burst).
  order=("${selected[@]:$(( (round - 1) % ${#selected[@]} ))}" "${selected[@]:0:$(( (round - 1) % ${#selected[@]} ))}")
  for handler in "${handlers[@]}"; do
    for name in "${order[@]}"; do
      run "$name" "$handler" >> "$results"
    done
  done
  echo "  round $round done, loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
done

python3 - "$results" "$hz" "$load" "${selected[*]}" "${handlers[*]}" <<'PY'
import collections, statistics, sys
path, hz, load, names, handlers = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4].split(), sys.argv[5].split()
rows = collections.defaultdict(list)
loads = []
for line in open(path):
    name, handler, requests, rps, p50, p99, errors, ticks, coll, rss, dropped, failed, la, uticks = line.split()
    n = max(int(requests), 1)
    rows[(handler, name)].append(dict(rps=float(rps), p50=float(p50), p99=float(p99),
        cpu=float(ticks) / hz * 1e6 / n, user=float(uticks) / hz * 1e6 / n, coll=float(coll) / hz * 1e6 / n, rss=int(rss),
        errors=int(errors), dropped=dropped, failed=failed, requests=n))
    loads.append(float(la))
med = statistics.median
print(f"\nload {load}; loadavg during the runs: min {min(loads):.1f}, median {med(loads):.1f}, max {max(loads):.1f} (2 cores)")
print("CPU: server process, all threads, per request (user: of it in user space, the rest is the kernel's); ratios: variant / bare of the same handler (medians)")
for handler in handlers:
    bare = rows.get((handler, "bare"))
    b = {k: med([r[k] for r in bare]) for k in ["rps", "p50", "p99", "cpu", "user"]} if bare else None
    print(f"\n{handler} handler (medians of {len(bare or rows[(handler, names[0])])} interleaved rounds)\n")
    print("| variant | req/s | CPU µs/req | +µs vs bare | user µs/req | +user µs vs bare | throughput × bare | p50 × bare | p99 × bare | p99 ms | collector µs/req | peak RSS MiB | errors | ours: dropped / failed exports |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        rs = rows.get((handler, name))
        if not rs:
            continue
        m = {k: med([r[k] for r in rs]) for k in ["rps", "p50", "p99", "cpu", "user", "coll"]}
        rss = max(r["rss"] for r in rs) / 1024
        errors = sum(r["errors"] for r in rs)
        if name.startswith("ours"):
            lost_text = f"{sum(int(r['dropped']) for r in rs)} / {sum(int(r['failed']) for r in rs)}"
        else:
            lost_text = "not counted"
        if b:
            ratios = f"{m['cpu'] - b['cpu']:+.2f} | {m['user']:.2f} | {m['user'] - b['user']:+.2f} | {m['rps'] / b['rps']:.2f} | {m['p50'] / b['p50']:.2f} | {m['p99'] / b['p99']:.2f}"
        else:
            ratios = f"— | {m['user']:.2f} | — | — | — | —"
        print(f"| {name} | {m['rps']:.0f} | {m['cpu']:.2f} | {ratios} | {m['p99']:.2f} | {m['coll']:.2f} | {rss:.1f} | {errors} | {lost_text} |")
PY

# --- the shop: cold start and peak RSS under load --------------------------------------------
if [ "${BENCH_SHOP:-1}" = 1 ]; then
  python3 - "$work" "$loadgen" "$grpc" "$seconds" "$connections" <<'PY'
import os, socket, statistics, subprocess, sys, time, urllib.request
work, loadgen, collector, seconds, connections = sys.argv[1:6]
def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
def start(db, port, export):
    env = dict(os.environ, PORT=str(port), DATABASE_URL=f"sqlite://{db}?mode=rwc", APP_LOG_FORMAT="json",
               OTEL_TRACES_SAMPLER="always_on")
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    if export:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = collector
    t0 = time.monotonic()
    proc = subprocess.Popen(["target/release/shop"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return proc, time.monotonic() - t0
        except Exception:
            pass
        if proc.poll() is not None or time.monotonic() - t0 > 60:
            raise SystemExit("bench-stacks: the shop did not become ready")
        time.sleep(0.002)
def stop(proc):
    proc.send_signal(2); proc.wait(timeout=30)
def hwm(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
# Cold start: a fresh database (migrations run) and an existing one, 5 starts each, OTLP on.
fresh, warm = [], []
db = f"{work}/shop-warm.db"
for i in range(5):
    p, t = start(f"{work}/shop-fresh-{i}.db", free_port(), True); fresh.append(t); stop(p)
    p, t = start(db, free_port(), True); warm.append(t); stop(p)
# Peak RSS under load: the default scenario (all journeys), OTLP export on; once with the
# embedded console off (as in production), once with the local persona's default (console on,
# its bounded store filling).
import collections, json
def under_load(console):
    port = free_port()
    os.environ["APP_CONSOLE"] = console
    p, _ = start(db, port, True)
    idle = hwm(p.pid)
    out = subprocess.run([loadgen, "--target", f"http://127.0.0.1:{port}", "--users", connections,
                          "--duration", f"{seconds}s", "--json"], capture_output=True, text=True)
    peak = hwm(p.pid)
    stop(p)
    summary = json.loads(out.stdout) if out.stdout else {}
    errors = collections.Counter()
    for route in summary.get("routes", []):
        for status, count in route.get("errors_by_status", {}).items():
            errors[f"{route['route']} {status}"] += count
    return idle, peak, summary, errors
ms = lambda xs: f"{statistics.median(xs) * 1e3:.0f} ms (min {min(xs) * 1e3:.0f}, max {max(xs) * 1e3:.0f})"
print("\nshop (release): cold start, process start → first 200 from /readyz, median of 5:")
print(f"  new database (migrations run): {ms(fresh)}")
print(f"  existing database:             {ms(warm)}")
for console in ["off", "on"]:
    idle, peak, summary, errors = under_load(console)
    detail = ", ".join(f"{k}: {v}" for k, v in errors.most_common()) or "none"
    print(f"  APP_CONSOLE={console}: peak RSS {idle:.1f} MiB after start, {peak:.1f} MiB under load "
          f"(default scenario, {connections} users, {seconds}s, {summary.get('requests', '?')} requests, "
          f"{summary.get('errors', '?')} errors: {detail})")
PY
fi
