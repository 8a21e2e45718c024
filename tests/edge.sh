#!/usr/bin/env bash
# Edge mode end to end: a Mosquitto broker, a central node and `twinrt edge`,
# each a real process on loopback. A publisher streams telemetry of four
# machines (QoS 1) to the broker in four parts, each started once the test has
# done what comes before it: the first while all is up; the second after the
# central node was killed with SIGKILL; the third after the edge, with samples
# in its buffer, was killed too; the last after both were restarted (the
# central node on the same data directory). At the end the central history of
# every channel equals the stream after the edge's deadband and downsampling
# rules, each sample exactly once.
#   usage: edge.sh TWINRT TWINCTL [MOSQUITTO]
set -uo pipefail
twinrt=$1
twinctl=$2
mosquitto=${3:-/usr/sbin/mosquitto}
source "$(dirname "$0")/harness.sh"
dir=$(mktemp -d)
broker_pid=""
central_pid=""
edge_pid=""
pub_pid=""
cleanup() {
  stop_process $pub_pid $edge_pid $central_pid $broker_pid
  rm -rf "$dir"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*"
  echo "--- edge log (tail)"; tail -n 15 "$dir/edge.log" 2>/dev/null
  echo "--- central log (tail)"; tail -n 5 "$dir/central.log" 2>/dev/null
  echo "--- publisher (tail)"; tail -n 5 "$dir/pub.log" 2>/dev/null
  exit 1
}
free_port() {
  python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"
}

mqtt_port=$(free_port)
rpc_port=$(free_port)

# -- broker ----------------------------------------------------------------------------
cat > "$dir/mosquitto.conf" <<EOF
listener $mqtt_port 127.0.0.1
allow_anonymous true
persistence false
max_inflight_messages 100
max_queued_messages 100000
log_dest file $dir/mosquitto.log
EOF
"$mosquitto" -c "$dir/mosquitto.conf" > /dev/null 2>&1 &
broker_pid=$!

# -- central node ----------------------------------------------------------------------
cat > "$dir/central.toml" <<EOF
[node]
data_dir = "$dir/central-data"
[rpc]
address = "127.0.0.1:$rpc_port"
[[rpc.tokens]]
name = "writer"
secret = "writer"
role = "write"
EOF
central_serves() {
  "$twinctl" --address "127.0.0.1:$rpc_port" --token writer models > /dev/null 2>&1 && return 0
  alive "$central_pid" || fail "the central node exited"
  return 1
}
start_central() {
  "$twinrt" node --config "$dir/central.toml" >> "$dir/central.log" 2>&1 &
  central_pid=$!
  wait_for $patience central_serves || fail "the central node did not serve RPC on port $rpc_port"
}
start_central
ctl() { "$twinctl" --address "127.0.0.1:$rpc_port" --token writer "$@" > /dev/null 2>&1 || fail "twinctl $*"; }
line=acme/plant-1/line-1
ctl twin create acme --kind enterprise
ctl twin create acme/plant-1 --kind plant --parent acme
ctl twin create $line --kind line --parent acme/plant-1
for m in m1 m2 m3 m4; do ctl twin create $line/$m --kind machine --parent $line; done

# -- the edge ----------------------------------------------------------------------------
cat > "$dir/edge.toml" <<EOF
[mqtt]
broker = "127.0.0.1:$mqtt_port"
client_id = "edge-test"
max_payload_bytes = 4096
[[mqtt.routes]]
topic = "plant/{machine}/telemetry"
twin = "$line/{machine}"

[edge]
id = "edge-1"
central = "127.0.0.1:$rpc_port"
token = "writer"
buffer_dir = "$dir/edge-buffer"
forward_batch = 200

[[edge.channels]]
channel = "temperature_c"
deadband = 0.5
[[edge.channels]]
channel = "vibration_mm_s"
deadband_percent = 10
[[edge.channels]]
channel = "power_kw"
min_interval_ms = 1000
EOF
# edge_connected N: the edge log says "connected to the broker" more than N times.
edge_connected() {
  [ "$(grep -c "connected to the broker" "$dir/edge.log")" -gt "$1" ] && return 0
  alive "$edge_pid" || fail "the edge exited"
  return 1
}
start_edge() {
  "$twinrt" edge --config "$dir/edge.toml" --report-every 0.5 >> "$dir/edge.log" 2>&1 &
  edge_pid=$!
  wait_for $patience edge_connected "$1" || fail "the edge did not connect to the broker"
}
# The edge's last report, e.g. "...; 1200 forwarded (...); 35 queued (...) ...; broker up, central down".
last_report() { grep " queued (" "$dir/edge.log" | tail -n 1; }
# report_shows PATTERN: the last report matches the extended regex PATTERN.
report_shows() { last_report | grep -qE -- "$1"; }
start_edge 0
# Subscribed (the broker acknowledged) and forwarding.
wait_for $patience report_shows "broker up, central up" || fail "the edge did not get ready"

# -- the stream: 4 machines, up to 50 messages/s each, in four parts -------------------------
# The publisher writes pub.part-N when part N is published, then waits for the
# file go-N+1 before it goes on.
python3 - "$dir" "$mqtt_port" "$((10 * patience))" > "$dir/pub.log" 2>&1 <<'EOF' &
import json, os, random, subprocess, sys, time
d, port, patience = sys.argv[1], sys.argv[2], float(sys.argv[3])
parts = {150: 1, 275: 2, 350: 3}  # first message of the next part -> the part just published
rnd = random.Random(11)
t0 = int(time.time() * 1000) - 3600 * 1000
procs, sent = {}, []
for m in ("m1", "m2", "m3", "m4"):
    procs[m] = subprocess.Popen(["mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-q", "1",
                                 "-t", f"plant/{m}/telemetry", "-l"], stdin=subprocess.PIPE, text=True)
state = {m: [60.0, 2.0, 20.0] for m in procs}
for i in range(700):
    if i in parts:
        n = parts[i]
        open(f"{d}/pub.part-{n}", "w").close()
        deadline = time.time() + patience
        while not os.path.exists(f"{d}/go-{n + 1}"):
            if time.time() > deadline:
                sys.exit(f"publisher: no go-{n + 1} after part {n}")
            time.sleep(0.05)
    for m, p in procs.items():
        s = state[m]
        s[0] = round(s[0] + rnd.uniform(-0.4, 0.4), 2)
        s[1] = round(max(0.1, s[1] + rnd.uniform(-0.2, 0.2)), 3)
        s[2] = round(max(0.0, s[2] + rnd.uniform(-1, 1)), 2)
        msg = {"ts": t0 + i * 200, "seq": i + 1, "temperature_c": s[0], "vibration_mm_s": s[1],
               "power_kw": s[2]}
        p.stdin.write(json.dumps(msg) + "\n")
        p.stdin.flush()
        sent.append([m, msg])
    time.sleep(0.02)
for p in procs.values():
    p.stdin.close()
for p in procs.values():
    p.wait()
json.dump(sent, open(f"{d}/sent.json", "w"))
print("published", len(sent), "messages")
EOF
pub_pid=$!

# published N: part N of the stream is out (fails the test if the publisher died).
published() {
  [ -e "$dir/pub.part-$1" ] && return 0
  alive "$pub_pid" || fail "the publisher exited before part $1"
  return 1
}
# -- part 1 with all up; the central node is killed once the edge forwarded some ---------------
wait_for $((5 * patience)) published 1 || fail "the publisher did not get through part 1"
wait_for $patience report_shows "; [1-9][0-9]* forwarded" || fail "the edge forwarded nothing"
kill -9 "$central_pid"
{ wait "$central_pid"; } 2>/dev/null
# -- part 2 with the central node down: the edge buffers it ------------------------------------
touch "$dir/go-2"
wait_for $((5 * patience)) published 2 || fail "the publisher did not get through part 2"
# The edge has noticed and holds samples: its report says so.
wait_for $patience report_shows "; [1-9][0-9]* queued .*central down$" \
  || fail "the edge did not buffer while the central node was down: $(last_report)"
wait_for $patience grep -q "central node" "$dir/edge.log" \
  || fail "the edge never said the central node was gone"
# The edge dies with samples in its buffer and messages taken but perhaps not
# acknowledged; the broker keeps its session and queues the stream meanwhile.
kill -9 "$edge_pid"
{ wait "$edge_pid"; } 2>/dev/null
queued_at_kill=$(last_report | sed 's/.*; \([0-9]*\) queued.*/\1/')
# -- part 3 with the edge down too: the broker queues it for the edge's session -----------------
touch "$dir/go-3"
wait_for $((5 * patience)) published 3 || fail "the publisher did not get through part 3"
start_edge 1
start_central
# -- the rest with all up again ----------------------------------------------------------------
touch "$dir/go-4"
wait "$pub_pid" || fail "the publisher failed"
pub_pid=""
[ "${queued_at_kill:-0}" -gt 0 ] || fail "the edge was killed with an empty buffer ('$queued_at_kill')"

# Bad input: a payload that is not JSON and one above max_payload_bytes (both
# refused by the edge), and a sample for a twin the central node does not know
# (refused there); each is counted and reported, none blocks what follows.
mosquitto_pub -h 127.0.0.1 -p "$mqtt_port" -q 1 -t plant/m1/telemetry -m '{"ts": oops' \
  || fail "mosquitto_pub"
mosquitto_pub -h 127.0.0.1 -p "$mqtt_port" -q 1 -t plant/m2/telemetry \
  -m "{\"ts\": 1, \"note_$(head -c 3000 /dev/zero | tr '\0' x)\": 1, \"x_$(head -c 3000 /dev/zero | tr '\0' y)\": 2}" \
  || fail "mosquitto_pub"
mosquitto_pub -h 127.0.0.1 -p "$mqtt_port" -q 1 -t plant/m9/telemetry \
  -m "{\"ts\": $(( $(date +%s) * 1000 - 1000 )), \"temperature_c\": 50}" || fail "mosquitto_pub"

# -- catch up, then compare ---------------------------------------------------------------------
python3 - "$dir" "$twinctl" "127.0.0.1:$rpc_port" "$line" "$patience" <<'EOF' || fail "central history differs"
import json, subprocess, sys, time
d, twinctl, addr, line, patience = sys.argv[1:]
sent = json.load(open(f"{d}/sent.json"))
# The edge's rules, as the README states them.
rules = {"temperature_c": (0.5, 0, 0), "vibration_mm_s": (0, 10, 0), "power_kw": (0, 0, 1000)}
last, expected, total = {}, {}, 0
for m, msg in sent:
    for ch, (band, pct, interval) in rules.items():
        v, ts, key = msg[ch], msg["ts"], (m, ch)
        total += 1
        keep = key not in last
        if not keep:
            lv, lts = last[key]
            change = abs(v - lv)
            banded = band > 0 or pct > 0
            moved = not banded or (change > band and (pct <= 0 or change > pct / 100.0 * abs(lv)))
            keep = moved and ts - lts >= interval
        if keep:
            last[key] = (v, ts)
            expected.setdefault(key, []).append((ts, v))
kept = sum(len(v) for v in expected.values())
assert 0 < kept < total, (kept, total)
def history(m, ch):
    r = subprocess.run([twinctl, "--address", addr, "--token", "writer", "--json", "history",
                        f"{line}/{m}", ch, "--since", "3h", "--limit", "100000"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return None
    return [(p["timestamp_ms"], p["value"]) for p in json.loads(r.stdout)]
deadline = time.time() + float(patience)
while True:
    got = {key: history(*key) for key in expected}
    if all(got[k] is not None and len(got[k]) >= len(expected[k]) for k in expected) or time.time() > deadline:
        break
    time.sleep(0.5)
for key, want in expected.items():
    have = got[key]
    assert have == want, f"{key}: central has {len(have or [])} samples, the stream after the rules {len(want)}"
print(f"central history: {kept} of {total} samples after the rules, each once")
EOF

kill -TERM "$edge_pid"
wait "$edge_pid" || fail "the edge exited $? on SIGTERM"
edge_pid=""
if grep -lE "runtime error|AddressSanitizer" "$dir"/*.log; then fail "a sanitizer report"; fi
tail -n 3 "$dir/edge.log" | grep -q "0 dropped for the disk budget" || fail "the edge dropped samples"
tail -n 3 "$dir/edge.log" | grep -q " 0 queued" || fail "the edge still holds samples"
tail -n 3 "$dir/edge.log" | grep -q "(2 rejected)" || fail "the bad and the oversized payload were not counted once each"
grep -q "topic plant/m2/telemetry: payload of 6[0-9]* bytes is above max_payload_bytes" "$dir/edge.log" \
  || fail "the oversized payload was not reported"
tail -n 3 "$dir/edge.log" | grep -q "(1 refused by central," || fail "the unknown twin was not counted once"
grep -q "topic plant/m1/telemetry" "$dir/edge.log" || fail "the bad payload was not reported with its topic"
grep -q "no twin $line/m9" "$dir/edge.log" || fail "the central refusal was not reported"
grep -E "lost the central|unreachable" "$dir/edge.log" | head -n 2
grep -E " queued " "$dir/edge.log" | tail -n 1
echo "edge: ok"
