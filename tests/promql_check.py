#!/usr/bin/env python3
"""Runs every PromQL expression of the dashboards and the alert rules through
a live Prometheus's HTTP API (used by metrics_prometheus.sh).

  promql_check.py wait PROM_URL EXPR MIN TIMEOUT_S
      waits until EXPR returns a series whose value is >= MIN.
  promql_check.py check PROM_URL DASHBOARDS_DIR
      - every panel query and every query variable of every dashboard, with
        Grafana's variables replaced by what "All" means (.*) and its
        intervals by fixed ones, must be valid and return at least one series;
      - every rule Prometheus loaded from the rules file must be healthy, and
        its expression must be valid and each operand of its top-level
        and/or/unless, with each comparison made a `bool` one (so that it keeps
        the series it would otherwise filter out), must return at least one
        series: the metrics an alert watches exist.
    A query that returns nothing is retried for a while: some series need
    the simulator to have done something first (a vehicle leaving its depot).
"""

import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

GRAFANA_INTERVALS = {"__rate_interval": "1m", "__interval": "15s", "__range": "5m",
                     "__range_s": "300", "__interval_ms": "15000"}
VAR_USE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")
LABEL_VALUES = re.compile(r"^\s*label_values\((.*),\s*(\w+)\s*\)\s*$", re.S)
# How long to wait for a rule to be evaluated or a query to return a series:
# a deadline for a broken build, never an expected speed.
RETRY_S = 120


def api(url, path, params=None):
    q = "?" + urllib.parse.urlencode(params) if params else ""
    try:
        with urllib.request.urlopen(url + path + q, timeout=30) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:  # 400 and 422 carry the reason as JSON
        body = e.read()
        try:
            return json.loads(body)
        except ValueError:
            return {"status": "error", "error": f"HTTP {e.code}: {body[:200]!r}"}


def query(url, expr):
    """Returns (error or None, result list)."""
    r = api(url, "/api/v1/query", {"query": expr})
    if r.get("status") != "success":
        return r.get("error", "unknown error"), []
    data = r["data"]
    result = data["result"]
    if data["resultType"] in ("scalar", "string"):
        result = [result]
    return None, result


def wait(url, expr, minimum, timeout):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            err, result = query(url, expr)
            last = err or result
            if not err and any(float(s["value"][1]) >= minimum for s in result):
                return 0
        except (OSError, ValueError) as e:
            last = e
        time.sleep(0.5)
    print(f"timed out waiting for {expr} >= {minimum}; last answer: {last}")
    return 1


def substitute(expr, variables):
    def repl(m):
        name = next(g for g in m.groups() if g)
        if name in GRAFANA_INTERVALS:
            return GRAFANA_INTERVALS[name]
        if name in variables:
            return variables[name]
        return m.group(0)  # left as is: Prometheus will call it invalid
    return VAR_USE.sub(repl, expr)


def with_bool(expr):
    """Adds `bool` after every comparison operator outside label matchers and
    strings: `a > 5 and b == 1` -> `a > bool 5 and b == bool 1`."""
    out, i, depth, quote = [], 0, 0, None
    while i < len(expr):
        c = expr[i]
        if quote:
            out.append(c)
            if c == "\\":
                out.append(expr[i + 1])
                i += 2
                continue
            if c == quote:
                quote = None
            i += 1
            continue
        if c in "\"'`":
            quote = c
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif depth == 0:
            op = next((o for o in ("==", "!=", ">=", "<=", ">", "<") if expr.startswith(o, i)),
                      None)
            if op:
                out.append(op)
                i += len(op)
                if not re.match(r"\s*bool\b", expr[i:]):
                    out.append(" bool")
                continue
        out.append(c)
        i += 1
    return "".join(out)


def set_operands(expr):
    """The operands of top-level and/or/unless: `a > 1 or b > 2` -> [`a > 1`,
    `b > 2`]; [expr] when there is none."""
    parts, start, i, depth, quote = [], 0, 0, 0, None
    while i < len(expr):
        c = expr[i]
        if quote:
            if c == "\\":
                i += 2
                continue
            if c == quote:
                quote = None
        elif c in "\"'`":
            quote = c
        elif c in "({[":
            depth += 1
        elif c in ")}]":
            depth -= 1
        elif depth == 0:
            m = re.match(r"(and|or|unless)\b", expr[i:])
            if m and (i == 0 or not (expr[i - 1].isalnum() or expr[i - 1] == "_")):
                parts.append(expr[start:i])
                i += m.end()
                mod = re.match(r"\s*(on|ignoring)\s*\([^)]*\)", expr[i:])
                if mod:
                    i += mod.end()
                start = i
                continue
        i += 1
    parts.append(expr[start:])
    return [p.strip() for p in parts if p.strip()]


def dashboard_queries(directory):
    """(where, expr, label) for every panel query and query variable; label
    is the label a label_values() variable needs in the series."""
    out = []
    for f in sorted(os.listdir(directory)):
        if not f.endswith(".json"):
            continue
        with open(os.path.join(directory, f)) as fh:
            d = json.load(fh)
        variables = {}
        for v in d.get("templating", {}).get("list", []):
            if v.get("type") == "query":
                variables[v["name"]] = v.get("allValue") or ".*"
        for v in d.get("templating", {}).get("list", []):
            if v.get("type") != "query":
                continue
            q = v.get("query")
            q = q.get("query") if isinstance(q, dict) else q
            m = LABEL_VALUES.match(q)
            if m:
                out.append((f"{f} variable {v['name']}", substitute(m.group(1), variables),
                            m.group(2)))
            else:
                out.append((f"{f} variable {v['name']}", substitute(q, variables), None))
        panels = list(d.get("panels", []))
        for p in panels:
            panels.extend(p.get("panels", []))  # collapsed rows hold their panels
            for t in p.get("targets", []):
                if t.get("expr"):
                    out.append((f"{f} panel {p.get('title')!r} {t.get('refId')}",
                                substitute(t["expr"], variables), None))
    return out


def loaded_rules(url):
    r = api(url, "/api/v1/rules")
    if r.get("status") != "success":
        raise RuntimeError(f"/api/v1/rules: {r}")
    return [(g["file"], g["name"], rule) for g in r["data"]["groups"] for rule in g["rules"]]


def check(url, directory):
    failures = []
    checks = []  # (where, expr, label)
    for where, expr, label in dashboard_queries(directory):
        checks.append((where, expr, label))

    # Rules: wait until each was evaluated once, then they must be healthy.
    deadline = time.time() + RETRY_S
    rules = loaded_rules(url)
    never = "0001-01-01T00:00:00Z"
    while time.time() < deadline and any(r.get("lastEvaluation", never) == never
                                         or r.get("health") == "unknown"
                                         for _, _, r in rules):
        time.sleep(1)
        rules = loaded_rules(url)
    if not rules:
        failures.append("Prometheus loaded no rules")
    for _, group, rule in rules:
        where = f"rule {group}/{rule['name']}"
        if rule.get("health") != "ok":
            failures.append(f"{where}: health {rule.get('health')}: {rule.get('lastError')}")
        err, _ = query(url, rule["query"])
        if err:
            failures.append(f"{where}: invalid: {err}\n    {rule['query']}")
            continue
        # Each operand of and/or/unless on its own: a misspelt metric in one
        # branch of an `or` must not hide behind the other branch.
        for operand in set_operands(rule["query"]):
            checks.append((where + " (comparisons as bool)", with_bool(operand), None))

    pending = []
    for where, expr, label in checks:
        err, result = query(url, expr)
        if err:
            failures.append(f"{where}: invalid: {err}\n    {expr}")
        else:
            pending.append((where, expr, label))
    deadline = time.time() + RETRY_S
    while pending:
        still = []
        for where, expr, label in pending:
            err, result = query(url, expr)
            ok = not err and result and (label is None
                                         or any(label in s.get("metric", {}) for s in result))
            if not ok:
                still.append((where, expr, label))
        pending = still
        if not pending or time.time() > deadline:
            break
        time.sleep(1)
    for where, expr, label in pending:
        need = f" with label {label}" if label else ""
        failures.append(f"{where}: no series{need}\n    {expr}")

    print(f"{len(checks)} expressions run ({len(rules)} alert rules)")
    for f in failures:
        print("FAIL", f)
    return 1 if failures else 0


def main():
    if len(sys.argv) == 6 and sys.argv[1] == "wait":
        return wait(sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5]))
    if len(sys.argv) == 4 and sys.argv[1] == "check":
        return check(sys.argv[2], sys.argv[3])
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
