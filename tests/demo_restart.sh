#!/usr/bin/env bash
# The demo as a user runs it: start, stop, start again on the same data
# directory; the second run must continue from the stored totals.
set -euo pipefail
twinrt=$1
source "$(dirname "$0")/harness.sh"
dir=$(mktemp -d)
demo_pid=""
cleanup() {
  if [ -n "$demo_pid" ]; then stop_process "$demo_pid"; fi
  rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; for log in "$dir"/*.log; do echo "--- $log"; tail -n 20 "$log"; done; exit 1; }

# written_or_gone TEXT LOG: LOG holds TEXT, or the process writing it has exited.
written_or_gone() { grep -q "$1" "$2" || gone "$demo_pid"; }

total_of() { sed -n 's/.*energy today [0-9.]* kWh (total \([0-9.]*\)).*/\1/p' | tail -n "$1" | head -n 1; }

# run_until LOG TEXT: starts the demo on $dir/data with its output in LOG, waits
# until LOG holds TEXT (or the demo exits), then stops it as Ctrl-C would.
run_until() {
  local log=$1 text=$2
  "$twinrt" demo --data-dir "$dir/data" --rpc-address 127.0.0.1:0 > "$log" 2>&1 &
  demo_pid=$!
  # The first run simulates the last hours first: minutes under the sanitizers.
  wait_for $((5 * patience)) written_or_gone "$text" "$log" || true
  grep -q "$text" "$log" || fail "the demo did not write '$text'"
  kill -INT "$demo_pid"
  wait "$demo_pid" || fail "the demo exited $? on Ctrl-C"
  demo_pid=""
}

# Stopped once it printed a summary line (after its history, in real time).
run_until "$dir/run1.log" "on the road"
grep -q "created 137 twins" "$dir/run1.log" || fail "first run did not create the enterprise"
first_total=$(total_of 1 < "$dir/run1.log")

run_until "$dir/run2.log" "on the road"
grep -q "continuing from" "$dir/run2.log" || fail "second run did not continue"
second_first_total=$(sed -n 's/.*(total \([0-9.]*\)).*/\1/p' "$dir/run2.log" | head -n 1)

echo "energy total after run 1: $first_total kWh; first reading of run 2: $second_first_total kWh"
awk -v a="$first_total" -v b="$second_first_total" 'BEGIN { exit !(a > 0 && b >= a) }' \
  || fail "energy total went back: $first_total -> $second_first_total"

# A broken config file is refused with file and line.
printf '[node]\nthreads = "two"\n' > "$dir/bad.toml"
if "$twinrt" node --config "$dir/bad.toml" 2> "$dir/err.log"; then
  fail "a broken config was accepted"
fi
grep -q "bad.toml:2" "$dir/err.log" || fail "error does not name file:line"
# The example config in the repository is valid as it is: the node starts on
# it (and is then stopped).
example="$(dirname "$0")/../twinrt.example.toml"
run_node_until() {
  "$twinrt" node --config "$example" --data-dir "$dir/node" > "$dir/node.log" 2>&1 &
  demo_pid=$!
  wait_for $patience written_or_gone "twins in" "$dir/node.log" || true
  grep -q "twins in" "$dir/node.log" || fail "the example config was refused"
  kill -TERM "$demo_pid"
  wait "$demo_pid" || fail "the node on the example config exited $? on SIGTERM"
  demo_pid=""
}
run_node_until
echo "demo restart: ok"
