#!/usr/bin/env python3
"""Real Prometheus against the real shop: every PromQL expression of the dashboards and rules
of deploy/local must return data.

Starts the OTLP receiver of telemetry::testkit as a process (the example otlp_receiver; it
records every span it receives), target/debug/shop (temporary SQLite, free port, OTLP export to
that receiver, the in-process payment simulator declining some charges), starts Prometheus
(`--enable-feature=exemplar-storage`, so it scrapes /metrics as OpenMetrics; free port, 1 s scrapes, the rule files
of deploy/local evaluated every second; Alertmanager with the stack's routing and the development
webhook receiver, PagerDuty's URL pointed at that receiver), drives scripts/stack-load.sh plus checkouts that fail
with 5xx (simulator faults), then queries each expression. Expressions over the Collector's
own metrics cannot return data here (no Collector runs) and are listed as skipped.
Then the exemplars: the shop's OpenMetrics exposition parses with prometheus_client's strict
OpenMetrics parser, the scrape reported no error, and /api/v1/query_exemplars returns exemplars
of http_server_request_duration_seconds (also on the checkout route) and app_errors_total whose
trace_id and span_id are SERVER spans the receiver got from the shop.
Usage: check-promql-live.py [SHOP_BINARY [RECEIVER_BINARY]]; exits 1 on any failure.
"""
import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
spec = importlib.util.spec_from_file_location("names", os.path.join(ROOT, "scripts", "check-metric-names.py"))
names = importlib.util.module_from_spec(spec)
spec.loader.exec_module(names)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, data=None, method=None, timeout=10):
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read().decode()


def wait_for(url, what, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            get(url, timeout=2)
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"FAIL: {what} did not answer at {url} within {seconds} s")


def check_exemplars(base, prom, spans_file=None):
    """The exemplar checks (module docstring); returns the failures."""
    failures = []
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
    req = urllib.request.Request(f"{base}/metrics", headers={"accept": "application/openmetrics-text;version=1.0.0"})
    with urllib.request.urlopen(req, timeout=10) as r:
        content_type, body = r.headers["content-type"], r.read().decode()
    if not content_type.startswith("application/openmetrics-text; version=1.0.0"):
        failures.append(f"exemplars: /metrics answered {content_type} to an OpenMetrics Accept header")
    try:
        parsed = sum(len(s.exemplar and [1] or []) for f in text_string_to_metric_families(body) for s in f.samples)
        print(f"ok: the OpenMetrics exposition parses (prometheus_client's OpenMetrics parser), {parsed} exemplars")
    except Exception as e:  # noqa: BLE001 - the parser raises ValueError and others
        failures.append(f"exemplars: prometheus_client rejects the OpenMetrics exposition: {e}")
    targets = json.loads(get(f"{prom}/api/v1/targets"))["data"]["activeTargets"]
    for t in targets:
        if t["health"] != "up" or t["lastError"]:
            failures.append(f"exemplars: scrape of {t['scrapeUrl']} is {t['health']}: {t['lastError']}")

    def stored(metric):
        now = time.time()
        res = json.loads(get(f"{prom}/api/v1/query_exemplars?" + urllib.parse.urlencode(
            {"query": metric, "start": now - 600, "end": now + 60})))
        return [(series["seriesLabels"], e) for series in res["data"] for e in series["exemplars"]]

    found = {m: stored(m) for m in ("http_server_request_duration_seconds_bucket", "app_errors_total")}
    if not any(labels.get("http_route") == "/v1/orders" for labels, _ in found["http_server_request_duration_seconds_bucket"]):
        failures.append("exemplars: none on the duration buckets of the checkout route /v1/orders")
    for metric, exemplars in found.items():
        if not exemplars:
            failures.append(f"exemplars: /api/v1/query_exemplars returned none for {metric}")
    wanted = {(e["labels"].get("trace_id"), e["labels"].get("span_id")) for ex in found.values() for _, e in ex}
    # The exported spans reach the receiver a batch delay after the request: wait for them.
    deadline, server = time.time() + 15, set()
    while time.time() < deadline:
        if os.path.exists(spans_file):
            server = {tuple(line.split()[:2]) for line in open(spans_file) if line.split()[2:3] == ["Server"]}
        if wanted <= server:
            break
        time.sleep(0.5)
    unknown = sorted(wanted - server)
    if unknown:
        failures.append(f"exemplars: {len(unknown)} of {len(wanted)} exemplars name no SERVER span the shop exported, e.g. {unknown[:3]}")
    else:
        counts = {m: len(e) for m, e in found.items()}
        print(f"ok: /api/v1/query_exemplars returned {counts}; all {len(wanted)} (trace_id, span_id) pairs are "
              f"SERVER spans the OTLP receiver got from the shop ({len(server)} received)")
    return failures


def main():
    shop_bin = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target", "debug", "shop")
    receiver_bin = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "target", "debug", "examples", "otlp_receiver")
    prometheus = shutil.which("prometheus")
    if not prometheus:
        raise SystemExit("FAIL: prometheus not installed (Debian package prometheus)")
    tmp = tempfile.mkdtemp(prefix="stack-live-")
    procs = []
    try:
        shop_port, prom_port = free_port(), free_port()
        spans_file = os.path.join(tmp, "spans.tsv")
        receiver = subprocess.Popen([receiver_bin, spans_file], stdout=subprocess.PIPE, text=True)
        procs.append(receiver)
        endpoints = dict(kv.split("=", 1) for kv in receiver.stdout.readline().split())
        if "grpc" not in endpoints:
            raise SystemExit("FAIL: the OTLP receiver printed no endpoints")
        shop_log = open(os.path.join(tmp, "shop.log"), "w")
        env = dict(os.environ, PORT=str(shop_port), APP_HOST="127.0.0.1", APP_LOG_FORMAT="json",
                   DATABASE_URL=f"sqlite://{tmp}/shop.db?mode=rwc",
                   OTEL_EXPORTER_OTLP_ENDPOINT=endpoints["grpc"],
                   OTEL_BSP_SCHEDULE_DELAY="200", OTEL_BLRP_SCHEDULE_DELAY="200",
                   OTEL_METRIC_EXPORT_INTERVAL="1000", OTEL_EXPORTER_OTLP_TIMEOUT="500",
                   PAYMENTS_SIM_DECLINE_RATE="0.3", PAYMENTS_MAX_ATTEMPTS="1",
                   PAYMENTS_BREAKER_THRESHOLD="100")
        env.pop("RUST_LOG", None)
        procs.append(subprocess.Popen([shop_bin], env=env, stdout=shop_log, stderr=subprocess.STDOUT))
        base = f"http://127.0.0.1:{shop_port}"
        wait_for(f"{base}/healthz", "the shop")

        # Alertmanager with the stack's routing, delivering to the development webhook receiver;
        # PagerDuty's URL points at the same receiver (path /pagerduty), waits shortened.
        import yaml
        hook_port, am_port = free_port(), free_port()
        hook_out = os.path.join(tmp, "webhook.jsonl")
        procs.append(subprocess.Popen([sys.executable, os.path.join(ROOT, "deploy", "local", "webhook", "receiver.py"),
                                       "--host", "127.0.0.1", "--port", str(hook_port), "--out", hook_out],
                                      stdout=subprocess.DEVNULL))
        am = yaml.safe_load(open(os.path.join(ROOT, "deploy", "local", "alertmanager", "alertmanager.yml")))
        am["route"]["group_wait"] = "1s"
        for r in am["route"]["routes"]:
            r["group_wait"] = "1s"
        key_file = os.path.join(tmp, "routing_key")
        open(key_file, "w").write("live-check-key")
        for rcv in am["receivers"]:
            for c in rcv.get("pagerduty_configs", []):
                c["routing_key_file"], c["url"] = key_file, f"http://127.0.0.1:{hook_port}/pagerduty"
            for c in rcv.get("webhook_configs", []):
                c["url"] = f"http://127.0.0.1:{hook_port}/alerts"
        am_config = os.path.join(tmp, "alertmanager.yml")
        yaml.safe_dump(am, open(am_config, "w"))
        alertmanager = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
        procs.append(subprocess.Popen([alertmanager, f"--config.file={am_config}", f"--storage.path={tmp}/am",
                                       f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address="],
                                      stdout=open(os.path.join(tmp, "alertmanager.log"), "w"), stderr=subprocess.STDOUT))
        wait_for(f"http://127.0.0.1:{am_port}/-/ready", "Alertmanager")
        live_rule = os.path.join(tmp, "live-delivery.yml")
        open(live_rule, "w").write("""groups:
  - name: live-delivery
    rules:
      - alert: LiveCheckShopUp
        expr: up{job="shop"} == 1
        labels:
          severity: page
""")

        rules_dir = os.path.join(ROOT, "deploy", "local", "prometheus", "rules")
        config = os.path.join(tmp, "prometheus.yml")
        with open(config, "w") as f:
            f.write(f"""global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - {rules_dir}/*.yml
  - {live_rule}
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["127.0.0.1:{am_port}"]
scrape_configs:
  - job_name: shop
    static_configs:
      - targets: ["127.0.0.1:{shop_port}"]
""")
        prom_log = open(os.path.join(tmp, "prometheus.log"), "w")
        procs.append(subprocess.Popen([prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp}/tsdb",
                                       f"--web.listen-address=127.0.0.1:{prom_port}", "--enable-feature=exemplar-storage"],
                                      stdout=prom_log, stderr=subprocess.STDOUT))
        prom = f"http://127.0.0.1:{prom_port}"
        wait_for(f"{prom}/-/ready", "Prometheus")
        # The load must happen while Prometheus scrapes: wait for the first successful scrape.
        deadline = time.time() + 30
        while 'value":[' not in get(f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": 'up{job="shop"} == 1'})):
            if time.time() > deadline:
                raise SystemExit("FAIL: Prometheus did not scrape the shop within 30 s")
            time.sleep(0.2)
        time.sleep(1.5)

        load = os.path.join(ROOT, "scripts", "stack-load.sh")
        subprocess.run([load, base], check=True, stdout=subprocess.DEVNULL)
        time.sleep(2)
        # Checkouts answered 502: the in-process simulator fails every charge for a moment.
        sim = None
        for _ in range(50):
            m = re.search(r'"payment simulator started in-process".*?"url(?:\.full)?":"([^"]+)"', open(shop_log.name).read())
            if m:
                sim = m.group(1)
                break
            time.sleep(0.1)
        if not sim:
            raise SystemExit("FAIL: no 'payment simulator started in-process' line in the shop's log")
        get(f"{sim}/admin/faults", json.dumps({"error_rate": 1.0}).encode(), "PUT")
        token = re.search(r'"token":"([^"]+)"', get(f"{base}/v1/users", json.dumps(
            {"email": "live-check@example.com", "name": "Live"}).encode(), "POST")).group(1)
        codes = []
        for i in range(5):
            req = urllib.request.Request(f"{base}/v1/orders", data=json.dumps({"items": [{"product_id": 3, "quantity": 1}]}).encode(),
                                         headers={"content-type": "application/json", "authorization": f"Bearer {token}",
                                                  "idempotency-key": f"live-5xx-{i}"}, method="POST")
            try:
                urllib.request.urlopen(req, timeout=10)
                codes.append(200)
            except urllib.error.HTTPError as e:
                codes.append(e.code)
        get(f"{sim}/admin/faults", json.dumps({"error_rate": 0.0}).encode(), "PUT")
        if not any(c >= 500 for c in codes):
            raise SystemExit(f"FAIL: the failing checkouts answered {codes}, no 5xx")
        time.sleep(2)
        subprocess.run([load, base], check=True, stdout=subprocess.DEVNULL)
        time.sleep(4)  # a few scrapes and rule evaluations after the load
        if os.environ.get("STACK_LIVE_DEBUG"):
            for dq in os.environ["STACK_LIVE_DEBUG"].split(";"):
                print(get(f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": dq})))

        checked, skipped, empty = 0, [], []
        for path, what, expr in names.expressions():
            q = (expr.replace("$__rate_interval", "1m").replace("$__range", "5m").replace("$job", "shop"))
            if "otelcol_" in q:
                skipped.append(f"{os.path.relpath(path, ROOT)}: {what}")
                continue
            if "alert" in what.lower() or re.match(r"^[A-Z]", what) and " / " not in what:
                # an alert's condition is false on a healthy run; its data is what it compares
                q = re.split(r"\s(?:>|<|==)\s", q)[0] if re.search(r"\s(?:>|<|==)\s", q) and "\nor " not in q else q
            checked += 1
            res = json.loads(get(f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": q})))
            values = [r["value"][1] for r in res["data"]["result"]] if res["status"] == "success" else []
            if not [v for v in values if v not in ("NaN", "+Inf", "-Inf")]:  # nothing, or only 0/0
                empty.append(f"{os.path.relpath(path, ROOT)}: {what}: {q.strip()}")
        empty += check_exemplars(base, prom, spans_file)
        # The alert went Prometheus → Alertmanager → both receivers of a page.
        delivered = set()
        deadline = time.time() + 30
        while time.time() < deadline and delivered != {"/alerts", "/pagerduty"}:
            if os.path.exists(hook_out):
                for line in open(hook_out):
                    n = json.loads(line)
                    if n["path"] == "/pagerduty" or any(a["alertname"] == "LiveCheckShopUp" for a in n["alerts"]):
                        delivered.add(n["path"])
            time.sleep(0.5)
        if delivered != {"/alerts", "/pagerduty"}:
            empty.append(f"alert delivery: a severity=page alert reached only {sorted(delivered)} of the webhook and PagerDuty")
        else:
            print("ok: a severity=page alert went from Prometheus through Alertmanager to the webhook and to PagerDuty's (local) URL")
        for s in skipped:
            print(f"skipped (Collector metric, no Collector here): {s}")
        for e in empty:
            print(f"NO DATA: {e}")
        print(f"{checked - len(empty)} passed, {len(empty)} failed: PromQL expressions returning data "
              f"from a real Prometheus scraping the real shop ({len(skipped)} Collector expressions skipped); "
              f"failing checkouts answered {codes}")
        return 1 if empty else 0
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        if os.environ.get("KEEP_STACK_LIVE_TMP"):
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
