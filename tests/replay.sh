#!/usr/bin/env bash
# twinrt replay against a real node over loopback RPC: a generated file of two
# days old samples (with bad lines and refused samples in it) is replayed,
# the replay is killed with SIGKILL part-way and resumed; afterwards every
# line is in the history exactly once, the rollups and stock are exact, the
# newer live value of a channel was not replaced by the backfill, a second
# run changes nothing, --speed spaces samples by their timestamps, and a node
# killed and restarted mid-replay loses and repeats nothing.
#   usage: replay.sh TWINRT TWINCTL
set -uo pipefail
twinrt=$1
twinctl=$2
source "$(dirname "$0")/harness.sh"
dir=$(mktemp -d)
node_pid=""
replay_pid=""
cleanup() {
  stop_process $replay_pid $node_pid
  rm -rf "$dir"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*"
  echo "--- stdout of the last command"; tail -n 20 "$dir/out" 2>/dev/null
  echo "--- stderr of the last command"; tail -n 20 "$dir/err" 2>/dev/null
  echo "--- node log (tail)"; tail -n 5 "$dir/node.log" 2>/dev/null
  exit 1
}
ctl() { "$twinctl" --address "$addr" --token writer "$@" > "$dir/out" 2> "$dir/err"; }
ok() { ctl "$@" || fail "twinctl $* exited $?"; }
json() {
  python3 -c "import json,sys; d=json.load(sys.stdin); $1" < "$dir/out" \
    || fail "JSON check failed: $1"
}

# -- a node with RPC on a free loopback port ------------------------------------
cat > "$dir/node.toml" <<EOF
[node]
data_dir = "$dir/data"
[rpc]
address = "127.0.0.1:0"
[[rpc.tokens]]
name = "writer"
secret = "writer"
role = "write"
[[rpc.tokens]]
name = "viewer"
secret = "viewer"
role = "read"
EOF
"$twinrt" node --config "$dir/node.toml" > "$dir/node.log" 2>&1 &
node_pid=$!
serving() {
  grep -q '^twinrt node: operator API on ' "$dir/node.log" && return 0
  alive "$node_pid" || fail "the node exited"
  return 1
}
wait_for $patience serving || fail "the node never served RPC"
addr=$(sed -n 's/^twinrt node: operator API on //p' "$dir/node.log")

line=acme/plant-1/line-1
ok twin create acme --kind enterprise
ok twin create acme/plant-1 --kind plant --parent acme
ok twin create $line --kind line --parent acme/plant-1
for m in 01 02 03 04 05 06 07 08; do ok twin create $line/m$m --kind machine --parent $line; done
ok twin create acme/wh-1 --kind warehouse --parent acme

# A live value of m01's temperature, newer than anything in the file.
now=$(( $(date +%s) * 1000 ))
echo "$line/m01,temperature_c,$((now - 1000)),50.5" > "$dir/live.csv"
ok ingest "$dir/live.csv"

# -- the file: CSV and JSON lines, two days old ----------------------------------
python3 - "$dir" "$line" "$now" <<'EOF'
import json, random, sys
d, line, now = sys.argv[1], sys.argv[2], int(sys.argv[3])
t0 = now - 2 * 86400 * 1000
rnd = random.Random(7)
out = ["twin,channel,ts,value", "# generated for the replay test"]
expected = {}      # (twin, channel) -> [(ts, value)]
bad, refused = [], []
stock = {}
for step in range(3000):
    ts = t0 + step * 1000
    for m in range(1, 9):
        twin = f"{line}/m{m:02d}"
        for ch, v in (("power_kw", round(rnd.uniform(5, 50), 3)),
                      ("temperature_c", round(rnd.uniform(20, 80), 2)),
                      ("state", rnd.choice([0, 1, 1, 2])),
                      ("parts_total", step * 3 + m)):
            if ch in ("state", "parts_total"):
                v = int(v)
            if rnd.random() < 0.5:
                out.append(json.dumps({"twin": twin, "channel": ch, "ts": ts, "value": v}))
            else:
                out.append(f"{twin},{ch},{ts},{v}")
            expected.setdefault((twin, ch), []).append((ts, float(v)))
    if step % 5 == 0:
        sku = f"SKU-{step % 3}"
        ch, n = ("receipt", rnd.randint(1, 50)) if rnd.random() < 0.6 else ("pick", rnd.randint(1, 10))
        out.append(f"acme/wh-1,{ch}/{sku},{ts},{n}")
        stock[sku] = stock.get(sku, 0) + (n if ch == "receipt" else -n)
        expected.setdefault(("acme/wh-1", f"{ch}/{sku}"), []).append((ts, float(n)))
    if step % 700 == 350:
        out.append(f"{line}/m01,temperature_c,{ts},hot")
        bad.append(len(out))
        out.append('{"twin": "%s/m02", "channel": "power_kw", "value": }' % line)
        bad.append(len(out))
    if step % 900 == 450:
        out.append(f"{line}/m03,vibration_mm_s,{ts},250")
        refused.append(len(out))
with open(f"{d}/history.csv", "w") as f:
    f.write("\n".join(out) + "\n")
# Energy per machine: the model integrates power over time (gaps <= 5 min).
energy = {}
for (twin, ch), pts in expected.items():
    if ch == "power_kw":
        e = 0.0
        for (ta, va), (tb, _) in zip(pts, pts[1:]):
            e += va * (tb - ta) / 3600000.0
        energy[twin] = e
running = sum(1 for (twin, ch), pts in expected.items() if ch == "state" and pts[-1][1] == 1)
json.dump({"expected": [[t, c, p] for (t, c), p in expected.items()], "bad": bad,
           "refused": refused, "stock": stock, "energy": energy, "running": running,
           "lines": len(out), "samples": sum(len(p) for p in expected.values())},
          open(f"{d}/expected.json", "w"))
EOF
[ -s "$dir/history.csv" ] || fail "no generated file"
lines=$(wc -l < "$dir/history.csv")
samples=$(python3 -c "import json; print(json.load(open('$dir/expected.json'))['samples'])")

# -- replay, killed part-way ------------------------------------------------------
export TWINRT_TOKEN=writer
# state_line FILE: the last line a replay of FILE has recorded as done (0: none yet).
state_line() {
  local n
  n=$(grep -o '"line":[0-9]*' "$1.replay-state" 2>/dev/null | cut -d: -f2)
  echo "${n:-0}"
}
# past LINE FILE: the replay of FILE recorded a line after LINE, or has ended.
past() { [ "$(state_line "$2")" -gt "$1" ] || gone "$replay_pid"; }
# 3000 s of timestamps at 500 times real time: at least 6 s, however fast the
# machine; it is killed a third of the way in.
"$twinrt" replay "$dir/history.csv" --connect "$addr" --speed 500 --batch 300 --inflight 3 \
  > "$dir/replay1.out" 2> "$dir/replay1.err" &
replay_pid=$!
wait_for $((5 * patience)) past $((lines / 3)) "$dir/history.csv"
killed=0
alive "$replay_pid" && kill -9 "$replay_pid" && killed=1
done_lines=$(state_line "$dir/history.csv")
wait "$replay_pid" 2>/dev/null
replay_pid=""
[ "$killed" = 1 ] || fail "the replay ended before it could be killed part-way"
grep -q '"complete":false' "$dir/history.csv.replay-state" || fail "the state says complete after a kill"
echo "killed the replay after line $done_lines of $lines"

# -- resumed to the end ----------------------------------------------------------
"$twinrt" replay "$dir/history.csv" --connect "$addr" > "$dir/out" 2> "$dir/err"
rc=$?
rate=$(grep -o '([0-9]* samples/s)' "$dir/out")
[ "$rc" = 1 ] || fail "a replay with bad lines exited $rc, not 1"
grep -q "continuing $dir/history.csv after line" "$dir/err" || fail "the second run did not continue"
grep -q "complete after line $lines;" "$dir/out" || fail "the replay did not reach line $lines"
python3 - "$dir" <<'EOF' || fail "summary or bad-line report"
import json, re, sys
d = sys.argv[1]
e = json.load(open(f"{d}/expected.json"))
out = open(f"{d}/out").read()
err = open(f"{d}/err").read() + open(f"{d}/replay1.err").read()
m = re.search(r"(\d+) accepted, (\d+) already applied, (\d+) rejected, (\d+) bad lines", out)
acc, dup, rej, bad = map(int, m.groups())
assert bad == len(e["bad"]), (bad, e["bad"])
assert rej == len(e["refused"]), (rej, e["refused"])
assert acc + dup == e["samples"], (acc, dup, e["samples"])
for n in e["bad"]:
    assert f"history.csv:{n}: " in err, f"bad line {n} not reported"
for n in e["refused"]:
    assert f"history.csv:{n}: rejected (out_of_range)" in err, f"refused line {n} not reported"
EOF

# -- the history holds every line exactly once -----------------------------------
python3 - "$dir" "$twinctl" "$addr" <<'EOF' || fail "history differs from the file"
import json, subprocess, sys
d, twinctl, addr = sys.argv[1:]
e = json.load(open(f"{d}/expected.json"))
for twin, ch, pts in e["expected"]:
    r = subprocess.run([twinctl, "--address", addr, "--token", "viewer", "--json", "history", twin, ch,
                        "--since", "3d", "--until", "1d", "--limit", "100000"],
                       capture_output=True, text=True, check=True)
    got = [(p["timestamp_ms"], p["value"]) for p in json.loads(r.stdout)]
    want = [tuple(p) for p in pts]
    assert got == want, f"{twin}.{ch}: {len(got)} points, expected {len(want)}; first difference at " \
        + str(next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want))))
EOF

# -- rollups, stock and the newer live value ---------------------------------------
python3 - "$dir" "$twinctl" "$addr" "$line" "$patience" <<'EOF' || fail "rollups after the replay"
import json, subprocess, sys, time
d, twinctl, addr, line, patience = sys.argv[1:]
e = json.load(open(f"{d}/expected.json"))
def get(twin):
    r = subprocess.run([twinctl, "--address", addr, "--token", "viewer", "--json", "get", twin],
                       capture_output=True, text=True, check=True)
    return json.loads(r.stdout)
want_energy = sum(e["energy"].values())
deadline = time.time() + float(patience)
while time.time() < deadline:  # contributions reach parents after a short delay
    l, a = get(line), get("acme")
    sums = l["rollup"]["sums"]
    if (abs(sums.get("energy_kwh", 0) - want_energy) < 1e-6 * max(1, want_energy)
            and all(a["rollup"]["sums"].get(f"stock/{k}", 0) == v for k, v in e["stock"].items())):
        break
    time.sleep(0.2)
assert abs(sums.get("energy_kwh", 0) - want_energy) < 1e-6 * max(1, want_energy), (sums, want_energy)
for twin, kwh in e["energy"].items():
    got = get(twin)["energy_kwh"]
    assert abs(got - kwh) < 1e-9 * max(1, kwh), (twin, got, kwh)
assert sums.get("count/running") == e["running"], (sums, e["running"])
wh = get("acme/wh-1")
assert wh.get("stock", {}) == {k: v for k, v in e["stock"].items() if v != 0}, (wh.get("stock"), e["stock"])
for k, v in e["stock"].items():
    assert a["rollup"]["sums"].get(f"stock/{k}", 0) == v, (k, a["rollup"]["sums"], v)
m1 = get(line + "/m01")["channels"]["temperature_c"]
assert m1["value"] == 50.5, f"the backfill replaced the newer live value: {m1}"
parts = {t: p[-1][1] for t, c, p in e["expected"] if c == "parts_total"}
for twin, v in parts.items():
    if twin.endswith("/m01"):
        continue
    assert get(twin)["channels"]["parts_total"]["value"] == v, twin
EOF

# -- a finished file is not replayed again; --restart applies nothing twice -----------
"$twinrt" replay "$dir/history.csv" --connect "$addr" > "$dir/out" 2> "$dir/err"
grep -q "replayed completely already" "$dir/err" || fail "a finished file was replayed again"
"$twinrt" replay "$dir/history.csv" --connect "$addr" --restart > "$dir/out" 2> "$dir/err"
grep -qE "; 0 accepted, $samples already applied, [0-9]+ rejected" "$dir/out" \
  || fail "--restart applied samples a second time"

# -- refusals -------------------------------------------------------------------------
echo "not json" > "$dir/broken-state"
if "$twinrt" replay "$dir/history.csv" --connect "$addr" --state "$dir/broken-state" \
     > "$dir/out" 2> "$dir/err"; then fail "a broken state file was accepted"; fi
grep -q "state file $dir/broken-state is not valid JSON" "$dir/err" || fail "broken state not named"
if "$twinrt" replay "$dir/history.csv" --connect "$addr" --token viewer --restart \
     --state "$dir/viewer-state" > "$dir/out" 2> "$dir/err"; then fail "a read token could replay"; fi
grep -q "permission denied: token 'viewer' may not write" "$dir/err" || fail "no permission message"
if "$twinrt" replay "$dir/nothing.csv" --connect "$addr" > "$dir/out" 2> "$dir/err"; then
  fail "a missing file was accepted"
fi
grep -q "cannot read $dir/nothing.csv" "$dir/err" || fail "a missing file was not named"

# -- --speed spaces samples by their timestamps ------------------------------------------
python3 -c "
for i in range(11):
    print('$line/m05,temperature_c,%d,%d' % ($now - 3600000 + i * 300, 30 + i))" > "$dir/paced.csv"
t_start=$(date +%s%N)
"$twinrt" replay "$dir/paced.csv" --connect "$addr" --speed 2 > "$dir/out" 2> "$dir/err" \
  || fail "paced replay exited $?"
elapsed_ms=$(( ($(date +%s%N) - t_start) / 1000000 ))
# 3 s of timestamps at twice real time: at least 1.5 s.
[ "$elapsed_ms" -ge 1400 ] || fail "--speed 2 replayed 3 s of samples in $elapsed_ms ms"
grep -q "11 accepted" "$dir/out" || fail "paced replay did not apply its 11 samples"

# -- the node killed mid-replay and restarted on the same data and address -------------------
python3 - "$dir" "$line" "$now" <<'EOF2'
import sys
d, line, now = sys.argv[1], sys.argv[2], int(sys.argv[3])
t0 = now - 86400 * 1000
with open(f"{d}/day.csv", "w") as f:
    for step in range(1500):
        for m in (5, 6, 7, 8):
            f.write(f"{line}/m{m:02d},power_kw,{t0 + step * 1000},{(step * 7 + m) % 40}\n")
            f.write(f"{line}/m{m:02d},temperature_c,{t0 + step * 1000},{20 + (step + m) % 50}\n")
EOF2
# 1500 s of timestamps at 300 times real time: at least 5 s. The node is
# killed once a fifth of it is done, and started again once the replay has
# noticed.
"$twinrt" replay "$dir/day.csv" --connect "$addr" --speed 300 > "$dir/day.out" 2> "$dir/day.err" &
replay_pid=$!
wait_for $((5 * patience)) past 2400 "$dir/day.csv"
alive "$replay_pid" || fail "the replay ended before the node was killed"
kill -9 "$node_pid"
{ wait "$node_pid"; } 2>/dev/null
noticed() { grep -q "lost the node at $addr" "$dir/day.err" || gone "$replay_pid"; }
wait_for $patience noticed
"$twinrt" node --config "$dir/node.toml" --rpc-address "$addr" >> "$dir/node.log" 2>&1 &
node_pid=$!
wait "$replay_pid"
rc=$?
replay_pid=""
cp "$dir/day.out" "$dir/out"; cp "$dir/day.err" "$dir/err"
[ "$rc" = 0 ] || fail "the replay across a node restart exited $rc"
grep -q "reconnected to $addr" "$dir/err" || fail "the replay did not reconnect"
grep -qE "complete after line 12000; [0-9]+ accepted" "$dir/out" || fail "the replay did not finish"
python3 - "$dir" "$twinctl" "$addr" "$line" <<'EOF2' || fail "history after the node restart"
import subprocess, sys, json
d, twinctl, addr, line = sys.argv[1:]
want = {}
for l in open(f"{d}/day.csv"):
    twin, ch, ts, v = l.strip().split(",")
    want.setdefault((twin, ch), []).append((int(ts), float(v)))
for (twin, ch), pts in want.items():
    r = subprocess.run([twinctl, "--address", addr, "--token", "viewer", "--json", "history", twin, ch,
                        "--since", "25h", "--until", "23h", "--limit", "100000"],
                       capture_output=True, text=True, check=True)
    got = [(p["timestamp_ms"], p["value"]) for p in json.loads(r.stdout)]
    assert got == pts, f"{twin}.{ch}: {len(got)} points, expected {len(pts)}"
EOF2

kill -0 "$node_pid" 2>/dev/null || fail "the node is gone"
if grep -lE "runtime error|AddressSanitizer" "$dir"/*.log "$dir"/*.err; then fail "a sanitizer report"; fi
echo "replay: ok ($lines lines, $samples samples; resumed run $rate)"
