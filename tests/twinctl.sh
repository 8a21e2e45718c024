#!/usr/bin/env bash
# twinctl as an operator uses it (issue 3): against the demo node over
# loopback RPC, every command with its table and --json output, and the errors
# that must name what was wrong and exit non-zero.
#   usage: twinctl.sh TWINRT TWINCTL
set -uo pipefail
twinrt=$1
twinctl=$2
source "$(dirname "$0")/harness.sh"
dir=$(mktemp -d)
demo_pid=""
cleanup() {
  if [ -n "$demo_pid" ]; then stop_process "$demo_pid"; fi
  rm -rf "$dir"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*"
  echo "--- stdout of the last command"; cat "$dir/out" 2>/dev/null
  echo "--- stderr of the last command"; cat "$dir/err" 2>/dev/null
  echo "--- demo log (tail)"; tail -n 5 "$dir/demo.log" 2>/dev/null
  exit 1
}
# run ARGS...: twinctl against the demo; stdout in $dir/out, stderr in $dir/err.
run() { "$twinctl" --address "$addr" "$@" > "$dir/out" 2> "$dir/err"; }
# ok ARGS...: run, and fail unless it exits 0.
ok() { run "$@" || fail "twinctl $* exited $?"; }
# refused MESSAGE ARGS...: run, and fail unless it exits non-zero saying MESSAGE.
refused() {
  local message=$1
  shift
  if run "$@"; then fail "twinctl $* succeeded; expected: $message"; fi
  grep -qF -- "$message" "$dir/err" || fail "twinctl $* did not say: $message"
}
# has FILE TEXT: FILE (out or err) contains TEXT.
has() { grep -qF -- "$2" "$dir/$1" || fail "no '$2' in the $1 of the last command"; }
# json PYTHON: the last stdout parses as JSON (bound to d) and PYTHON holds.
json() {
  python3 -c "import json,sys; d=json.load(sys.stdin); $1" < "$dir/out" \
    || fail "JSON check failed: $1"
}

# -- the demo, on a port the system picks (only 127.0.0.1), until this test ends it --
"$twinrt" demo --data-dir "$dir/data" --rpc-address 127.0.0.1:0 > "$dir/demo.log" 2>&1 &
demo_pid=$!
# in_log TEXT: the demo wrote TEXT; fails the test if the demo exited without it.
in_log() {
  grep -qF -- "$1" "$dir/demo.log" && return 0
  alive "$demo_pid" || fail "the demo exited before it wrote '$1'"
  return 1
}
# The demo opens its API once the simulated history is built: minutes under the
# sanitizers on a loaded machine. in_log ends the wait at once if the demo exits.
wait_for $((5 * patience)) in_log "operator API on 127.0.0.1:" || fail "the demo never served RPC"
addr=$(sed -n 's/^twinrt demo: operator API on \([0-9.:]*\);.*/\1/p' "$dir/demo.log")
[ -n "$addr" ] || fail "no address in the demo's log"
grep -q "created 137 twins" "$dir/demo.log" || fail "the demo did not create its enterprise"
# A new demo first simulates the last hours at high speed: minutes under the
# sanitizers on a busy machine.
wait_for $((5 * patience)) in_log "now running in real time" \
  || fail "the demo did not finish its history"
export TWINRT_TOKEN=demo-viewer
# Telemetry has reached the machines and their lines.
line_has_power() { run get acme/plant-1/line-2 && grep -qE '^power_kw ' "$dir/out"; }
wait_for $patience line_has_power || fail "no power_kw rollup on acme/plant-1/line-2"
started=$(date +%s)

line=acme/plant-1/line-2
machine=$line/machine-07

# -- get --------------------------------------------------------------------------
ok get "$line"
has out "$line  (line, model v2)"
has out "parent    acme/plant-1"
has out "children  10"
has out "health    "
has out "rollup: ok "
grep -qE '^power_kw +[0-9.]+$' "$dir/out" || fail "the line shows no power_kw rollup"
ok get "$machine"
has out "children  0"
grep -qE '^vibration_mm_s +[0-9.e+-]+ +mm/s +[0-9]+s$' "$dir/out" \
  || fail "no vibration_mm_s row with value, unit and age"
grep -qE '^temperature_c +[0-9.e+-]+ +degC ' "$dir/out" || fail "no temperature_c row in degC"
ok --json get "$line"
json "assert d['id'] == '$line' and d['kind'] == 'line' and d['parent'] == 'acme/plant-1'
assert d['children'] == 10 and d['health'] in ('ok', 'warning', 'alarm', 'stale')
assert d['rollup']['sums']['power_kw'] > 0
r = d['rollup']; assert r['ok'] + r['warning'] + r['alarm'] + r['stale'] == 10"
ok --json get "$machine"
json "c = d['channels']['vibration_mm_s']; assert c['unit'] == 'mm/s' and c['timestamp_ms'] > 0"

# -- ls / query ---------------------------------------------------------------------
ok ls acme/plant-1 --kind machine --limit 15
has out "ID"
has out "KIND"
[ "$(grep -c ' machine ' "$dir/out")" -eq 15 ] || fail "--limit 15 did not show 15 machines"
has out "(15 of 40) next page: --page i:acme/plant-1/line-2/machine-05"
ok ls acme/plant-1 --kind machine --limit 15 --page i:acme/plant-1/line-3/machine-10
[ "$(grep -c ' machine ' "$dir/out")" -eq 10 ] || fail "the last page did not hold the last 10"
has out "(10 of 40)"
grep -q "next page" "$dir/out" && fail "the last page offers a next page"

# Paging: every twin of the enterprise exactly once, pages of 7.
: > "$dir/paged"
page=""
for _ in $(seq 1 40); do
  if [ -z "$page" ]; then ok --json ls --limit 7; else ok --json ls --limit 7 --page "$page"; fi
  python3 -c "import json,sys; d=json.load(sys.stdin); assert len(d['twins']) <= 7
print('\n'.join(t['id'] for t in d['twins']))" < "$dir/out" >> "$dir/paged" || fail "bad page"
  page=$(python3 -c "import json,sys; print(json.load(sys.stdin)['next_page'])" < "$dir/out")
  [ -z "$page" ] && break
done
[ -z "$page" ] || fail "paging never ended"
[ "$(wc -l < "$dir/paged")" -eq 137 ] || fail "paging saw $(wc -l < "$dir/paged") twins, not 137"
[ -z "$(sort "$dir/paged" | uniq -d)" ] || fail "paging showed a twin twice: $(sort "$dir/paged" | uniq -d)"

ok --json query --kind warehouse
json "assert sorted(t['id'] for t in d['twins']) == ['acme/warehouse-1', 'acme/warehouse-2', 'acme/warehouse-3']"
ok --json query acme/plant-2 --where 'vibration_mm_s >= 0' --sort vibration_mm_s --desc
json "v = [t['channels']['vibration_mm_s']['value'] for t in d['twins']]
assert len(v) == 40 and d['total'] == 40, len(v)
assert all(t['id'].startswith('acme/plant-2/') for t in d['twins'])
assert v == sorted(v, reverse=True), v"
ok query acme/plant-2 --where 'vibration_mm_s >= 0' --sort vibration_mm_s --desc --limit 3
has out "vibration_mm_s"
has out "(3 of 40) next page: --page v:"
page=$(sed -n 's/.*next page: --page //p' "$dir/out")
ok query acme/plant-2 --where 'vibration_mm_s >= 0' --sort vibration_mm_s --desc --limit 3 --page "$page"
has out "(3 of 40) next page: --page v:"
ok --json query --where 'vibration_mm_s > 1.2 and temperature_c > 0'
json "assert d['twins'], 'no machine over 1.2 mm/s'
assert all(t['channels']['vibration_mm_s']['value'] > 1.2 for t in d['twins'])"
ok --json query --kind line --health ok --health warning
json "assert all(t['kind'] == 'line' and t['health'] in ('ok', 'warning') for t in d['twins'])"
refused "bad predicate 'vibration_mm_s >'" query --where 'vibration_mm_s >'
refused "page size 5000 is over the limit of 1000" ls --limit 5000
refused "bad page token 'x1'" ls --page x1
refused "unknown health 'sick'" query --health sick

# -- history ------------------------------------------------------------------------
ok history "$machine" vibration_mm_s --since 2h
has out "TIME"
[ "$(wc -l < "$dir/out")" -gt 5 ] || fail "no raw history of $machine"
ok --json history "$machine" vibration_mm_s --since 2h --step 1m
json "assert d and all(p['count'] >= 1 and p['min'] <= p['value'] <= p['max'] and p['min'] <= p['last'] <= p['max'] for p in d)"
ok history "$machine" vibration_mm_s --since 2h --step 1m
has out "MIN"
has out "MEAN"
has out "LAST"
refused "unknown channel colour" history "$machine" colour
refused "no twin acme/plant-9/line-1" history acme/plant-9/line-1 power_kw
refused "bad duration 'soon'" history "$machine" vibration_mm_s --since soon

# -- twin create / reparent / delete, ingest ------------------------------------------
press=$line/press-7
refused "permission denied: token 'demo-viewer' may not write" \
  twin create "$press" --kind machine --parent "$line"
ok --token demo-writer twin create "$press" --kind machine --parent "$line"
has out "created $press"
ok --json get "$line"
json "assert d['children'] == 11"
refused "twin $press already exists" --token demo-writer twin create "$press" --kind machine --parent "$line"

# Known samples for the new press, half an hour ago: JSON lines, then CSV.
t0=$(( $(date +%s) * 1000 - 1800000 ))
cat > "$dir/samples.jsonl" <<EOF
{"twin": "$press", "channel": "temperature_c", "ts": $t0, "value": 61}
{"twin": "$press", "channel": "temperature_c", "ts": $((t0 + 1000)), "value": 64}
EOF
cat > "$dir/samples.csv" <<EOF
twin,channel,ts,value
$press,temperature_c,$((t0 + 2000)),62
$press,temperature_c,$((t0 + 3000)),63
$press,temperature_c,$((t0 + 4000)),999
EOF
refused "permission denied: token 'demo-viewer' may not write" ingest "$dir/samples.jsonl"
ok --token demo-writer ingest "$dir/samples.jsonl"
has out "2 accepted, 0 rejected"
if run --token demo-writer ingest "$dir/samples.csv"; then fail "a refused sample exited 0"; fi
has out "2 accepted, 1 rejected"
has err "rejected (out_of_range): sample 2 for $press.temperature_c"
echo "{\"twin\": \"$press\", \"channel\": \"temperature_c\", \"ts\": $((t0 + 5000)), \"value\": 60}" \
  > "$dir/one.jsonl"
ok --json --token demo-writer ingest "$dir/one.jsonl"
json "assert d['accepted'] == 1 and d['rejected'] == []"
ok --json history "$press" temperature_c --since 2h
json "assert [(p['timestamp_ms'] - $t0, p['value']) for p in d] == [(0, 61), (1000, 64), (2000, 62), (3000, 63), (5000, 60)], d"
ok --json history "$press" temperature_c --since 2h --step 2h
json "assert len(d) == 1, d
p = d[0]
assert (p['min'], p['max'], p['last'], p['count']) == (60, 64, 60, 5), p
assert abs(p['value'] - 62) < 1e-9, p"

ok --token demo-writer twin reparent "$press" acme/plant-2/line-1
has out "moved $press under acme/plant-2/line-1"
ok --json get "$press"
json "assert d['parent'] == 'acme/plant-2/line-1'"
ok --json get "$line"
json "assert d['children'] == 10"
ok --json get acme/plant-2/line-1
json "assert d['children'] == 11"
refused "permission denied: token 'demo-viewer' may not write" twin delete "$press"
ok --token demo-writer twin delete "$press"
has out "deleted $press"
refused "no twin $press" get "$press"
refused "has 10 children" --token demo-writer twin delete "$line"

# -- audit: every change above, who made it, from where, refusals too ---------------
refused "permission denied: token 'demo-viewer' may not read the audit trail" audit
ok --json --token demo-admin audit --since 1h
json "press = '$press'
mine = [e for e in d if e['target'] == press]
acts = [(e['action'], e['token'], e['outcome']) for e in mine]
assert ('twin.create', 'demo-writer', 'ok') in acts, acts
assert ('twin.create', 'demo-viewer', \"permission denied: token 'demo-viewer' may not write\") in acts, acts
assert ('twin.reparent', 'demo-writer', 'ok') in acts, acts
assert ('twin.delete', 'demo-writer', 'ok') in acts, acts
assert any(e['detail'] == 'parent acme/plant-2/line-1' for e in mine), mine
assert any(a == 'twin.create' and 'already exists' in o for a, _, o in acts), acts
ing = [e for e in mine if e['action'] == 'ingest' and e['token'] == 'demo-writer']
assert any(e['detail'] == '3 samples: accepted 2, rejected 1' for e in ing), ing
assert all(e['peer'] == '127.0.0.1' for e in d), set(e['peer'] for e in d)
assert [e['seq'] for e in d] == sorted(e['seq'] for e in d), 'oldest first'"
ok --json --token demo-admin audit --since 1h --token demo-viewer
json "assert d and all(e['token'] == 'demo-viewer' for e in d), d"
ok --token demo-admin audit --since 1h --limit 2
[ "$(grep -c 'demo-' "$dir/out")" -eq 2 ] || fail "audit --limit 2 printed $(grep -c 'demo-' "$dir/out") entries"
has out "OUTCOME"

# -- watch --------------------------------------------------------------------------
ok watch acme/plant-1 --count 3
[ "$(wc -l < "$dir/out")" -eq 3 ] || fail "--count 3 printed $(wc -l < "$dir/out") changes"
grep -v ' acme/plant-1' "$dir/out" && fail "watch acme/plant-1 showed a twin outside it"
has err "changes delivered"
ok --json watch "$line" --count 3
[ "$(wc -l < "$dir/out")" -eq 3 ] || fail "--json --count 3 printed $(wc -l < "$dir/out") changes"
python3 -c "import json,sys
for l in sys.stdin:
    t = json.loads(l)
    assert t['id'] == '$line' or t['id'].startswith('$line/'), t['id']
    assert 'coalesced' in t" < "$dir/out" || fail "watch --json lines"
# --seconds ends a watch by itself (how many changes it sees depends on the machine).
ok watch "$line" --seconds 1
has err "changes delivered"
refused "no twin acme/plant-9" watch acme/plant-9 --seconds 1

# -- models -------------------------------------------------------------------------
ok models
grep -qE '^machine +2 +parts_total,power_kw,state,temperature_c,vibration_mm_s$' "$dir/out" \
  || fail "models does not list machine v2 with its channels"
ok --json models
json "m = {x['kind']: x for x in d}
assert {'enterprise', 'plant', 'line', 'machine', 'warehouse'} <= set(m)
assert m['machine']['version'] == 2 and 'vibration_mm_s' in m['machine']['channels']"

# -- errors and access --------------------------------------------------------------
refused "no twin acme/plant-9" get acme/plant-9
refused "permission denied: no token given" --token "" get acme
refused "permission denied: unknown token" --token demo-viewr get acme
refused "no twin acme/plant-2" --token plant-1-viewer get acme/plant-2
refused "no twin acme/plant-2" --token plant-1-viewer watch acme/plant-2 --seconds 1
refused "no twin acme/plant-2/line-1/machine-01" --token plant-1-viewer \
  history acme/plant-2/line-1/machine-01 power_kw
ok --json --token plant-1-viewer ls --limit 1000
json "ids = [t['id'] for t in d['twins']]
assert len(ids) == 45 and all(i == 'acme/plant-1' or i.startswith('acme/plant-1/') for i in ids), ids"
# Listing an ancestor (the enterprise) narrows to the token's subtree.
ok --json --token plant-1-viewer ls acme --limit 1000
json "assert len(d['twins']) == 45 and d['total'] == 45, d['total']"
refused "permission denied: token 'plant-1-viewer' may not write" --token plant-1-viewer \
  ingest "$dir/samples.jsonl"
# A malformed sample file names the file and line.
printf 'twin,channel,ts,value\nacme,power_kw,yesterday,1\n' > "$dir/bad.csv"
if run --token demo-writer ingest "$dir/bad.csv"; then fail "a malformed file was accepted"; fi
has err "bad.csv:2"

# -- analytics: the demo's simulated history has an answer for each question ---------
ok query --kind machine --where 'rul_hours < 72' --sort rul_hours
grep -qE '^acme/plant-1/line-1/machine-03 +machine +[a-z]+ +[0-9]+ +[0-9.]+' "$dir/out" \
  || fail "the wearing machine-03 is not among the machines failing within 72 h"
ok --json query --kind machine --where 'rul_hours < 72' --sort rul_hours
json "r = [t['derived']['rul_hours'] for t in d['twins']]
assert r == sorted(r) and all(x < 72 for x in r), r"
ok query --kind line --where 'throughput_deviation_pct < -25'
has out "acme/plant-2/line-3"
has out "throughput_deviation_pct"
ok query --kind line --where 'energy_waste_pct > 25'
has out "acme/plant-1/line-2"
ok get acme/plant-1/line-2
has out "warning: energy waste"
ok query --kind warehouse --where 'low_stock_skus > 0'
has out "acme/warehouse-2"
ok get acme/warehouse-2
has out "warning: low stock: SKU-0007 has"

# The node kept serving through all of it.
ok get acme
kill -0 "$demo_pid" 2>/dev/null || fail "the demo is gone"
echo "twinctl: ok ($(( $(date +%s) - started )) s against the demo)"
