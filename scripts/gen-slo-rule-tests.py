#!/usr/bin/env python3
"""Writes deploy/local/prometheus/tests/slo_test.yml and slo_3d_test.yml: promtool unit tests for
every SLO burn-rate alert (firing and not firing), expected annotations read from rules/slo.yml.
Run after changing rules/slo.yml; scripts/check-deploy.sh runs the tests."""
import os
os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "deploy", "local", "prometheus"))
import yaml
RULES = yaml.safe_load(open("rules/slo.yml"))
ANN = {r["alert"]: r["annotations"] for g in RULES["groups"] for r in g["rules"] if "alert" in r}
def ann(alert):
    return {k: v.replace("{{ $labels.job }}", "shop") for k, v in ANN[alert].items()}
H = 'http_server_request_duration_seconds'
L = 'job="shop", instance="shop:8080", http_request_method="GET", http_route="/v1/products", url_scheme="http"'
def series(good, bad, fast_good, fast_bad, n):
    return [
        {"series": f'{H}_count{{{L}, http_response_status_code="200"}}', "values": f"0+{good}x{n}"},
        {"series": f'{H}_count{{{L}, http_response_status_code="500", error_type="internal"}}', "values": f"0+{bad}x{n}"},
        {"series": f'{H}_bucket{{{L}, http_response_status_code="200", le="0.2"}}', "values": f"0+{fast_good}x{n}"},
        {"series": f'{H}_bucket{{{L}, http_response_status_code="500", error_type="internal", le="0.2"}}', "values": f"0+{fast_bad}x{n}"},
    ]
ALL = ["Fast", "Medium", "Slow", "Slowest"]
META = {"Fast": ("1h", "5m", "page"), "Medium": ("6h", "30m", "page"), "Slow": ("1d", "2h", "ticket"), "Slowest": ("3d", "6h", "ticket")}
def checks(cap, slo, at, firing, silent):
    out = []
    for n in firing:
        lw, sw, sev = META[n]
        out.append({"eval_time": at, "alertname": f"Shop{cap}BurnRate{n}",
                    "exp_alerts": [{"exp_labels": {"job": "shop", "severity": sev, "slo": slo, "long_window": lw, "short_window": sw}, "exp_annotations": ann(f"Shop{cap}BurnRate{n}")}]})
    for n in silent:
        out.append({"eval_time": at, "alertname": f"Shop{cap}BurnRate{n}", "exp_alerts": []})
    return out
tests = []
def add(name, interval, s, n, at, cap, slo, firing, silent, input_series=None):
    tests.append({"name": name, "interval": interval, "input_series": input_series or series(*s, n),
                  "alert_rule_test": checks(cap, slo, at, firing, silent)})
# Availability: budget 0.1% of requests answered 5xx.
add("availability: 5% errors (50x) for 70 minutes pages on 1h/5m, and every slower pair fires", "1m", (95, 5, 95, 5), 80, "70m", "Availability", "availability", ALL, [])
reset = series(95, 5, 95, 5, 60)
reset[0]["values"] = reset[2]["values"] = "0+95x60 5795+100x15"
reset[1]["values"] = reset[3]["values"] = "0+5x60 300x15"
add("availability: the 1h/5m page clears 10 minutes after the errors stop, while 6h/30m still burns", "1m", None, 0, "70m", "Availability", "availability", ["Medium"], ["Fast"], reset)
add("availability: 0.8% errors (8x) pages on 6h/30m, not on 1h/5m", "1m", (992, 8, 992, 8), 60, "45m", "Availability", "availability", ["Medium"], ["Fast"])
add("availability: 0.4% errors (4x) opens the 1d/2h ticket, no page", "5m", (996, 4, 996, 4), 40, "150m", "Availability", "availability", ["Slow"], ["Fast", "Medium"])
add("availability: 0.15% errors (1.5x) for 3 days opens the 3d/6h ticket only", "30m", (59910, 90, 59910, 90), 150, "3d", "Availability", "availability", ["Slowest"], ["Fast", "Medium", "Slow"])
add("availability: 0.05% errors (0.5x, within budget) for 3 days alerts nothing", "30m", (59970, 30, 59970, 30), 150, "3d", "Availability", "availability", [], ALL)
tot = series(0, 100, 0, 100, 20)
add("availability: a total outage (every request 5xx, no 2xx series at all) pages", "1m", None, 0, "15m", "Availability", "availability", ["Fast", "Medium"], [], tot[1:2] + tot[3:4])
# Latency: budget 5% of requests slower than 200 ms.
add("latency: 80% slower than 200 ms (16x) pages on 1h/5m, and every slower pair fires", "1m", (100, 0, 20, 0), 80, "70m", "Latency", "latency", ALL, [])
add("latency: 40% slow (8x) pages on 6h/30m, not on 1h/5m", "1m", (100, 0, 60, 0), 60, "45m", "Latency", "latency", ["Medium"], ["Fast"])
add("latency: 20% slow (4x) opens the 1d/2h ticket, no page", "5m", (100, 0, 80, 0), 40, "150m", "Latency", "latency", ["Slow"], ["Fast", "Medium"])
add("latency: 7% slow (1.4x) for 3 days opens the 3d/6h ticket only", "30m", (100, 0, 93, 0), 150, "3d", "Latency", "latency", ["Slowest"], ["Fast", "Medium", "Slow"])
add("latency: 2% slow (0.4x, within budget) for 3 days alerts nothing", "30m", (100, 0, 98, 0), 150, "3d", "Latency", "latency", [], ALL)
hdr = ("# promtool test rules: every SLO burn-rate alert of ../rules/slo.yml, firing and not firing.\n"
       "# Input: request counts per interval (200 vs 500, and how many under the 0.2 s bucket);\n"
       "# each test's name gives the bad share and the burn rate it means.\n")
short = [t for t in tests if t["interval"] != "30m"]
long = [t for t in tests if t["interval"] == "30m"]
doc = {"rule_files": ["../rules/slo.yml"], "evaluation_interval": "1m", "tests": short}
open("tests/slo_test.yml", "w").write(hdr + yaml.safe_dump(doc, sort_keys=False, width=120))
doc = {"rule_files": ["../rules/slo.yml"], "evaluation_interval": "30m", "tests": long}
hdr3 = hdr + "# The 3-day tests: samples and evaluations every 30 minutes (the 5m/30m windows then hold\n# too few samples, so those tests check only the 1d and 3d pairs).\n"
open("tests/slo_3d_test.yml", "w").write(hdr3 + yaml.safe_dump(doc, sort_keys=False, width=120))
