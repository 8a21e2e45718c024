#!/usr/bin/env python3
"""Writes the Grafana dashboards of dashboards/*.json.

The JSON files are what users import; this script is how they are made, so
that forty panels share one layout, one datasource variable and one style.
Change a panel here, run `python3 dashboards/build_dashboards.py` (or with
`--out DIR` to write elsewhere), and commit both. tests/check_dashboards.py checks what Grafana needs to import them;
tests/metrics_prometheus.sh runs every query against a real Prometheus.
"""

import json
import os
import sys

DS = {"type": "prometheus", "uid": "${datasource}"}
INST = 'instance=~"$instance"'


def steps(*pairs):
    """Threshold steps: steps("green", ("orange", 60), ("red", 90))."""
    out = [{"color": pairs[0], "value": None}]
    for color, value in pairs[1:]:
        out.append({"color": color, "value": value})
    return {"mode": "absolute", "steps": out}


HEALTH = steps("red", ("orange", 60), ("green", 90))      # score: higher is better
OK = steps("green")                                       # informational
STATUS_MAPPINGS = [
    {"type": "value", "options": {
        "ok": {"text": "ok", "color": "green", "index": 0},
        "warning": {"text": "warning", "color": "orange", "index": 1},
        "alarm": {"text": "alarm", "color": "red", "index": 2},
        "stale": {"text": "stale", "color": "purple", "index": 3}}},
]


def target(expr, legend="", instant=False, fmt=None, ref="A"):
    t = {"datasource": DS, "expr": expr, "refId": ref, "legendFormat": legend,
         "range": not instant, "instant": instant, "editorMode": "code"}
    if fmt:
        t["format"] = fmt
    return t


def panel(kind, title, targets, unit, thresholds, w=12, h=8, description="",
          minimum=None, maximum=None, mappings=None, options=None, custom=None,
          transformations=None):
    if isinstance(targets, dict):
        targets = [targets]
    for i, t in enumerate(targets):
        t["refId"] = chr(ord("A") + i)
    defaults = {"unit": unit, "thresholds": thresholds,
                "color": {"mode": "thresholds" if kind in ("stat", "gauge", "bargauge")
                          else "palette-classic"},
                "mappings": mappings or []}
    if minimum is not None:
        defaults["min"] = minimum
    if maximum is not None:
        defaults["max"] = maximum
    if kind == "timeseries":
        defaults["custom"] = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10,
                              "showPoints": "never", "spanNulls": True,
                              "thresholdsStyle": {"mode": "off"}}
    if custom:
        defaults.setdefault("custom", {}).update(custom)
    p = {"type": kind, "title": title, "description": description, "datasource": DS,
         "targets": targets, "fieldConfig": {"defaults": defaults, "overrides": []},
         "options": options or default_options(kind), "_w": w, "_h": h}
    if transformations:
        p["transformations"] = transformations
    return p


def default_options(kind):
    if kind == "timeseries":
        return {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                "tooltip": {"mode": "multi", "sort": "desc"}}
    if kind == "stat":
        return {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                "colorMode": "value", "graphMode": "area", "justifyMode": "auto",
                "orientation": "auto", "textMode": "auto"}
    if kind == "gauge":
        return {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                "showThresholdLabels": False, "showThresholdMarkers": True}
    if kind == "bargauge":
        return {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                "displayMode": "gradient", "orientation": "horizontal",
                "showUnfilled": True}
    if kind == "table":
        return {"showHeader": True, "cellHeight": "sm",
                "footer": {"show": False, "reducer": ["sum"], "fields": ""}}
    return {}


def ts(title, targets, unit, thresholds=OK, **kw):
    return panel("timeseries", title, targets, unit, thresholds, **kw)


def stat(title, targets, unit, thresholds=OK, w=6, h=5, **kw):
    return panel("stat", title, targets, unit, thresholds, w=w, h=h, **kw)


def row(title):
    return {"type": "row", "title": title, "collapsed": False, "panels": []}


def instance_var():
    q = "label_values(twinrt_samples_ingested_total, instance)"
    return query_var("instance", "Node", q)


def query_var(name, label, query, multi=True):
    return {"name": name, "label": label, "type": "query", "datasource": DS,
            "definition": query,
            "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
            "refresh": 2, "regex": "", "sort": 1, "hide": 0,
            "multi": multi, "includeAll": True, "allValue": ".*",
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "options": []}


def datasource_var():
    return {"name": "datasource", "label": "Data source", "type": "datasource",
            "query": "prometheus", "refresh": 1, "regex": "", "hide": 0,
            "multi": False, "includeAll": False, "current": {}, "options": []}


def layout(items):
    """Places panels left to right, wrapping at 24 columns; rows span all."""
    out, x, y, row_h, next_id = [], 0, 0, 0, 1
    for it in items:
        it = dict(it)
        it["id"] = next_id
        next_id += 1
        if it["type"] == "row":
            if x > 0:
                y += row_h
            it["gridPos"] = {"h": 1, "w": 24, "x": 0, "y": y}
            y += 1
            x, row_h = 0, 0
            out.append(it)
            continue
        w, h = it.pop("_w"), it.pop("_h")
        if x + w > 24:
            y += row_h
            x, row_h = 0, 0
        it["gridPos"] = {"h": h, "w": w, "x": x, "y": y}
        x += w
        row_h = max(row_h, h)
        out.append(it)
    return out


def dashboard(uid, title, description, variables, items):
    return {
        "id": None,
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["twinrt"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "refresh": "30s",
        "schemaVersion": 38,
        "version": 1,
        "weekStart": "",
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "annotations": {"list": [{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts", "type": "dashboard"}]},
        "links": [{"title": "twinrt dashboards", "type": "dashboards", "tags": ["twinrt"],
                   "asDropdown": True, "includeVars": True, "keepTime": True,
                   "icon": "external link", "targetBlank": False, "tooltip": "",
                   "url": ""}],
        "templating": {"list": [datasource_var(), instance_var()] + variables},
        "panels": layout(items),
    }


# -- plant overview ---------------------------------------------------------------

def plant_overview():
    plant = 'kind="plant", twin=~"$plant", ' + INST
    lines = 'kind="line", twin=~"($plant)/.*", ' + INST
    items = [
        row("Health"),
        stat("Plant health score",
             target(f"twinrt_asset_health_score{{{plant}}}", "{{twin}}"), "none", HEALTH,
             w=8, minimum=0, maximum=100,
             description="Mean health score (0-100) of the machines of each plant."),
        stat("Machines in alarm",
             target(f'sum(twinrt_asset_twins{{{plant}, status="alarm"}})'), "none",
             steps("green", ("red", 1)), w=4,
             description="Machines whose health rules say alarm."),
        stat("Machines in warning",
             target(f'sum(twinrt_asset_twins{{{plant}, status="warning"}})'), "none",
             steps("green", ("orange", 1)), w=4),
        stat("Machines stale",
             target(f'sum(twinrt_asset_twins{{{plant}, status="stale"}})'), "none",
             steps("green", ("purple", 1)), w=4,
             description="Machines that sent nothing for longer than their model's stale_after."),
        stat("Machines running",
             target(f'sum(twinrt_asset_counted_twins{{{plant}, count="running"}})'), "none",
             OK, w=4),
        panel("bargauge", "Health score by line",
              target(f"sort(twinrt_asset_health_score{{{lines}}})", "{{twin}}", instant=True),
              "none", HEALTH, w=12, h=10, minimum=0, maximum=100,
              description="Lowest first. A line's score is the mean of its machines'."),
        panel("table", "Line status and worst machine",
              [target(f"twinrt_asset_worst_twin_info{{{lines}}}", instant=True, fmt="table"),
               target(f"twinrt_asset_health_score{{{lines}}}", instant=True, fmt="table")],
              "none", HEALTH, w=12, h=10, mappings=STATUS_MAPPINGS,
              description="Per line: its health score and the worst machine on it.",
              transformations=[
                  {"id": "merge", "options": {}},
                  {"id": "organize", "options": {
                      "excludeByName": {"Time": True, "Value #A": True, "kind": True,
                                        "instance": True, "job": True, "__name__": True},
                      "renameByName": {"twin": "line", "worst_twin": "worst machine",
                                       "worst_status": "its status",
                                       "Value #B": "line score"}}},
                  {"id": "sortBy", "options": {"sort": [{"field": "line score"}]}}]),
        ts("Machines by health status",
           target(f"sum by (status) (twinrt_asset_twins{{{plant}}})", "{{status}}"), "none",
           description="Machines of the selected plants in each health status."),
        ts("Lowest line health scores",
           target(f"bottomk(5, twinrt_asset_health_score{{{lines}}})", "{{twin}}"), "none",
           HEALTH, minimum=0, maximum=100),
        row("Energy"),
        ts("Power by plant",
           target(f"twinrt_asset_power_watts{{{plant}}}", "{{twin}}"), "watt",
           description="Power drawn now by everything in each plant."),
        stat("Energy used in the time range",
             target(f"sum by (twin) (increase(twinrt_asset_energy_joules_total{{{plant}}}"
                    f"[$__range])) / 3.6e6", "{{twin}}", instant=True), "kwatth", OK),
        stat("Energy used since start",
             target(f"sum(twinrt_asset_energy_joules_total{{{plant}}}) / 3.6e6"), "kwatth",
             OK),
        panel("bargauge", "Power by line",
              target(f"sort_desc(twinrt_asset_power_watts{{{lines}}})", "{{twin}}",
                     instant=True), "watt", OK, w=12, h=10),
        ts("Average power by line over the rate window",
           target(f"topk(10, rate(twinrt_asset_energy_joules_total{{{lines}}}"
                  f"[$__rate_interval]))", "{{twin}}"), "watt", OK, h=10,
           description="Energy per second, i.e. mean power, of the ten hungriest lines."),
    ]
    return dashboard("twinrt-plant-overview", "twinrt / Plant overview",
                     "Health, worst machines and energy of plants and their lines.",
                     [query_var("plant", "Plant",
                                'label_values(twinrt_asset_health_score{kind="plant", '
                                'instance=~"$instance"}, twin)')],
                     items)


# -- inventory ------------------------------------------------------------------------

def inventory():
    wh = 'kind="warehouse", twin=~"$warehouse", sku=~"$sku", ' + INST
    items = [
        row("Stock"),
        stat("Units in stock",
             target(f"sum(twinrt_asset_stock_units{{{wh}}})"), "none", OK, w=6,
             description="Units of the selected SKUs in the selected warehouses."),
        stat("SKUs held",
             target(f"count(count by (sku) (twinrt_asset_stock_units{{{wh}}}))"), "none",
             OK, w=6),
        stat("Enterprise total (rollup)",
             target('sum(twinrt_asset_stock_units{kind="enterprise", sku=~"$sku", '
                    + INST + "})"), "none", OK, w=6,
             description="The enterprise's rollup of all warehouses: equals the sum of "
                         "the warehouses once ingest stops."),
        stat("Warehouse power",
             target(f'sum(twinrt_asset_power_watts{{kind="warehouse", '
                    f'twin=~"$warehouse", {INST}}})'), "watt", OK, w=6),
        panel("bargauge", "Stock by warehouse",
              target(f"sum by (twin) (twinrt_asset_stock_units{{{wh}}})", "{{twin}}",
                     instant=True), "none", OK, w=12, h=8),
        panel("bargauge", "Lowest stock by SKU",
              target(f"bottomk(10, sum by (sku) (twinrt_asset_stock_units{{{wh}}}))",
                     "{{sku}}", instant=True), "none",
              steps("red", ("orange", 10), ("green", 50)), w=12, h=8,
              description="The ten SKUs with the fewest units over the selected "
                          "warehouses."),
        panel("table", "Stock by warehouse and SKU",
              target(f"sum by (twin, sku) (twinrt_asset_stock_units{{{wh}}})",
                     instant=True, fmt="table"),
              "none", steps("red", ("orange", 10), ("green", 50)), w=12, h=12,
              custom={"cellOptions": {"type": "color-text"}},
              transformations=[
                  {"id": "organize", "options": {
                      "excludeByName": {"Time": True},
                      "renameByName": {"twin": "warehouse", "Value": "units"}}},
                  {"id": "sortBy", "options": {"sort": [{"field": "units"}]}}]),
        ts("Stock over time, top 10 SKUs",
           target(f"topk(10, sum by (sku) (twinrt_asset_stock_units{{{wh}}}))", "{{sku}}"),
           "none", h=12),
        ts("Net stock change per hour by warehouse",
           target(f"sum by (twin) (deriv(twinrt_asset_stock_units{{{wh}}}"
                  f"[$__rate_interval])) * 3600", "{{twin}}"), "none", w=24,
           description="Receipts minus picks, in units per hour."),
    ]
    return dashboard("twinrt-inventory", "twinrt / Inventory",
                     "Stock per warehouse and SKU, from the warehouses' twins.",
                     [query_var("warehouse", "Warehouse",
                                'label_values(twinrt_asset_stock_units{kind="warehouse", '
                                'instance=~"$instance"}, twin)'),
                      query_var("sku", "SKU",
                                'label_values(twinrt_asset_stock_units{kind="warehouse", '
                                'twin=~"$warehouse", instance=~"$instance"}, sku)')],
                     items)


# -- fleet ------------------------------------------------------------------------------

def fleet():
    fl = 'kind="fleet", ' + INST
    dep = 'kind="depot", twin=~"$depot", ' + INST
    items = [
        row("Fleet"),
        stat("Vehicles on the road",
             target(f'sum(twinrt_asset_counted_twins{{{dep}, count="on_road"}})'), "none",
             OK, w=6),
        stat("Vehicles",
             target(f"sum(twinrt_asset_twins{{{dep}}})"), "none", OK, w=6),
        stat("Vehicles in alarm or warning",
             target(f'sum(twinrt_asset_twins{{{dep}, status=~"alarm|warning"}})'), "none",
             steps("green", ("orange", 1), ("red", 5)), w=6,
             description="Vehicles whose battery is low (model rules)."),
        panel("gauge", "Fleet health score",
              target(f"twinrt_asset_health_score{{{fl}}}", "{{twin}}"), "none", HEALTH,
              w=6, h=5, minimum=0, maximum=100),
        ts("Vehicles on the road by depot",
           target(f'twinrt_asset_counted_twins{{{dep}, count="on_road"}}', "{{twin}}"),
           "none"),
        ts("Vehicles by health status",
           target(f"sum by (status) (twinrt_asset_twins{{{dep}}})", "{{status}}"), "none"),
        ts("Power by depot (driving and charging)",
           target(f"twinrt_asset_power_watts{{{dep}}}", "{{twin}}"), "watt"),
        stat("Fleet energy in the time range",
             target(f"sum(increase(twinrt_asset_energy_joules_total{{{fl}}}[$__range])) "
                    f"/ 3.6e6", instant=True), "kwatth", OK, w=6, h=8),
        panel("table", "Worst vehicle per depot",
              target(f"twinrt_asset_worst_twin_info{{{dep}}}", instant=True, fmt="table"),
              "none", OK, w=6, h=8, mappings=STATUS_MAPPINGS,
              transformations=[{"id": "organize", "options": {
                  "excludeByName": {"Time": True, "Value": True, "kind": True,
                                    "instance": True, "job": True, "__name__": True},
                  "renameByName": {"twin": "depot", "worst_twin": "worst vehicle",
                                   "worst_status": "its status"}}}]),
    ]
    return dashboard("twinrt-fleet", "twinrt / Fleet",
                     "Vehicles on the road, their health and the fleet's energy, by depot.",
                     [query_var("depot", "Depot",
                                'label_values(twinrt_asset_health_score{kind="depot", '
                                'instance=~"$instance"}, twin)')],
                     items)


# -- runtime internals ----------------------------------------------------------------

def runtime():
    ri = "[$__rate_interval]"
    ingested = f"sum(rate(twinrt_samples_ingested_total{{{INST}}}{ri}))"
    rejected = f"sum(rate(twinrt_samples_rejected_total{{{INST}}}{ri}))"
    items = [
        row("Ingest"),
        stat("Samples ingested per second", target(ingested), "cps", OK, w=6),
        stat("Rejected share", target(f"{rejected} / ({ingested} + {rejected})"),
             "percentunit", steps("green", ("orange", 0.01), ("red", 0.05)), w=6,
             description="Refused samples over all samples received."),
        stat("Ingest batch latency p99",
             target("histogram_quantile(0.99, sum by (le) (rate("
                    f"twinrt_ingest_batch_duration_seconds_bucket{{{INST}}}{ri})))"),
             "s", steps("green", ("orange", 0.5), ("red", 2)), w=6),
        stat("Batches in flight",
             target(f"sum(twinrt_ingest_inflight_batches{{{INST}}})"), "none",
             steps("green", ("orange", 12), ("red", 16)), w=6,
             description="Between the ingest gate and the acknowledgement; at "
                         "max_inflight_batches (16 by default) senders are told to back off."),
        ts("Samples ingested per second by node",
           target(f"sum by (instance) (rate(twinrt_samples_ingested_total{{{INST}}}{ri}))",
                  "{{instance}}"), "cps"),
        ts("Samples rejected per second by reason",
           target(f"sum by (reason) (rate(twinrt_samples_rejected_total{{{INST}}}{ri}))",
                  "{{reason}}"), "cps"),
        ts("Ingest batch latency",
           [target("histogram_quantile(0.5, sum by (le) (rate("
                   f"twinrt_ingest_batch_duration_seconds_bucket{{{INST}}}{ri})))", "p50"),
            target("histogram_quantile(0.99, sum by (le) (rate("
                   f"twinrt_ingest_batch_duration_seconds_bucket{{{INST}}}{ri})))", "p99")],
           "s", steps("green", ("red", 2))),
        ts("Overloaded refusals per second",
           target(f"sum by (instance) (rate(twinrt_ingest_overloaded_total{{{INST}}}{ri}))",
                  "{{instance}}"), "cps", steps("green", ("red", 1))),
        row("Rollups"),
        ts("Rollup lag p99 by parent kind",
           target("histogram_quantile(0.99, sum by (kind, le) (rate("
                  f"twinrt_rollup_lag_seconds_bucket{{{INST}}}{ri})))", "{{kind}}"),
           "s", steps("green", ("orange", 1), ("red", 5)),
           description="Time from a sample's timestamp to the update of its parent, "
                       "grandparent..."),
        ts("Rollup lag p50 by parent kind",
           target("histogram_quantile(0.5, sum by (kind, le) (rate("
                  f"twinrt_rollup_lag_seconds_bucket{{{INST}}}{ri})))", "{{kind}}"),
           "s", steps("green", ("orange", 1), ("red", 5))),
        row("Twins and actors"),
        ts("Twins in memory by kind",
           target(f"sum by (kind) (twinrt_twins_active{{{INST}}})", "{{kind}}"), "none",
           w=8),
        ts("Twins passivated by kind",
           target(f"sum by (kind) (twinrt_twins_passivated{{{INST}}})", "{{kind}}"), "none",
           w=8),
        ts("Activations and passivations per second",
           [target(f"sum(rate(twinrt_twin_activations_total{{{INST}}}{ri}))", "activations"),
            target(f"sum(rate(twinrt_twin_passivations_total{{{INST}}}{ri}))",
                   "passivations")], "cps", w=8),
        ts("Shard queued batches",
           target(f"twinrt_shard_queued_batches{{{INST}}}", "{{instance}} shard {{shard}}"),
           "none", steps("green", ("orange", 8)), w=8),
        ts("Shard mailbox messages",
           target(f"twinrt_shard_mailbox_messages{{{INST}}}", "{{instance}} shard {{shard}}"),
           "none", steps("green", ("orange", 10000)), w=8),
        ts("Twins in memory by shard",
           target(f"twinrt_shard_active_twins{{{INST}}}", "{{instance}} shard {{shard}}"),
           "none", w=8),
        row("RocksDB"),
        stat("Writes stopped",
             target(f"max(twinrt_rocksdb_write_stopped{{{INST}}})"), "none",
             steps("green", ("red", 1)), w=6,
             mappings=[{"type": "value", "options": {
                 "0": {"text": "no", "color": "green", "index": 0},
                 "1": {"text": "STOPPED", "color": "red", "index": 1}}}]),
        stat("Delayed write rate",
             target(f"max(twinrt_rocksdb_delayed_write_rate_bytes_per_second{{{INST}}})"),
             "Bps", steps("green", ("orange", 1)), w=6,
             description="0 unless RocksDB is slowing writes down."),
        stat("Pending compaction",
             target(f"sum(twinrt_rocksdb_pending_compaction_bytes{{{INST}}})"), "bytes",
             steps("green", ("orange", 16 << 30), ("red", 64 << 30)), w=6),
        stat("Live SST files",
             target(f"sum(twinrt_rocksdb_live_sst_files_bytes{{{INST}}})"), "bytes", OK, w=6),
        ts("Write stalls per second by cause",
           target(f"sum by (cause) (rate(twinrt_rocksdb_write_stalls_total{{{INST}}}{ri}))",
                  "{{cause}}"), "cps", steps("green", ("red", 0.01)), w=8),
        ts("Time stalled",
           target(f"sum by (instance) (rate(twinrt_rocksdb_write_stall_seconds_total"
                  f"{{{INST}}}{ri}))", "{{instance}}"), "percentunit",
           steps("green", ("red", 0.01)), w=8,
           description="Seconds writers were stalled per second."),
        ts("WAL syncs and commit groups per second",
           [target(f"sum(rate(twinrt_rocksdb_wal_syncs_total{{{INST}}}{ri}))", "WAL syncs"),
            target(f"sum(rate(twinrt_storage_commit_groups_total{{{INST}}}{ri}))",
                   "commit groups")], "cps", w=8),
        ts("Pending compaction and memtables",
           [target(f"sum(twinrt_rocksdb_pending_compaction_bytes{{{INST}}})",
                   "pending compaction"),
            target(f"sum(twinrt_rocksdb_memtable_bytes{{{INST}}})", "memtables"),
            target(f"sum(twinrt_rocksdb_live_sst_files_bytes{{{INST}}})", "live SST")],
           "bytes"),
        ts("Running compactions",
           target(f"sum by (instance) (twinrt_rocksdb_running_compactions{{{INST}}})",
                  "{{instance}}"), "none"),
        row("Alerts and events"),
        ts("Open alerts by severity",
           target(f"sum by (severity) (twinrt_alerts_active{{{INST}}})", "{{severity}}"),
           "none", w=12,
           description="Alerts raised or acknowledged and not yet cleared (twinctl alerts)."),
        ts("Events per second",
           target(f"sum by (instance) (rate(twinrt_events_total{{{INST}}}{ri}))", "{{instance}}"),
           "cps", w=12,
           description="Alerts raised, acknowledged, cleared and health changes written to the "
                       "event log; per sink: twinrt_events_routed_total, "
                       "twinrt_event_sink_lag_events."),
        row("Metrics"),
        ts("Asset series per scrape",
           target(f"twinrt_asset_series{{{INST}}}", "{{instance}}"), "none"),
        ts("Asset series dropped per second by the cap",
           target(f"rate(twinrt_asset_series_dropped_total{{{INST}}}{ri})", "{{instance}}"),
           "cps", steps("green", ("orange", 0.001)),
           description="Non-zero: raise [metrics] max_asset_series or export fewer kinds."),
    ]
    return dashboard("twinrt-runtime", "twinrt / Runtime internals",
                     "Ingest, rejections, rollup lag, twins and shard actors, RocksDB.",
                     [], items)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    if len(sys.argv) == 3 and sys.argv[1] == "--out":
        here = sys.argv[2]
    for name, d in [("plant-overview", plant_overview()), ("inventory", inventory()),
                    ("fleet", fleet()), ("runtime", runtime())]:
        with open(os.path.join(here, name + ".json"), "w") as f:
            json.dump(d, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
