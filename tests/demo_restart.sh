#!/usr/bin/env bash
# The demo as a user runs it: start, stop, start again on the same data
# directory; the second run must continue from the stored totals.
set -euo pipefail
twinrt=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

total_of() { sed -n 's/.*energy today [0-9.]* kWh (total \([0-9.]*\)).*/\1/p' | tail -n "$1" | head -n 1; }

"$twinrt" demo --data-dir "$dir/data" --rpc-address 127.0.0.1:0 --duration 4 > "$dir/run1.log"
grep -q "created 137 twins" "$dir/run1.log" || { echo "first run did not create the enterprise"; cat "$dir/run1.log"; exit 1; }
first_total=$(total_of 1 < "$dir/run1.log")
grep -q "on the road" "$dir/run1.log" || { echo "no summary line"; cat "$dir/run1.log"; exit 1; }

"$twinrt" demo --data-dir "$dir/data" --rpc-address 127.0.0.1:0 --duration 3 > "$dir/run2.log"
grep -q "continuing from" "$dir/run2.log" || { echo "second run did not continue"; cat "$dir/run2.log"; exit 1; }
second_first_total=$(sed -n 's/.*(total \([0-9.]*\)).*/\1/p' "$dir/run2.log" | head -n 1)

echo "energy total after run 1: $first_total kWh; first reading of run 2: $second_first_total kWh"
awk -v a="$first_total" -v b="$second_first_total" 'BEGIN { exit !(a > 0 && b >= a) }' \
  || { echo "energy total went back: $first_total -> $second_first_total"; exit 1; }

# A broken config file is refused with file and line.
printf '[node]\nthreads = "two"\n' > "$dir/bad.toml"
if "$twinrt" node --config "$dir/bad.toml" 2> "$dir/err.log"; then
  echo "a broken config was accepted"; exit 1
fi
grep -q "bad.toml:2" "$dir/err.log" || { echo "error does not name file:line"; cat "$dir/err.log"; exit 1; }
# The example config in the repository is valid as it is.
example="$(dirname "$0")/../twinrt.example.toml"
"$twinrt" node --config "$example" --data-dir "$dir/node" --duration 1 > "$dir/node.log" \
  || { echo "the example config was refused"; cat "$dir/node.log"; exit 1; }
echo "demo restart: ok"
