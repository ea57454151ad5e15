#!/usr/bin/env python3
"""Static check of deploy/local/collector/config.yaml (no Collector binary runs here): every
component a pipeline uses is configured, every configured component is used, and each one's
type is in the list of the pinned contrib release's components documented in
docs/deploy-local.md ("Collector components"). Exits 1 naming each problem."""
import os
import re
import sys

import yaml

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def main():
    config = yaml.safe_load(open(os.path.join(ROOT, "deploy", "local", "collector", "config.yaml"), encoding="utf-8"))
    doc = open(os.path.join(ROOT, "docs", "deploy-local.md"), encoding="utf-8").read()
    section = doc.split("### Collector components", 1)[1].split("\n#", 1)[0]
    available = {}
    for kind in ("receivers", "processors", "exporters", "extensions"):
        m = re.search(rf"^- {kind}: (.+)$", section, re.M)
        available[kind] = set(re.findall(r"`([a-z_0-9]+)`", m.group(1))) if m else set()
    problems = []
    used = {k: set() for k in available}
    for name, pipeline in config["service"]["pipelines"].items():
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind, []):
                used[kind].add(component)
                if component not in (config.get(kind) or {}):
                    problems.append(f"pipeline {name}: {kind[:-1]} {component} is not configured")
        if pipeline.get("processors", [None])[0] != "memory_limiter":
            problems.append(f"pipeline {name}: memory_limiter must come first")
        if pipeline.get("processors", [None])[-1] != "batch":
            problems.append(f"pipeline {name}: batch must come last")
    used["extensions"] = set(config["service"].get("extensions", []))
    for kind in available:
        for component in config.get(kind) or {}:
            ctype = component.split("/", 1)[0]
            if ctype not in available[kind]:
                problems.append(f"{kind[:-1]} {component}: type {ctype} is not in the documented component list")
            if component not in used[kind]:
                problems.append(f"{kind[:-1]} {component} is configured but not used")
    if problems:
        print("\n".join(problems))
        print(f"FAIL: {len(problems)} problems in the Collector config")
        return 1
    print("ok: Collector config: " + ", ".join(f"{len(used[k])} {k}" for k in available))
    return 0


if __name__ == "__main__":
    sys.exit(main())
