#!/usr/bin/env bash
# The operator API over TLS (README "Security"): a CA and a server certificate
# made with the openssl CLI for this run only, a `twinrt node` serving TLS on
# 127.0.0.1 with a hashed token; `twinctl --tls --ca` works, while a plaintext
# client, a client trusting another CA and a node refused its plaintext
# non-loopback address each fail saying why.
#   usage: tls.sh TWINRT TWINCTL
set -uo pipefail
twinrt=$1
twinctl=$2
source "$(dirname "$0")/harness.sh"
source "$(dirname "$0")/tls_certs.sh"
dir=$(mktemp -d)
node_pid=""
cleanup() {
  if [ -n "$node_pid" ]; then stop_process "$node_pid"; fi
  rm -rf "$dir"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*"
  echo "--- stdout of the last command"; tail -n 20 "$dir/out" 2>/dev/null
  echo "--- stderr of the last command"; tail -n 20 "$dir/err" 2>/dev/null
  echo "--- node log (tail)"; tail -n 10 "$dir/node.log" 2>/dev/null
  exit 1
}
# refused MESSAGE COMMAND...: COMMAND exits non-zero and its stderr says MESSAGE.
refused() {
  local message=$1
  shift
  if "$@" > "$dir/out" 2> "$dir/err"; then fail "$* succeeded; expected: $message"; fi
  grep -qF -- "$message" "$dir/err" || fail "$* did not say: $message"
}

# -- certificates: a CA, a server certificate it signs, and an unrelated CA -----
make_test_certs "$dir/conf/tls" "$dir/openssl.log" 2> "$dir/err" || fail "$(cat "$dir/err")"

# -- a node serving TLS on a free loopback port; paths relative to its config ----
secret_hash=$(printf 'tls-viewer-secret\n' | "$twinrt" token hash --iterations 1000) \
  || fail "twinrt token hash failed"
case "$secret_hash" in pbkdf2-sha256\$1000\$*) ;; *) fail "unexpected hash: $secret_hash" ;; esac
cat > "$dir/conf/node.toml" <<TOML
[node]
data_dir = "$dir/data"
[rpc]
address = "127.0.0.1:0"
[rpc.tls]
certificate = "tls/node.pem"
private_key = "tls/node.key"
[[rpc.tokens]]
name = "viewer"
secret_hash = "$secret_hash"
role = "read"
[[rpc.tokens]]
name = "writer"
secret = "tls-writer-secret"
role = "write"
TOML
: > "$dir/node.log"
(cd / && exec "$twinrt" node --config "$dir/conf/node.toml") > "$dir/node.log" 2>&1 &
node_pid=$!
serving() {
  grep -q '^twinrt node: operator API on ' "$dir/node.log" && return 0
  alive "$node_pid" || fail "the node exited"
  return 1
}
wait_for $patience serving || fail "the node never served RPC"
addr=$(sed -n 's/^twinrt node: operator API on //p' "$dir/node.log")
port=${addr##*:}

# -- twinctl over TLS -----------------------------------------------------------------
# kj checks the certificate for the host as a DNS name, even an IP address:
# --tls-name gives the certificate's name when --address is an IP.
export TWINRT_TOKEN=tls-viewer-secret
tls_ctl() { "$twinctl" --address "$addr" --tls --ca "$dir/conf/tls/ca.pem" --tls-name localhost "$@"; }
tls_ctl models > "$dir/out" 2> "$dir/err" || fail "twinctl --tls --ca could not list the models"
grep -q "machine" "$dir/out" || fail "no machine model in the listing over TLS"
tls_ctl --json status > "$dir/out" 2> "$dir/err" || fail "twinctl --tls status failed"
python3 -c "import json,sys; d=json.load(sys.stdin); assert d['twins'] == 0, d" < "$dir/out" \
  || fail "status over TLS is not the empty node's"

# -- twinrt replay over TLS: a sample file into a twin created over TLS --------------
tls_ctl --token tls-writer-secret twin create acme --kind enterprise > "$dir/out" 2> "$dir/err" \
  || fail "twin create over TLS failed"
tls_ctl --token tls-writer-secret twin create acme/wh-1 --kind warehouse --parent acme \
  > "$dir/out" 2> "$dir/err" || fail "twin create over TLS failed"
now=$(($(date +%s) * 1000))
echo "acme/wh-1,receipt/SKU-1,$((now - 5000)),7" > "$dir/receipts.csv"
"$twinrt" replay "$dir/receipts.csv" --connect "$addr" --token tls-writer-secret \
  --ca "$dir/conf/tls/ca.pem" --tls-name localhost > "$dir/out" 2> "$dir/err" \
  || fail "twinrt replay --ca over TLS failed"
stock_is_7() {
  tls_ctl --json get acme/wh-1 > "$dir/out" 2> "$dir/err" \
    && python3 -c "import json,sys; d=json.load(sys.stdin); assert d['stock']['SKU-1'] == 7" < "$dir/out" 2> /dev/null
}
wait_for $patience stock_is_7 || fail "the replayed receipt is not in acme/wh-1"
refused "connect $addr" "$twinrt" replay "$dir/receipts.csv" --connect "$addr" \
  --token tls-writer-secret --ca "$dir/conf/tls/other.pem" --tls-name localhost --restart

# -- what must fail, saying why ------------------------------------------------------
refused "if it serves TLS, connect with --tls --ca FILE" "$twinctl" --address "$addr" models
refused "TLS peer's certificate is not trusted" \
  "$twinctl" --address "$addr" --tls --ca "$dir/conf/tls/other.pem" --tls-name localhost models
grep -qF "TLS handshake with $addr failed" "$dir/err" || fail "the refusal does not name the address"
refused "hostname mismatch" "$twinctl" --address "$addr" --ca "$dir/conf/tls/ca.pem" models
grep -qF -- "--tls-name" "$dir/err" || fail "the hostname mismatch does not point at --tls-name"
refused "cannot read the CA file $dir/nope.pem" \
  "$twinctl" --address "$addr" --tls --ca "$dir/nope.pem" models
refused "permission denied: unknown token" tls_ctl --token wrong models
# The node kept serving, and logged the failed handshakes.
tls_ctl models > "$dir/out" 2> "$dir/err" || fail "the node stopped serving TLS after the failures"
grep -q "TLS handshake with 127.0.0.1 failed" "$dir/node.log" || fail "the node did not log the failed handshake"

# -- startup refusals: plaintext off loopback, a missing certificate ---------------
cat > "$dir/conf/open.toml" <<TOML
[node]
data_dir = "$dir/data-open"
[rpc]
address = "0.0.0.0:0"
TOML
refused "rpc.address 0.0.0.0:0 is not a loopback address" \
  "$twinrt" node --config "$dir/conf/open.toml" --duration 1
cat > "$dir/conf/nocert.toml" <<TOML
[node]
data_dir = "$dir/data-nocert"
[rpc]
address = "127.0.0.1:0"
[rpc.tls]
certificate = "tls/missing.pem"
private_key = "tls/node.key"
TOML
refused "cannot read rpc.tls.certificate $dir/conf/tls/missing.pem" \
  "$twinrt" node --config "$dir/conf/nocert.toml" --duration 1
echo "PASS"
