#!/usr/bin/env bash
# `twinrt node` with a [sparkplug] section, as an integrator runs it: a
# Mosquitto broker, the node and an edge node whose Sparkplug B payloads are
# written as protobuf text and encoded by protoc from schemas/sparkplug_b.proto,
# then published with mosquitto_pub. Births create the mapped twins, DDATA by
# alias updates them, DDEATH makes the device stale, a truncated payload is
# refused in the log with its reason, and the node serves the twins over RPC.
#   usage: sparkplug_node.sh TWINRT TWINCTL PROTOC PROTO_FILE [MOSQUITTO]
set -uo pipefail
twinrt=$1
twinctl=$2
protoc=$3
proto=$4
mosquitto=${5:-/usr/sbin/mosquitto}
source "$(dirname "$0")/harness.sh"
dir=$(mktemp -d)
broker_pid=""
node_pid=""
cleanup() {
  stop_process $node_pid $broker_pid
  rm -rf "$dir"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*"
  echo "--- node log (tail)"; tail -n 20 "$dir/node.log" 2>/dev/null
  echo "--- last twinctl output"; cat "$dir/out" 2>/dev/null
  exit 1
}
free_port() {
  python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"
}
mqtt_port=$(free_port)
rpc_port=$(free_port)

cat > "$dir/mosquitto.conf" <<EOF
listener $mqtt_port 127.0.0.1
allow_anonymous true
persistence false
log_dest file $dir/mosquitto.log
EOF
"$mosquitto" -c "$dir/mosquitto.conf" > /dev/null 2>&1 &
broker_pid=$!

cat > "$dir/node.toml" <<EOF
[node]
data_dir = "$dir/data"
[rpc]
address = "127.0.0.1:$rpc_port"
[[rpc.tokens]]
name = "writer"
secret = "writer"
role = "write"
[sparkplug]
broker = "127.0.0.1:$mqtt_port"
groups = ["plant-1"]
max_payload_bytes = 65536
[[sparkplug.devices]]
device = ""                       # the edge node itself
twin = "acme/{group}/{node}"
kind = "line"
parent = "acme/{group}"
[[sparkplug.devices]]
twin = "acme/{group}/{node}/{device}"
kind = "machine"
parent = "acme/{group}/{node}"
channels = { Temperature = "temperature_c", State = "state" }
EOF
"$twinrt" node --config "$dir/node.toml" > "$dir/node.log" 2>&1 &
node_pid=$!
ctl() { "$twinctl" --address "127.0.0.1:$rpc_port" --token writer "$@" > "$dir/out" 2>&1; }
serving() { ctl models && return 0; alive "$node_pid" || fail "the node exited"; return 1; }
wait_for $patience serving || fail "the node did not serve RPC on port $rpc_port"
grep -q "Sparkplug B from 127.0.0.1:$mqtt_port" "$dir/node.log" || fail "the node did not start the Sparkplug B adapter"
ctl twin create acme --kind enterprise || fail "twin create acme"
ctl twin create acme/plant-1 --kind plant --parent acme || fail "twin create acme/plant-1"

# encode NAME: protobuf text on stdin -> $dir/NAME.bin
encode() {
  "$protoc" --encode=twinrt.sparkplug.pb.Payload -I "$(dirname "$proto")" "$proto" > "$dir/$1.bin" \
    || fail "protoc could not encode $1"
}
pub() { # pub TYPE[/DEVICE] NAME
  mosquitto_pub -h 127.0.0.1 -p "$mqtt_port" -q 0 -t "spBv1.0/plant-1/$1" -f "$dir/$2.bin" \
    || fail "mosquitto_pub $1"
}
encode nbirth <<'EOF'
seq: 0
metrics { name: "bdSeq" datatype: 4 long_value: 0 }
metrics { name: "Node Control/Rebirth" datatype: 11 boolean_value: false }
EOF
encode dbirth <<'EOF'
seq: 1
metrics { name: "Temperature" alias: 1 datatype: 10 double_value: 71.5 }
metrics { name: "State" alias: 2 datatype: 1 int_value: 1 }
EOF
encode ddata <<'EOF'
seq: 2
metrics { alias: 1 double_value: 88.25 }
EOF
encode ddeath <<'EOF'
seq: 3
EOF

# Births until the adapter's subscription is in place (each NBIRTH starts over).
# out_has TEXT ARGS...: twinctl ARGS succeeds and its output holds TEXT.
out_has() { local text=$1; shift; ctl "$@" && grep -q -- "$text" "$dir/out"; }
births() {
  pub NBIRTH/edge-1 nbirth
  pub DBIRTH/edge-1/press-1 dbirth
  sleep 0.2
  out_has '71.5' --json get acme/plant-1/edge-1/press-1
}
wait_for $patience births || fail "the births did not create acme/plant-1/edge-1/press-1"
ctl --json get acme/plant-1/edge-1/press-1 || fail "get press-1"
python3 - "$dir/out" <<'EOF' || fail "press-1 is not a machine under the edge node's line"
import json, sys
d = json.load(open(sys.argv[1]))
s = json.dumps(d)
assert '"machine"' in s and 'acme/plant-1/edge-1' in s, s
EOF

pub DDATA/edge-1/press-1 ddata
wait_for $patience out_has '88.25' --json get acme/plant-1/edge-1/press-1 \
  || fail "DDATA by alias did not update temperature_c"

pub DDEATH/edge-1/press-1 ddeath
wait_for $patience out_has '"stale"' --json get acme/plant-1/edge-1/press-1 \
  || fail "DDEATH did not make press-1 stale"
ctl --json history acme/plant-1/edge-1/press-1 '$offline' || fail "history of \$offline"
python3 - "$dir/out" <<'EOF2' || fail "the history of \$offline does not end with the offline mark"
import json, sys
d = json.load(open(sys.argv[1]))
points = d["points"] if isinstance(d, dict) else d
assert [p["value"] for p in points][-1] == 1.0, d
EOF2

head -c 7 "$dir/dbirth.bin" > "$dir/truncated.bin"
pub DDATA/edge-1/press-1 truncated
wait_for $patience grep -q 'sparkplug refused (malformed' "$dir/node.log"
grep -q 'sparkplug refused (malformed.*spBv1.0/plant-1/DDATA/edge-1/press-1' "$dir/node.log" \
  || fail "the truncated payload was not refused in the log naming its topic"
kill -0 "$node_pid" 2>/dev/null || fail "the node died"
echo "sparkplug_node: ok"
