#!/usr/bin/env python3
"""Writes the Grafana dashboards of the local stack (deploy/local/grafana/dashboards/*.json).

The dashboards are generated so that every panel has the same shape (a Prometheus target per
PromQL expression, exemplars on for the latency histograms) and the JSON stays valid against
the schema scripts/check-deploy.sh derives from @grafana/schema. Edit here, run this, commit both.
Metric names come from docs/telemetry.md; scripts/check-deploy.sh checks each one is there.
"""
import json
import os

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "deploy", "local", "grafana", "dashboards")
PROM = {"type": "prometheus", "uid": "prometheus"}
RI = "$__rate_interval"
EXCL = 'http_route!~"/healthz|/readyz|/metrics"'


def panel(pid, title, exprs, unit, x, y, w=12, h=8, kind="timeseries", exemplar=False, description=None, legend=None):
    targets = []
    for i, expr in enumerate(exprs):
        t = {"refId": chr(ord("A") + i), "datasource": PROM, "expr": expr, "range": True}
        if exemplar:
            t["exemplar"] = True
        if legend:
            t["legendFormat"] = legend[i] if isinstance(legend, list) else legend
        targets.append(t)
    p = {
        "id": pid,
        "type": kind,
        "title": title,
        "datasource": PROM,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"]}} if kind == "timeseries" else {},
        "targets": targets,
    }
    if description:
        p["description"] = description
    return p


def dashboard(uid, title, description, panels, job_var=True):
    templating = []
    if job_var:
        templating.append({
            "name": "job",
            "label": "service",
            "type": "custom",
            "query": "shop,payments-sim",
            "current": {"text": "shop", "value": "shop"},
            "options": [{"text": "shop", "value": "shop", "selected": True},
                        {"text": "payments-sim", "value": "payments-sim", "selected": False}],
        })
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["shop", "local-stack"],
        "schemaVersion": 41,
        "editable": True,
        "graphTooltip": 1,
        "time": {"from": "now-1h", "to": "now"},
        "refresh": "30s",
        "timezone": "browser",
        "templating": {"list": templating},
        "annotations": {"list": []},
        "links": [],
        "panels": panels,
    }


def q(p, expr):
    return f"histogram_quantile({p}, {expr})"


H = "http_server_request_duration_seconds"
red = dashboard("shop-red", "Service RED by route",
    "Rate, errors and duration per route (http.server.request.duration, app.errors). Latency panels show exemplars: dots linking to the trace of a request in that bucket (OpenMetrics exemplars, label trace_id).", [
    panel(1, "Requests per second by route", [f'sum by (http_route) (rate({H}_count{{job="$job"}}[{RI}]))'], "reqps", 0, 0, legend="{{http_route}}"),
    panel(2, "Error ratio by route (any error.type)", [
        f'sum by (http_route) (rate(app_errors_total{{job="$job"}}[{RI}])) / sum by (http_route) (rate({H}_count{{job="$job"}}[{RI}]))'], "percentunit", 12, 0, legend="{{http_route}}"),
    panel(3, "p95 latency by route", [q(0.95, f'sum by (http_route, le) (rate({H}_bucket{{job="$job"}}[{RI}]))')], "s", 0, 8, exemplar=True, legend="{{http_route}}"),
    panel(4, "p50 / p99 latency (all routes)", [
        q(0.5, f'sum by (le) (rate({H}_bucket{{job="$job", {EXCL}}}[{RI}]))'),
        q(0.99, f'sum by (le) (rate({H}_bucket{{job="$job", {EXCL}}}[{RI}]))')], "s", 12, 8, exemplar=True, legend=["p50", "p99"]),
    panel(5, "Latency SLI: share of requests under 200 ms (objective 95%)", [
        f'sum(rate({H}_bucket{{job="$job", {EXCL}, le="0.2"}}[{RI}])) / sum(rate({H}_count{{job="$job", {EXCL}}}[{RI}]))'], "percentunit", 0, 16, legend="under 200 ms"),
    panel(6, "Availability SLI: share of requests without a 5xx (objective 99.9%)", [
        f'1 - ((sum(rate({H}_count{{job="$job", {EXCL}, http_response_status_code=~"5.."}}[{RI}])) or vector(0)) / sum(rate({H}_count{{job="$job", {EXCL}}}[{RI}])))'], "percentunit", 12, 16, legend="non-5xx"),
    panel(7, "Error budget burn rate (shop, 1h window; 14.4 pages)", [
        "shop:slo_availability_errors:ratio_rate1h / 0.001", "shop:slo_latency_slow:ratio_rate1h / 0.05"], "none", 0, 24, legend=["availability", "latency"]),
    panel(8, "In-flight requests", [f'sum by (http_request_method) (http_server_active_requests{{job="$job"}})'], "short", 12, 24, legend="{{http_request_method}}"),
])

errors = dashboard("shop-errors", "Errors by error.type",
    "app.errors: exactly one increment per failed request, by the closed set of error.type values.", [
    panel(1, "Errors per second by error.type", [f'sum by (error_type) (rate(app_errors_total{{job="$job"}}[{RI}]))'], "short", 0, 0, w=24, legend="{{error_type}}"),
    panel(2, "Errors in the range by error.type and route", [f'sum by (error_type, http_route) (increase(app_errors_total{{job="$job"}}[$__range]))'], "short", 0, 8, kind="table"),
    panel(3, "Responses per second by status code", [f'sum by (http_response_status_code) (rate({H}_count{{job="$job"}}[{RI}]))'], "reqps", 12, 8, legend="{{http_response_status_code}}"),
])

checkout = dashboard("shop-checkout", "Checkout and payment health",
    "The shop's domain metrics (shop.*) and its calls to the payment provider (http.client.request.duration).", [
    panel(1, "Orders placed and failed per second", [
        'sum(rate(shop_orders_placed_total{job="shop"}[$__rate_interval]))',
        'sum by (shop_order_failure_reason) (rate(shop_orders_failed_total{job="shop"}[$__rate_interval]))'], "short", 0, 0, legend=["placed", "{{shop_order_failure_reason}}"]),
    panel(2, "Checkout duration p95 by outcome", [q(0.95, 'sum by (shop_checkout_outcome, le) (rate(shop_checkout_duration_seconds_bucket{job="shop"}[$__rate_interval]))')], "s", 12, 0, legend="{{shop_checkout_outcome}}"),
    panel(3, "Payments per second by outcome", [f'sum by (shop_payment_outcome) (rate(shop_payments_total{{job="shop"}}[{RI}]))'], "short", 0, 8, legend="{{shop_payment_outcome}}"),
    panel(4, "Payment provider call p95 by status", [q(0.95, f'sum by (http_response_status_code, le) (rate(http_client_request_duration_seconds_bucket{{job="shop"}}[{RI}]))')], "s", 12, 8, legend="{{http_response_status_code}}"),
    panel(5, "Circuit breaker openings and orders taken over (range)", [
        'sum(increase(shop_payment_circuit_opened_total{job="shop"}[$__range])) or vector(0)',
        'sum(increase(shop_orders_taken_over_total{job="shop"}[$__range])) or vector(0)'], "short", 0, 16, kind="stat", legend=["circuit opened", "taken over"]),
    panel(6, "Checkout success ratio", [
        'sum(rate(shop_orders_placed_total{job="shop"}[$__rate_interval])) / (sum(rate(shop_orders_placed_total{job="shop"}[$__rate_interval])) + (sum(rate(shop_orders_failed_total{job="shop"}[$__rate_interval])) or vector(0)))'], "percentunit", 12, 16, legend="placed / all checkouts"),
], job_var=False)

D = "db_client_operation_duration_seconds"
db = dashboard("shop-db", "Database latency",
    "db.client.operation.duration by operation and table.", [
    panel(1, "p95 by operation and table", [q(0.95, f'sum by (db_operation_name, db_collection_name, le) (rate({D}_bucket{{job="$job"}}[{RI}]))')], "s", 0, 0, legend="{{db_operation_name}} {{db_collection_name}}"),
    panel(2, "Operations per second", [f'sum by (db_operation_name, db_collection_name) (rate({D}_count{{job="$job"}}[{RI}]))'], "ops", 12, 0, legend="{{db_operation_name}} {{db_collection_name}}"),
    panel(3, "Failed operations per second by error.type", [f'sum by (db_operation_name, error_type) (rate({D}_count{{job="$job", error_type!=""}}[{RI}])) or vector(0)'], "ops", 0, 8, legend="{{db_operation_name}} {{error_type}}"),
    panel(4, "p99 (all operations)", [q(0.99, f'sum by (le) (rate({D}_bucket{{job="$job"}}[{RI}]))')], "s", 12, 8, legend="p99"),
])

pipeline = dashboard("telemetry-pipeline", "Telemetry pipeline",
    "Is the telemetry itself healthy? The services' exporter-health counters, the Collector's own metrics and the series count against the budget of 1,000 per instance.", [
    panel(1, "Records dropped (queue full) by service and signal", [f'sum by (job, signal) (increase(app_telemetry_dropped_total[{RI}]))'], "short", 0, 0, legend="{{job}} {{signal}}"),
    panel(2, "Failed OTLP exports by service and signal", [f'sum by (job, signal) (increase(app_telemetry_export_failures_total[{RI}]))'], "short", 12, 0, legend="{{job}} {{signal}}"),
    panel(3, "Stdout log lines dropped", [f'sum by (job) (increase(app_telemetry_log_lines_dropped_total[{RI}]))'], "short", 0, 8, legend="{{job}}"),
    panel(4, "Active series per instance (budget 1,000, alert 800)", [
        "app:telemetry_series:count", "vector(800)", "vector(1000)"], "short", 12, 8, legend=["{{job}} {{instance}}", "alert line", "budget"]),
    panel(5, "Collector: items sent per second by exporter", [
        f'sum by (exporter) (rate(otelcol_exporter_sent_spans_total[{RI}]))',
        f'sum by (exporter) (rate(otelcol_exporter_sent_log_records_total[{RI}]))',
        f'sum by (exporter) (rate(otelcol_exporter_sent_metric_points_total[{RI}]))'], "short", 0, 16, legend=["{{exporter}} spans", "{{exporter}} logs", "{{exporter}} metric points"]),
    panel(6, "Collector: failed sends and refused items per second", [
        f'sum by (exporter) (rate(otelcol_exporter_send_failed_spans_total[{RI}]))',
        f'sum by (exporter) (rate(otelcol_exporter_send_failed_log_records_total[{RI}]))',
        f'sum by (receiver) (rate(otelcol_receiver_refused_spans_total[{RI}]))',
        f'sum by (receiver) (rate(otelcol_receiver_refused_log_records_total[{RI}]))'], "short", 12, 16,
        legend=["{{exporter}} spans failed", "{{exporter}} logs failed", "{{receiver}} spans refused", "{{receiver}} logs refused"]),
    panel(7, "Scrape targets up", ['up{job=~"shop|payments-sim|otel-collector"}'], "short", 0, 24, w=24, legend="{{job}} {{instance}}"),
], job_var=False)

os.makedirs(OUT, exist_ok=True)
for name, d in [("service-red", red), ("errors", errors), ("checkout-payments", checkout), ("database", db), ("telemetry-pipeline", pipeline)]:
    with open(os.path.join(OUT, f"{name}.json"), "w") as f:
        json.dump(d, f, indent=2)
        f.write("\n")
