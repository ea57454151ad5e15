#!/usr/bin/env python3
"""Static checks of the cloud deployment (scripts/check-gcp.sh runs it in its venv: PyYAML and
python-hcl2 come with yamllint and checkov). Nothing here talks to GCP. Exits 1 naming each
problem.

1. Collector: deploy/gcp/collector/config.yaml alone and merged with each overlay of deploy/saas
   (the way a second --config merges: maps merge, lists are replaced). Every component a
   pipeline uses is configured, every configured one is used, each type is in the pinned image's
   component list (deploy/gcp/collector/components-<version>.txt), memory_limiter comes first
   and batch last in every pipeline that exports somewhere, an overlay never drops an exporter
   of the base config, every ${env:VAR} an overlay reads is documented in docs/saas.md, and the
   image pinned in service.yaml and Terraform is the list's version.
2. Cloud Run: deploy/gcp/service.yaml and deploy/gcp/terraform/cloud_run.tf set the same
   resources, probes, ports, scaling, timeout, environment and collector arguments.
3. SLOs: deploy/gcp/terraform/monitoring.tf has the objectives, windows and burn rates of the
   local stack's deploy/local/prometheus/rules/slo.yml.
"""
import glob
import json
import os
import re
import sys

import hcl2
import yaml

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
GCP = os.path.join(ROOT, "deploy", "gcp")
KINDS = ("receivers", "processors", "exporters", "extensions", "connectors")
problems = []


def problem(msg):
    problems.append(msg)


def read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


def merge(base, overlay):
    """confmap's merge: maps merge key by key, anything else (lists too) is replaced."""
    if isinstance(base, dict) and isinstance(overlay, dict):
        out = dict(base)
        for k, v in overlay.items():
            out[k] = merge(base[k], v) if k in base else v
        return out
    return overlay


# --- 1. Collector ---------------------------------------------------------------------------
def component_list():
    files = glob.glob(os.path.join(GCP, "collector", "components-*.txt"))
    if len(files) != 1:
        problem(f"expected one deploy/gcp/collector/components-<version>.txt, found {len(files)}")
        return None, {}
    version = re.search(r"components-(.+)\.txt$", files[0]).group(1)
    available = {k: set() for k in KINDS}
    for line in open(files[0], encoding="utf-8"):
        line = line.split("#", 1)[0].split()
        if line:
            available[line[0] + "s"].add(line[1])
    return version, available


def check_collector(name, config, available, base_exporters=None):
    pipelines = (config.get("service") or {}).get("pipelines") or {}
    if not pipelines:
        problem(f"{name}: no pipelines")
    used = {k: set() for k in KINDS}
    for pname, p in pipelines.items():
        for kind in ("receivers", "processors", "exporters"):
            for c in p.get(kind) or []:
                used[kind].add(c)
                if c not in (config.get(kind) or {}) and c not in (config.get("connectors") or {}):
                    problem(f"{name}: pipeline {pname}: {kind[:-1]} {c} is not configured")
        procs = p.get("processors") or []
        if not procs or procs[0] != "memory_limiter":
            problem(f"{name}: pipeline {pname}: memory_limiter must come first")
        exports = [e for e in p.get("exporters") or [] if not e.startswith("nop")]
        if exports and procs[-1:] != ["batch"]:
            problem(f"{name}: pipeline {pname}: batch must come last")
        if base_exporters and pname in base_exporters:
            dropped = base_exporters[pname] - set(p.get("exporters") or [])
            if dropped:
                problem(f"{name}: pipeline {pname} no longer exports to {sorted(dropped)} of the base config")
    used["extensions"] = set((config.get("service") or {}).get("extensions") or [])
    for c in used["extensions"]:
        if c not in (config.get("extensions") or {}):
            problem(f"{name}: extension {c} is not configured")
    used["connectors"] = used["receivers"] | used["exporters"]
    for kind in KINDS:
        for c in config.get(kind) or {}:
            ctype = c.split("/", 1)[0]
            if ctype not in available[kind]:
                problem(f"{name}: {kind[:-1]} {c}: type {ctype} is not in the pinned image's component list")
            if c not in used[kind]:
                problem(f"{name}: {kind[:-1]} {c} is configured but not used")
    return {pn: set(p.get("exporters") or []) for pn, p in pipelines.items()}


def check_collectors():
    version, available = component_list()
    if version is None:
        return
    base = yaml.safe_load(read("deploy/gcp/collector/config.yaml"))
    base_exporters = check_collector("deploy/gcp/collector/config.yaml", base, available)
    saas_doc = read("docs/saas.md")
    overlays = sorted(glob.glob(os.path.join(ROOT, "deploy", "saas", "*.yaml")))
    if not overlays:
        problem("deploy/saas: no Collector overlays")
    for path in overlays:
        rel = os.path.relpath(path, ROOT)
        text = open(path, encoding="utf-8").read()
        check_collector(f"{rel} over the base", merge(base, yaml.safe_load(text)), available, base_exporters)
        for var in sorted(set(re.findall(r"\$\{env:([A-Z0-9_]+)", text))):
            if f"`{var}`" not in saas_doc:
                problem(f"{rel}: ${{env:{var}}} is not documented in docs/saas.md")
    image = f"otelcol-google:{version}"
    if image not in read("deploy/gcp/service.yaml"):
        problem(f"deploy/gcp/service.yaml does not run {image}, the version of the component list")
    if image not in read("deploy/gcp/terraform/variables.tf"):
        problem(f"deploy/gcp/terraform/variables.tf (collector_image) is not {image}, the version of the component list")
    print(f"ok: Collector configs: the base and {len(overlays)} overlays, every component in otelcol-google {version}")


# --- 2. Cloud Run: Knative YAML vs Terraform ------------------------------------------------
def one(v):
    while isinstance(v, list) and len(v) == 1:
        v = v[0]
    return v


def tf_probe(p):
    p = one(p)
    get = one(p["http_get"])
    return {"path": one(get["path"]), "port": one(get["port"]), "period": one(p["period_seconds"]),
            "timeout": one(p["timeout_seconds"]), "failures": one(p["failure_threshold"])}


def k_probe(p):
    return {"path": p["httpGet"]["path"], "port": p["httpGet"]["port"], "period": p["periodSeconds"],
            "timeout": p["timeoutSeconds"], "failures": p["failureThreshold"]}


def tf_env(c):
    out = {}
    for e in c.get("env") or []:
        name = one(e["name"])
        if "value" in e:
            out[name] = one(e["value"])
        else:
            secret = one(one(one(e["value_source"])["secret_key_ref"])["secret"])
            out[name] = "secret:" + re.sub(r"^\$\{google_secret_manager_secret\.(\w+)\.secret_id\}$", r"\1", secret)
    return out


def k_env(c):
    out = {}
    for e in c.get("env") or []:
        if "value" in e:
            out[e["name"]] = e["value"]
        else:
            out[e["name"]] = "secret:" + e["valueFrom"]["secretKeyRef"]["name"].removeprefix("shop-").replace("-", "_")
    return out


def check_cloud_run():
    k = yaml.safe_load(read("deploy/gcp/service.yaml"))
    tf = hcl2.loads(read("deploy/gcp/terraform/cloud_run.tf"))
    svc = [r["google_cloud_run_v2_service"]["shop"] for r in tf["resource"] if "google_cloud_run_v2_service" in r][0]
    t = one(svc["template"])
    ka = k["spec"]["template"]["metadata"]["annotations"]
    ks = k["spec"]["template"]["spec"]
    scaling = one(t["scaling"])
    pairs = [
        ("execution environment", ka["run.googleapis.com/execution-environment"], one(t["execution_environment"]).removeprefix("EXECUTION_ENVIRONMENT_").lower()),
        ("min instances", int(ka["autoscaling.knative.dev/minScale"]), one(scaling["min_instance_count"])),
        ("max instances", int(ka["autoscaling.knative.dev/maxScale"]), one(scaling["max_instance_count"])),
        ("concurrency", ks["containerConcurrency"], one(t["max_instance_request_concurrency"])),
        ("request timeout", f'{ks["timeoutSeconds"]}s', one(t["timeout"])),
        ("container dependencies", json.loads(ka["run.googleapis.com/container-dependencies"]),
         {one(c["name"]): one(c["depends_on"]) if isinstance(one(c["depends_on"]), list) else [one(c["depends_on"])]
          for c in t["containers"] if "depends_on" in c}),
    ]
    kc = {c["name"]: c for c in ks["containers"]}
    tc = {one(c["name"]): c for c in t["containers"]}
    pairs.append(("container names", sorted(kc), sorted(tc)))
    for name in sorted(set(kc) & set(tc)):
        a, b = kc[name], tc[name]
        res = one(b["resources"])
        pairs += [
            (f"{name}: limits", a["resources"]["limits"], one(res["limits"])),
            (f"{name}: CPU always allocated", ka["run.googleapis.com/cpu-throttling"] == "false", one(res["cpu_idle"]) is False),
            (f"{name}: startup probe", k_probe(a["startupProbe"]), tf_probe(b["startup_probe"])),
            (f"{name}: liveness probe", k_probe(a["livenessProbe"]), tf_probe(b["liveness_probe"])),
            (f"{name}: ports", [p["containerPort"] for p in a.get("ports", [])], [one(p["container_port"]) for p in b.get("ports", [])]),
        ]
        if name == "shop":
            kenv, tenv = k_env(a), tf_env(b)
            tenv = {n: ("PROJECT_ID" if v == "${var.project_id}" else "shop" if v == "${var.service_name}" else v) for n, v in tenv.items()}
            pairs.append(("shop: environment", kenv, tenv))
        else:
            pairs.append((f"{name}: image", a["image"], "var.collector_image"))
            tf_locals = {}
            for block in tf.get("locals", []):
                tf_locals.update(block)
            config_dir = one(tf_locals.get("collector_config_dir"))
            args = str(tf_locals.get("collector_args"))
            tf_args = [f"--config={config_dir}/config.yaml"] if "--config=${local.collector_config_dir}/config.yaml" in args else args
            pairs.append((f"{name}: args (base config)", a.get("args"), tf_args))
            pairs.append((f"{name}: config mount", [m["mountPath"] for m in a.get("volumeMounts", [])],
                          [one(m["mount_path"]).replace("${local.collector_config_dir}", str(config_dir)) for m in b.get("volume_mounts", [])]))
    variables = hcl2.loads(read("deploy/gcp/terraform/variables.tf"))
    collector_default = [one(v["collector_image"]["default"]) for v in variables["variable"] if "collector_image" in v][0]
    for i, (what, a, b) in enumerate(pairs):
        if b == "var.collector_image":
            pairs[i] = (what, a, collector_default)
    if one(svc.get("ingress")) != "INGRESS_TRAFFIC_ALL" or k["metadata"]["annotations"].get("run.googleapis.com/ingress") != "all":
        problem("ingress differs between service.yaml and cloud_run.tf")
    for what, a, b in pairs:
        if a != b:
            problem(f"Cloud Run {what}: service.yaml has {a!r}, cloud_run.tf has {b!r}")
    print(f"ok: deploy/gcp/service.yaml and terraform/cloud_run.tf agree on {len(pairs) + 1} settings")


# --- 3. SLOs: Cloud Monitoring vs the local stack's Prometheus rules -------------------------
def seconds(d):
    m = re.fullmatch(r"(\d+)([smhd])", d)
    return int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def check_slos():
    rules = yaml.safe_load(read("deploy/local/prometheus/rules/slo.yml"))
    local = {}
    goals = {"availability": 0.999, "latency": 0.95}
    for g in rules["groups"]:
        for r in g["rules"]:
            if "alert" not in r:
                continue
            lab = r["labels"]
            threshold = float(re.search(r">\s*([0-9.]+)", r["expr"]).group(1))
            local[(lab["slo"], seconds(lab["long_window"]), seconds(lab["short_window"]))] = (
                round(threshold / (1 - goals[lab["slo"]]), 6), lab["severity"])
    desc = " ".join(r.get("annotations", {}).get("description", "") for g in rules["groups"] for r in g["rules"])
    for slo, goal in goals.items():
        if f"{goal * 100:g}%" not in desc:
            problem(f"slo.yml no longer states the {slo} objective {goal * 100:g}%: update check-gcp-config.py and monitoring.tf together")
    tf = hcl2.loads(read("deploy/gcp/terraform/monitoring.tf"))
    locs = {}
    for block in tf["locals"]:
        locs.update(block)
    slos = one(locs["slos"])
    windows = one(locs["burn_windows"])
    cloud = {}
    for slo, s in slos.items():
        if abs(float(one(s["goal"])) - goals.get(slo, -1)) > 1e-9:
            problem(f"monitoring.tf: SLO {slo} goal {one(s['goal'])}, the local stack's is {goals.get(slo)}")
        for w in windows.values():
            cloud[(slo, seconds(one(w["long"])), seconds(one(w["short"])))] = (float(one(w["rate"])), one(w["severity"]))
    if cloud != local:
        for key in sorted(set(cloud) | set(local)):
            if cloud.get(key) != local.get(key):
                problem(f"burn-rate alert {key}: Cloud Monitoring {cloud.get(key)}, local Prometheus {local.get(key)}")
    if "latency" in slos and "max = 200" not in read("deploy/gcp/terraform/monitoring.tf"):
        problem("monitoring.tf: the latency SLO's threshold is not 200 ms (slo.yml's le=\"0.2\")")
    print(f"ok: {len(cloud)} burn-rate alerts match deploy/local/prometheus/rules/slo.yml (objectives, windows, rates, severities)")


def main():
    for check in (check_collectors, check_cloud_run, check_slos):
        try:
            check()
        except (KeyError, IndexError, TypeError, AttributeError) as e:
            problem(f"{check.__name__}: unexpected structure ({type(e).__name__}: {e})")
    if problems:
        print("\n".join(problems))
        print(f"FAIL: {len(problems)} problems in the cloud deployment's configuration")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
