#!/usr/bin/env python3
"""Checks that every dashboards/*.json is a Grafana dashboard that imports as
it is: it parses, has a uid, a title, a schemaVersion, a Prometheus
datasource variable that every panel and query uses, and panels with a
type, a place on the grid, queries, a unit and thresholds. Also checks that
the JSON is what dashboards/build_dashboards.py makes, so the two never drift.

usage: check_dashboards.py DASHBOARDS_DIR
"""

import json
import os
import re
import subprocess
import sys
import tempfile

PANEL_TYPES = {"timeseries", "stat", "gauge", "bargauge", "table", "heatmap", "piechart",
               "state-timeline", "text"}
VAR_USE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")
UID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")

problems = []


def problem(where, what):
    problems.append(f"{where}: {what}")


def check_datasource(where, ds):
    if not isinstance(ds, dict) or ds.get("type") != "prometheus" \
            or ds.get("uid") != "${datasource}":
        problem(where, f"datasource must be the ${{datasource}} variable, is {ds!r}")


def check_thresholds(where, t):
    if not isinstance(t, dict) or t.get("mode") not in ("absolute", "percentage"):
        problem(where, "thresholds need a mode")
        return
    steps = t.get("steps")
    if not steps or steps[0].get("value") is not None:
        problem(where, "thresholds need steps, the first with value null (the base)")
        return
    values = [s.get("value") for s in steps[1:]]
    if any(not isinstance(v, (int, float)) for v in values) or values != sorted(values):
        problem(where, f"threshold values must be numbers in ascending order: {values}")
    if any("color" not in s for s in steps):
        problem(where, "every threshold step needs a color")


def check_dashboard(path, uids):
    name = os.path.basename(path)
    try:
        with open(path) as f:
            d = json.load(f)
    except (OSError, ValueError) as e:
        problem(name, f"does not parse: {e}")
        return
    for key in ("uid", "title", "schemaVersion", "panels", "templating", "time"):
        if key not in d:
            problem(name, f"no '{key}'")
    if problems:
        return
    if not isinstance(d["uid"], str) or not UID.match(d["uid"]):
        problem(name, f"uid {d['uid']!r} must be 1-40 letters, digits, - or _")
    if d["uid"] in uids:
        problem(name, f"uid {d['uid']} is also used by {uids[d['uid']]}")
    uids[d["uid"]] = name
    if not isinstance(d["title"], str) or not d["title"].strip():
        problem(name, "empty title")
    if not isinstance(d["schemaVersion"], int) or d["schemaVersion"] < 30:
        problem(name, f"schemaVersion {d['schemaVersion']!r} is older than Grafana 8")
    if d.get("id") is not None:
        problem(name, "id must be null: a numeric id would overwrite another dashboard")

    variables = {}
    for v in d["templating"].get("list", []):
        if "name" not in v or "type" not in v:
            problem(name, f"variable without name or type: {v!r}")
            continue
        variables[v["name"]] = v
    ds = variables.get("datasource")
    if not ds or ds["type"] != "datasource" or ds.get("query") != "prometheus":
        problem(name, "needs a variable 'datasource' of type datasource, query prometheus")
    for v in variables.values():
        if v["type"] == "query":
            check_datasource(f"{name} variable {v['name']}", v.get("datasource"))
            q = v.get("query")
            q = q.get("query") if isinstance(q, dict) else q
            if not q:
                problem(name, f"variable {v['name']} has no query")

    def check_vars(where, text):
        for m in VAR_USE.finditer(text):
            var = next(g for g in m.groups() if g)
            if not var.startswith("__") and var not in variables:
                problem(where, f"uses undefined variable ${var}")

    ids, cells = set(), {}
    panels = d["panels"]
    if not panels:
        problem(name, "no panels")
    for p in panels:
        title = p.get("title", "")
        where = f"{name} panel {title!r}"
        if not isinstance(p.get("id"), int) or p["id"] in ids:
            problem(where, f"id {p.get('id')!r} missing or not unique")
        ids.add(p.get("id"))
        g = p.get("gridPos", {})
        if not all(isinstance(g.get(k), int) for k in ("h", "w", "x", "y")) \
                or g["x"] + g["w"] > 24 or g["w"] < 1 or g["h"] < 1:
            problem(where, f"bad gridPos {g!r}")
            continue
        overlapped = {cells[(x, y)]
                      for x in range(g["x"], g["x"] + g["w"])
                      for y in range(g["y"], g["y"] + g["h"]) if (x, y) in cells}
        for other in sorted(overlapped):
            problem(where, f"overlaps panel {other!r}")
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                cells[(x, y)] = title
        if p.get("type") == "row":
            if not title:
                problem(where, "row without title")
            continue
        if p.get("type") not in PANEL_TYPES:
            problem(where, f"unknown type {p.get('type')!r}")
        if not title.strip():
            problem(where, "no title")
        check_datasource(where, p.get("datasource"))
        targets = p.get("targets") or []
        if not targets:
            problem(where, "no queries")
        refs = [t.get("refId") for t in targets]
        if None in refs or len(set(refs)) != len(refs):
            problem(where, f"refIds must be set and unique: {refs}")
        for t in targets:
            if not t.get("expr", "").strip():
                problem(where, "a query without expr")
            check_datasource(where + " query", t.get("datasource"))
            check_vars(where, t.get("expr", ""))
        defaults = p.get("fieldConfig", {}).get("defaults", {})
        if not isinstance(defaults.get("unit"), str) or not defaults["unit"]:
            problem(where, "no unit")
        check_thresholds(where, defaults.get("thresholds"))


def check_generated(directory):
    """The committed JSON equals what build_dashboards.py writes."""
    script = os.path.join(directory, "build_dashboards.py")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, script, "--out", tmp], check=True)
        for f in sorted(os.listdir(tmp)):
            with open(os.path.join(tmp, f)) as a:
                made = a.read()
            committed_path = os.path.join(directory, f)
            committed = open(committed_path).read() if os.path.exists(committed_path) else None
            if made != committed:
                problem(f, "differs from what build_dashboards.py makes: run it and commit")


def main():
    directory = sys.argv[1]
    files = sorted(f for f in os.listdir(directory) if f.endswith(".json"))
    if not files:
        problem(directory, "no dashboards")
    uids = {}
    for f in files:
        check_dashboard(os.path.join(directory, f), uids)
    check_generated(directory)
    for p in problems:
        print(p)
    if problems:
        return 1
    print(f"{len(files)} dashboards importable: {', '.join(files)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
