#!/usr/bin/env python3
"""Alert lifecycle over real RPC: raised by ingest, acknowledged with twinctl
(who and why recorded, scoped tokens limited to their subtree), held inside the
hysteresis band, cleared, a built-in staleness alert raised and cleared; each
step surviving a SIGKILL of the node.

usage: alerts_lifecycle.py TWINRT TWINCTL"""

import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from node_harness import Node, wait_until  # noqa: E402

SITE = """kind = "site"
version = 1
parents = []
"""

PRESS = """kind = "press"
version = 1
parents = ["site"]

[channels.temperature_c]
unit = "degC"
type = "gauge"
min = 0
max = 500

[[alerts]]
name = "overheat"
value = "temperature_c"
above = 100
clear_at = 90
severity = "critical"
message = "press too hot"
"""

SENSOR = """kind = "sensor"
version = 1
parents = []
stale_after_s = 1

[channels.level]
type = "gauge"
min = 0
max = 10

[[alerts]]
name = "high_level"
value = "level"
above = 8
for_s = 3
"""


def check(cond, msg):
    if not cond:
        print("FAIL: " + msg)
        sys.exit(1)


def sample(twin, channel, value, ts=None):
    s = {"twin": twin, "channel": channel, "value": value}
    if ts is not None:
        s["ts"] = ts
    return s


def main():
    twinrt, twinctl = sys.argv[1], sys.argv[2]
    work = tempfile.mkdtemp(prefix="twinrt-alerts-")
    os.makedirs(os.path.join(work, "models"))
    for name, text in (("site.toml", SITE), ("press.toml", PRESS), ("sensor.toml", SENSOR)):
        with open(os.path.join(work, "models", name), "w") as f:
            f.write(text)
    node = Node(twinrt, twinctl, work, "[twins]\nsweep_interval_ms = 200\n",
                [("ops", "w", "write", ""), ("viewer", "v", "read", ""),
                 ("line-a", "a", "write", "a")])
    node.start()
    try:
        # Scope "a" is the twin a and the twins below it.
        for site in ("a", "b"):
            node.ctl("twin", "create", site, "--kind", "site")
        node.ctl("twin", "create", "a/p1", "--kind", "press", "--parent", "a")
        node.ctl("twin", "create", "b/p2", "--kind", "press", "--parent", "b")
        node.ingest([sample("a/p1", "temperature_c", 120), sample("b/p2", "temperature_c", 130)])

        alerts = node.ctl_json("alerts", "--state", "raised")
        check(len(alerts) == 2, f"two raised alerts expected, got {alerts}")
        by_twin = {a["twin"]: a for a in alerts}
        a1, a2 = by_twin["a/p1"], by_twin["b/p2"]
        check(a1["rule"] == "overheat" and a1["severity"] == "critical"
              and a1["raised_value"] == 120 and a1["message"] == "press too hot",
              f"alert fields: {a1}")

        # Scope: line-a sees and acks only its subtree; a viewer may not ack.
        seen = node.ctl_json("alerts", token="a")
        check([a["twin"] for a in seen] == ["a/p1"], f"scoped token saw {seen}")
        r = node.ctl("alerts", "ack", str(a2["id"]), token="a", check=False)
        check(r.returncode != 0 and f"no alert {a2['id']}" in r.stderr,
              f"scoped ack outside the scope: {r.stderr}")
        r = node.ctl("alerts", "ack", str(a1["id"]), token="v", check=False)
        check(r.returncode != 0 and "may not write" in r.stderr, f"viewer ack: {r.stderr}")
        r = node.ctl("alerts", "ack", "999999", check=False)
        check(r.returncode != 0 and "no alert 999999" in r.stderr, f"unknown alert: {r.stderr}")

        out = node.ctl("alerts", "ack", str(a1["id"]), "--note", "cooling checked", token="a")
        check("acknowledged alert" in out.stdout, out.stdout)

        node.kill()  # SIGKILL: the acknowledgement was durable before twinctl returned
        node.start()
        acked = node.ctl_json("alerts", "--state", "acknowledged")
        check(len(acked) == 1 and acked[0]["id"] == a1["id"] and acked[0]["acked_by"] == "line-a"
              and acked[0]["note"] == "cooling checked", f"after restart: {acked}")

        # Inside the band (90 < v <= 100) nothing changes; at 90 or below it clears.
        node.ingest([sample("a/p1", "temperature_c", 95)])
        check(node.ctl_json("alerts", "a", "--state", "acknowledged")[0]["id"] == a1["id"],
              "an alert inside its clear band must stay")
        node.ingest([sample("a/p1", "temperature_c", 85)])
        cleared = node.ctl_json("alerts", "a", "--state", "cleared")
        check(len(cleared) == 1 and cleared[0]["cleared_value"] == 85
              and cleared[0]["acked_by"] == "line-a", f"cleared: {cleared}")
        r = node.ctl("alerts", "ack", str(a1["id"]), check=False)
        check(r.returncode != 0 and "is cleared" in r.stderr, f"ack of a cleared alert: {r.stderr}")

        node.kill()
        node.start()
        states = {a["id"]: a["state"] for a in node.ctl_json("alerts", "--all")}
        check(states == {a1["id"]: "cleared", a2["id"]: "raised"}, f"after 2nd restart: {states}")

        # A new breach after the restart is a new alert with a new id.
        node.ingest([sample("a/p1", "temperature_c", 150)])
        raised = node.ctl_json("alerts", "a", "--state", "raised")
        check(len(raised) == 1 and raised[0]["id"] not in (a1["id"], a2["id"]),
              f"new alert: {raised}")

        # Built-in staleness: no data for longer than stale_after_s.
        node.ctl("twin", "create", "s1", "--kind", "sensor")
        node.ingest([sample("s1", "level", 3)])
        stale = wait_until(lambda: node.ctl_json("alerts", "s1", "--state", "raised"),
                           "a stale alert on s1")
        check(len(stale) == 1 and stale[0]["rule"] == "stale"
              and stale[0]["value"] == "data_age_s", f"stale alert: {stale}")
        node.ingest([sample("s1", "level", 4)])
        check(node.ctl_json("alerts", "s1", "--state", "cleared")[0]["rule"] == "stale",
              "fresh data clears the stale alert")

        # Deleting a twin clears its open alerts.
        node.ctl("twin", "delete", "b/p2")
        gone = [a for a in node.ctl_json("alerts", "--all") if a["id"] == a2["id"]]
        check(len(gone) == 1 and gone[0]["state"] == "cleared"
              and "twin deleted" in gone[0]["note"], f"alert of a deleted twin: {gone}")

        # A hold time (for_s) ends without new data: the twin raises it by itself,
        # not before the breach has lasted for_s (a slow machine may look later).
        breach_ms = int(time.time() * 1000)
        node.ingest([sample("s1", "level", 9, ts=breach_ms)])
        high = wait_until(lambda: [a for a in node.ctl_json("alerts", "s1", "--state", "raised")
                                   if a["rule"] == "high_level"], "the held alert high_level")
        check(len(high) == 1 and high[0]["raised_value"] == 9, f"held alert: {high}")
        check(high[0]["raised_ms"] - breach_ms >= 3000,
              f"raised {high[0]['raised_ms'] - breach_ms} ms after the breach, before its hold time")

        table = node.ctl("alerts").stdout
        check("ID" in table and "overheat" in table and "stale" in table, table)
        print(table)
    finally:
        node.stop()
    shutil.rmtree(work, ignore_errors=True)  # kept when the test fails
    print("PASS")


if __name__ == "__main__":
    main()
