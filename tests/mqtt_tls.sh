#!/usr/bin/env bash
# MQTT over TLS (README "MQTT JSON", "Edge mode"): a Mosquitto broker with a
# plain listener, a TLS listener and a TLS listener that requires a client
# certificate, certificates made with the openssl CLI for this run only, and
# real twinrt processes on loopback:
#   - a node ingesting from mqtts:// with a client certificate stores what is published,
#     and its MQTT event sink publishes over TLS as well;
#   - a node trusting another CA is refused, says why in its log and its status,
#     and ingests nothing (a retained message waits on the broker all along);
#     so is a node expecting another name on the broker's certificate;
#   - a node without a client certificate is refused by the listener requiring one;
#   - `twinrt edge` reads the broker over TLS and forwards to a central node
#     serving its operator API over TLS ([edge.tls]); an edge trusting another
#     CA for the central node buffers and says why.
#   usage: mqtt_tls.sh TWINRT TWINCTL [MOSQUITTO]
set -uo pipefail
twinrt=$1
twinctl=$2
mosquitto=${3:-/usr/sbin/mosquitto}
source "$(dirname "$0")/harness.sh"
source "$(dirname "$0")/tls_certs.sh"
dir=$(mktemp -d)
pids=()
cleanup() {
  [ "${#pids[@]}" -eq 0 ] || stop_process "${pids[@]}"
  rm -rf "$dir"
}
trap cleanup EXIT

last_log=""
fail() {
  echo "FAIL: $*"
  if [ -n "$last_log" ]; then echo "--- $last_log (tail)"; tail -n 15 "$last_log"; fi
  echo "--- broker log (tail)"; tail -n 10 "$dir/mosquitto.log" 2>/dev/null
  echo "--- last output"; tail -n 20 "$dir/out" 2>/dev/null; tail -n 5 "$dir/err" 2>/dev/null
  exit 1
}
free_port() {
  python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"
}

make_test_certs "$dir/tls" "$dir/openssl.log" 2> "$dir/err" || fail "$(cat "$dir/err")"

# -- the broker: plain, TLS, and TLS requiring a client certificate --------------------
plain_port=$(free_port)
tls_port=$(free_port)
mtls_port=$(free_port)
# Run as root, mosquitto would drop to its own user, which cannot read our files.
[ "$(id -u)" -ne 0 ] || echo "user root" > "$dir/mosquitto.conf"
cat >> "$dir/mosquitto.conf" <<EOF
persistence false
log_dest file $dir/mosquitto.log
listener $plain_port 127.0.0.1
allow_anonymous true
listener $tls_port 127.0.0.1
cafile $dir/tls/ca.pem
certfile $dir/tls/node.pem
keyfile $dir/tls/node.key
listener $mtls_port 127.0.0.1
cafile $dir/tls/ca.pem
certfile $dir/tls/node.pem
keyfile $dir/tls/node.key
require_certificate true
EOF
"$mosquitto" -c "$dir/mosquitto.conf" > /dev/null 2>&1 &
pids+=($!)
broker_pid=$!
broker_up() {
  mosquitto_pub -h 127.0.0.1 -p "$plain_port" -t probe -m up > /dev/null 2>&1 && return 0
  alive "$broker_pid" || fail "the broker exited"
  return 1
}
wait_for $patience broker_up || fail "the broker did not listen on $plain_port"
publish() { mosquitto_pub -h 127.0.0.1 -p "$plain_port" -q 1 "$@" || fail "mosquitto_pub $*"; }

# -- nodes: start_node NAME MQTT_TOML [MORE_TOML], each with RPC on a free loopback port -----------------
line=acme/plant-1/line-1
declare -A rpc_of pid_of
start_node() {
  local name=$1 port
  port=$(free_port)
  rpc_of[$name]=127.0.0.1:$port
  cat > "$dir/$name.toml" <<EOF
[node]
data_dir = "$dir/$name-data"
[rpc]
address = "127.0.0.1:$port"
[[rpc.tokens]]
name = "writer"
secret = "writer"
role = "write"
[mqtt]
client_id = "$name"
$2
[[mqtt.routes]]
topic = "plant/{machine}/telemetry"
twin = "$line/{machine}"
${3:-}
EOF
  "$twinrt" node --config "$dir/$name.toml" > "$dir/$name.log" 2>&1 &
  pids+=($!)
  pid_of[$name]=$!
  last_log="$dir/$name.log"
  serving() {
    grep -q '^twinrt node: operator API on ' "$dir/$name.log" && return 0
    alive "${pid_of[$name]}" || fail "node $name exited"
    return 1
  }
  wait_for $patience serving || fail "node $name did not serve RPC"
  for twin in "acme --kind enterprise" "acme/plant-1 --kind plant --parent acme" \
              "$line --kind line --parent acme/plant-1" "$line/m1 --kind machine --parent $line" \
              "$line/m2 --kind machine --parent $line"; do
    # shellcheck disable=SC2086
    ctl "$name" twin create $twin > /dev/null || fail "node $name: twin create $twin"
  done
}
ctl() { local name=$1; shift; "$twinctl" --address "${rpc_of[$name]}" --token writer "$@" 2> "$dir/err"; }
# series NAME FAMILY [REASON]: the value of an adapter series in NAME's status (0 when absent).
series() {
  ctl "$1" --json status > "$dir/out" || return 1
  python3 -c '
import json, sys
family, reason = sys.argv[1], sys.argv[2]
d = json.load(sys.stdin)
print(sum(a["value"] for a in d["adapters"]
          if a["name"] == family and (not reason or a["labels"].get("reason") == reason)))
' "$2" "${3:-}" < "$dir/out"
}
# at_least N NAME FAMILY [REASON]
at_least() { local n=$1; shift; [ "$(series "$@")" -ge "$n" ]; }
# shows NAME TWIN TEXT: `twinctl --json get TWIN` on NAME contains TEXT.
shows() { ctl "$1" --json get "$2" > "$dir/out" && grep -qF -- "$3" "$dir/out"; }
now_ms() { echo $(($(date +%s) * 1000)); }

# -- 1. ingest over mqtts:// with a client certificate (paths relative to the config) ------
# Its events go to an MQTT sink over TLS too, read back on the plain listener.
mosquitto_sub -h 127.0.0.1 -p "$plain_port" -q 1 -t twinrt/events > "$dir/events.txt" 2>&1 &
pids+=($!)
start_node good "broker = \"mqtts://127.0.0.1:$mtls_port\"
[mqtt.tls]
ca = \"tls/ca.pem\"
certificate = \"tls/client.pem\"
private_key = \"tls/client.key\"" "[[sinks]]
name = \"bus\"
type = \"mqtt\"
url = \"mqtts://127.0.0.1:$mtls_port\"
topic = \"twinrt/events\"
ca = \"tls/ca.pem\"
certificate = \"tls/client.pem\"
private_key = \"tls/client.key\"
[[routes]]
sink = \"bus\"
types = [\"health\"]"
wait_for $patience at_least 1 good twinrt_mqtt_connected || fail "node good did not connect over TLS"
grep -q "connected to mqtts://127.0.0.1:$mtls_port" "$dir/good.log" \
  || fail "node good did not log its TLS connection"
# Retained: every later subscriber of the topic is sent it on connecting.
publish -r -t plant/m1/telemetry -m "{\"ts\": $(now_ms), \"temperature_c\": 61.5}"
wait_for $patience shows good "$line/m1" 61.5 || fail "the message over TLS was not ingested"
[ "$(series good twinrt_mqtt_connect_failures_total)" -eq 0 ] \
  || fail "node good counted connect failures"
# 95 degC: the machine's health turns to warning, an event the sink publishes over TLS.
publish -t plant/m2/telemetry -m "{\"ts\": $(now_ms), \"temperature_c\": 95}"
event_out() { grep 'health.changed' "$dir/events.txt" | grep -qF "$line/m2"; }
wait_for $patience event_out || fail "the MQTT sink over TLS published no health event of m2: $(tail -c 600 "$dir/events.txt")"

# -- 2. a node trusting another CA: refused, says why, ingests nothing ------------------------
start_node wrong_ca "broker = \"mqtts://127.0.0.1:$tls_port\"
[mqtt.tls]
ca = \"$dir/tls/other.pem\""
# Twins exist now: from here on, a connection would bring the retained message.
n=$(series wrong_ca twinrt_mqtt_connect_failures_total tls_verify)
wait_for $patience at_least $((n + 2)) wrong_ca twinrt_mqtt_connect_failures_total tls_verify \
  || fail "node wrong_ca did not count tls_verify failures"
grep -q "TLS handshake with 127.0.0.1:$tls_port failed: the broker's certificate is not trusted: .*$dir/tls/other.pem" \
  "$dir/wrong_ca.log" || fail "node wrong_ca did not log why the broker was refused"
ctl wrong_ca status > "$dir/out" || fail "twinctl status on wrong_ca"
grep -q 'twinrt_mqtt_connect_failures_total{reason="tls_verify"}' "$dir/out" \
  || fail "the failures are not in the node status"
[ "$(series wrong_ca twinrt_mqtt_connects_total)" -eq 0 ] || fail "node wrong_ca connected"
[ "$(series wrong_ca twinrt_mqtt_messages_total)" -eq 0 ] || fail "node wrong_ca got a message"
ctl wrong_ca --json status > "$dir/out" || fail "status"
python3 -c "import json,sys; assert json.load(sys.stdin)['samples_ingested'] == 0" < "$dir/out" \
  || fail "node wrong_ca ingested samples"

# -- 2b. a certificate that does not carry the name asked for: refused as well ------------------
start_node wrong_name "broker = \"mqtts://127.0.0.1:$tls_port\"
[mqtt.tls]
ca = \"$dir/tls/ca.pem\"
server_name = \"broker.elsewhere\""
n=$(series wrong_name twinrt_mqtt_connect_failures_total tls_verify)
wait_for $patience at_least $((n + 2)) wrong_name twinrt_mqtt_connect_failures_total tls_verify \
  || fail "node wrong_name did not count tls_verify failures"
grep -q "certificate does not carry the name broker.elsewhere" "$dir/wrong_name.log" \
  || fail "node wrong_name did not say which name the certificate lacks"
[ "$(series wrong_name twinrt_mqtt_messages_total)" -eq 0 ] || fail "node wrong_name got a message"

# -- 3. no client certificate where the broker requires one ------------------------------------
start_node no_cert "broker = \"mqtts://127.0.0.1:$mtls_port\"
[mqtt.tls]
ca = \"$dir/tls/ca.pem\""
n=$(series no_cert twinrt_mqtt_connect_failures_total)
wait_for $patience at_least $((n + 2)) no_cert twinrt_mqtt_connect_failures_total \
  || fail "node no_cert did not count failures"
grep -q "127.0.0.1:$mtls_port.*client certificate" "$dir/no_cert.log" \
  || fail "node no_cert did not say that the broker wants a client certificate"
[ "$(series no_cert twinrt_mqtt_connects_total)" -eq 0 ] || fail "node no_cert connected"
[ "$(series no_cert twinrt_mqtt_messages_total)" -eq 0 ] || fail "node no_cert got a message"

# -- 4. a TLS file that cannot be read stops the node at start, naming it ---------------------
cat > "$dir/missing.toml" <<EOF
[node]
data_dir = "$dir/missing-data"
[mqtt]
broker = "mqtts://127.0.0.1:$tls_port"
[mqtt.tls]
ca = "nope/ca.pem"
[[mqtt.routes]]
topic = "a/{x}"
twin = "{x}"
EOF
if "$twinrt" node --config "$dir/missing.toml" --duration 1 > "$dir/out" 2> "$dir/err"; then
  fail "a node with a missing CA file started"
fi
grep -qF "cannot read mqtt.tls.ca $dir/nope/ca.pem" "$dir/err" || fail "the missing CA file is not named"

# -- 5. the edge: broker over TLS, central node over TLS ---------------------------------------
cat > "$dir/central.toml" <<EOF
[node]
data_dir = "$dir/central-data"
[rpc]
address = "127.0.0.1:0"
[rpc.tls]
certificate = "$dir/tls/node.pem"
private_key = "$dir/tls/node.key"
[[rpc.tokens]]
name = "writer"
secret = "writer"
role = "write"
EOF
"$twinrt" node --config "$dir/central.toml" > "$dir/central.log" 2>&1 &
pids+=($!)
central_pid=$!
last_log="$dir/central.log"
central_serving() {
  grep -q '^twinrt node: operator API on ' "$dir/central.log" && return 0
  alive "$central_pid" || fail "the central node exited"
  return 1
}
wait_for $patience central_serving || fail "the central node did not serve RPC"
central=$(sed -n 's/^twinrt node: operator API on //p' "$dir/central.log")
rpc_of[central]=$central
tctl() { "$twinctl" --address "$central" --token writer --tls --ca "$dir/tls/ca.pem" --tls-name localhost "$@" 2> "$dir/err"; }
for twin in "acme --kind enterprise" "acme/plant-1 --kind plant --parent acme" \
            "$line --kind line --parent acme/plant-1" "$line/m3 --kind machine --parent $line"; do
  # shellcheck disable=SC2086
  tctl twin create $twin > /dev/null || fail "central: twin create $twin"
done
# start_edge NAME CENTRAL_CA
start_edge() {
  cat > "$dir/$1.toml" <<EOF
[mqtt]
broker = "mqtts://localhost:$mtls_port"
client_id = "$1"
[mqtt.tls]
ca = "$dir/tls/ca.pem"
certificate = "$dir/tls/client.pem"
private_key = "$dir/tls/client.key"
[[mqtt.routes]]
topic = "plant/{machine}/telemetry"
twin = "$line/{machine}"
[edge]
id = "$1"
central = "$central"
token = "writer"
buffer_dir = "$dir/$1-buffer"
[edge.tls]
ca = "$2"
server_name = "localhost"
EOF
  "$twinrt" edge --config "$dir/$1.toml" --report-every 0.5 > "$dir/$1.log" 2>&1 &
  pids+=($!)
  pid_of[$1]=$!
  last_log="$dir/$1.log"
}
edge_says() {
  grep -qF -- "$2" "$dir/$1.log" && return 0
  alive "${pid_of[$1]}" || fail "edge $1 exited"
  return 1
}
start_edge edge "$dir/tls/ca.pem"
wait_for $patience edge_says edge "connected to the broker at mqtts://localhost:$mtls_port" \
  || fail "the edge did not connect to the broker over TLS"
wait_for $patience edge_says edge "connected to the central node at $central over TLS" \
  || fail "the edge did not connect to the central node over TLS"
publish -t plant/m3/telemetry -m "{\"ts\": $(now_ms), \"temperature_c\": 55.25}"
central_has() { tctl --json get "$line/m3" > "$dir/out" && grep -qF 55.25 "$dir/out"; }
wait_for $patience central_has || fail "the sample did not reach the central node over TLS"

start_edge edge_wrong_ca "$dir/tls/other.pem"
wait_for $patience edge_says edge_wrong_ca "central node unreachable, buffering: connect $central" \
  || fail "the edge trusting another CA did not say the central node is unreachable"
grep -q "central node unreachable.*certificate" "$dir/edge_wrong_ca.log" \
  || fail "the edge did not say the central node's certificate is the problem"
echo "PASS"
