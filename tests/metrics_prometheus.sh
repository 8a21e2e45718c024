#!/usr/bin/env bash
# The metrics as an SRE uses them: the demo node serves /metrics, a real
# Prometheus (Debian's) scrapes it every second and loads dashboards/alerts.yml.
# After two scrapes with the enterprise in place, every PromQL expression of
# every dashboard (panels and variables) and every alert rule runs through
# Prometheus's HTTP API; the test fails if one is invalid or returns no series
# (tests/promql_check.py says how alert rules are checked).
# usage: metrics_prometheus.sh TWINRT [PROMETHEUS]
set -euo pipefail
twinrt=$1
prometheus=${2:-prometheus}
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/harness.sh"
dashboards="$here/../dashboards"
py=/usr/bin/python3
[ -x "$py" ] || py=python3

dir=$(mktemp -d)
pids=()
cleanup() {
  if [ ${#pids[@]} -gt 0 ]; then stop_process "${pids[@]}"; fi
  rm -rf "$dir"
}
trap cleanup EXIT

# A port in 20000-59999 that nothing listens on now, on 127.0.0.1 only.
free_port() {
  "$py" - <<'PY'
import random, socket
for _ in range(200):
    port = random.randint(20000, 59999)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    break
PY
}

fail() {
  echo "FAIL: $*"
  for log in "$dir"/*.log; do echo "--- $log"; tail -n 30 "$log"; done
  exit 1
}

# The demo, with its operator API (when it has one) on a free port too; it
# runs until the test ends it.
extra=()
if "$twinrt" demo --help 2>/dev/null | grep -q -- --rpc-address; then
  extra=(--rpc-address 127.0.0.1:0)
fi
metrics_port=$(free_port)
"$twinrt" demo --data-dir "$dir/data" --metrics-address "127.0.0.1:$metrics_port" \
  "${extra[@]}" > "$dir/demo.log" 2>&1 &
pids+=($!)

prom_port=$(free_port)
cat > "$dir/prometheus.yml" <<YML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $dashboards/alerts.yml
scrape_configs:
  - job_name: twinrt
    static_configs:
      - targets: ["127.0.0.1:$metrics_port"]
YML
"$prometheus" --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/tsdb" \
  --web.listen-address="127.0.0.1:$prom_port" --log.level=warn > "$dir/prometheus.log" 2>&1 &
pids+=($!)
url="http://127.0.0.1:$prom_port"

# Two scrapes that saw the enterprise's twins, and a few seconds of telemetry.
"$py" "$here/promql_check.py" wait "$url" 'up{job="twinrt"}' 1 "$patience" \
  || fail "Prometheus never scraped the demo"
"$py" "$here/promql_check.py" wait "$url" \
  'count_over_time(twinrt_asset_health_score{kind="enterprise"}[1m])' 2 "$patience" \
  || fail "no two scrapes with the enterprise's health"
"$py" "$here/promql_check.py" wait "$url" 'twinrt_samples_ingested_total' 1000 "$patience" \
  || fail "the demo ingests nothing"

"$py" "$here/promql_check.py" check "$url" "$dashboards" || fail "dashboard or alert queries"
kill -0 "${pids[0]}" 2>/dev/null || fail "the demo stopped during the test"
echo "metrics through Prometheus: ok"
