#!/usr/bin/env bash
# Soak: the demo at its full simulated load for a long time, with operator
# clients, a watcher and a webhook sink, while its memory is sampled
# (README "Reliability").
#
#   scripts/soak.sh [SECONDS] [--samples N] [--max-growth PCT]
#
# SECONDS defaults to 3600. Builds nothing: it runs $TWINRT_BIN and
# $TWINCTL_BIN, else the sanitizer build's (build-asan/runtime/twinrt and
# twinctl, built by scripts/build.sh build-asan -DTWINRT_SANITIZE=ON), else
# build/'s. It prints the node's resident memory N times (default 20) and a
# summary: RSS after the warm-up quarter and at the end, sanitizer reports,
# client calls and their errors, events the sink received.
# Exit status 0 when the node ran to the end, no sanitizer report, no client
# error, the sink received events and the RSS grew by less than PCT (default
# 25) percent after the warm-up quarter.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
source "$root/tests/harness.sh"
seconds=3600
samples=20
max_growth=25
if [[ $# -gt 0 && $1 =~ ^[0-9]+$ ]]; then
  seconds=$1
  shift
fi
while [[ $# -gt 0 ]]; do
  case $1 in
    --samples) samples=$2; shift 2 ;;
    --max-growth) max_growth=$2; shift 2 ;;
    *) echo "soak.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
build=$root/build-asan
[[ -x $build/runtime/twinrt ]] || build=$root/build
twinrt=${TWINRT_BIN:-$build/runtime/twinrt}
twinctl=${TWINCTL_BIN:-$build/runtime/twinctl}
for b in "$twinrt" "$twinctl"; do
  [[ -x $b ]] || { echo "soak.sh: no binary at $b: build first or set TWINRT_BIN/TWINCTL_BIN" >&2; exit 2; }
done

dir=$(mktemp -d)
pids=()
demo_pid=""
cleanup() {
  [[ ${#pids[@]} -gt 0 ]] && stop_process "${pids[@]}"
  [[ -n $demo_pid ]] && stop_process "$demo_pid"
  rm -rf "$dir"
}
trap cleanup EXIT
fail() {
  echo "soak.sh: FAIL: $*"
  tail -n 20 "$dir/demo.log" 2>/dev/null
  exit 1
}

# Sanitizer reports go to the log and the node keeps running, so that the
# summary counts them.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}:halt_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=0:suppressions=$root/tests/ubsan.supp

# The sink: a webhook on loopback that answers 200 and counts events.
cat > "$dir/sink.py" <<'EOF'
import http.server, json, os, sys
count_file = sys.argv[1]
count = 0
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        global count
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        count += len(json.loads(body)["events"])
        with open(count_file + ".new", "w") as f:
            f.write(str(count))
        os.replace(count_file + ".new", count_file)
        self.send_response(200)
        self.end_headers()
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
with open(count_file + ".port.new", "w") as f:
    f.write(str(s.server_port))
os.replace(count_file + ".port.new", count_file + ".port")
s.serve_forever()
EOF
python3 "$dir/sink.py" "$dir/events" &
pids+=($!)
wait_for "$patience" test -s "$dir/events.port" || fail "the webhook sink did not start"
cat > "$dir/soak.toml" <<EOF
[[sinks]]
name = "soak"
type = "webhook"
url = "http://127.0.0.1:$(cat "$dir/events.port")/events"

[[routes]]
sink = "soak"
EOF

"$twinrt" demo --config "$dir/soak.toml" --data-dir "$dir/data" --rpc-address 127.0.0.1:0 \
  --history-hours 1 > "$dir/demo.log" 2>&1 &
demo_pid=$!
in_log() {
  grep -qF -- "$1" "$dir/demo.log" && return 0
  alive "$demo_pid" || fail "the demo exited before it wrote '$1'"
  return 1
}
wait_for $((5 * patience)) in_log "now running in real time" || fail "the demo never ran in real time"
addr=$(sed -n 's/^twinrt demo: operator API on \([0-9.:]*\);.*/\1/p' "$dir/demo.log")
[[ -n $addr ]] || fail "no operator API address in the demo's log"
export TWINRT_ADDRESS=$addr TWINRT_TOKEN=demo-viewer

# Clients: each loop counts its calls and its failures in files of its own.
client() {
  local name=$1 calls=0 errors=0
  shift
  while :; do
    if "$twinctl" "$@" > /dev/null 2>> "$dir/$name.err"; then :; else errors=$((errors + 1)); fi
    calls=$((calls + 1))
    echo "$calls $errors" > "$dir/$name.count.new" && mv "$dir/$name.count.new" "$dir/$name.count"
  done
}
client get get acme/plant-1/line-2/machine-07 &
pids+=($!)
client query query --kind machine --where 'vibration_mm_s > 4.5' --sort vibration_mm_s --limit 20 &
pids+=($!)
client history history acme/plant-1/line-2/machine-07 vibration_mm_s --since 1h --step 1m &
pids+=($!)
client watch watch acme/plant-1 --seconds 20 &
pids+=($!)

rss_mb() { awk '/^VmRSS:/ { printf "%.0f", $2 / 1024 }' "/proc/$demo_pid/status" 2>/dev/null; }
totals() { cat "$dir"/*.count 2>/dev/null | awk '{ c += $1; e += $2 } END { printf "%d %d", c, e }'; }
start=$SECONDS
warm_rss=""
printf "%8s %8s %10s %8s %8s\n" "seconds" "RSS MB" "calls" "errors" "events"
for ((i = 1; i <= samples; i++)); do
  until [[ $((SECONDS - start)) -ge $((seconds * i / samples)) ]]; do
    alive "$demo_pid" || fail "the demo exited during the soak"
    sleep 1
  done
  rss=$(rss_mb)
  read -r calls errors <<< "$(totals)"
  printf "%8d %8s %10d %8d %8s\n" $((SECONDS - start)) "$rss" "$calls" "$errors" "$(cat "$dir/events" 2>/dev/null || echo 0)"
  [[ $i -eq $(((samples + 3) / 4)) ]] && warm_rss=$rss
done
end_rss=$(rss_mb)
stop_process "${pids[@]}"
pids=()
stop_process "$demo_pid"
demo_pid_was=$demo_pid
demo_pid=""
reports=$(grep -cE "runtime error:|ERROR: AddressSanitizer|ERROR: LeakSanitizer" "$dir/demo.log")
read -r calls errors <<< "$(totals)"
events=$(cat "$dir/events" 2>/dev/null || echo 0)
growth=$(awk -v a="$warm_rss" -v b="$end_rss" 'BEGIN { printf "%.1f", (a > 0 ? 100 * (b - a) / a : 0) }')
echo "soak: ${seconds} s, node pid $demo_pid_was"
echo "  RSS after the warm-up quarter ${warm_rss} MB, at the end ${end_rss} MB (${growth} %)"
echo "  sanitizer reports ${reports}"
echo "  client calls ${calls}, errors ${errors}"
echo "  events delivered to the webhook ${events}"
status=0
[[ $reports -eq 0 ]] || { echo "soak: FAIL: sanitizer reports"; grep -E -A5 "runtime error:|ERROR: " "$dir/demo.log" | head -40; status=1; }
[[ $errors -eq 0 ]] || { echo "soak: FAIL: client errors"; sort "$dir"/*.err | uniq -c | head; status=1; }
[[ $events -gt 0 ]] || { echo "soak: FAIL: the sink received no event"; status=1; }
awk -v g="$growth" -v m="$max_growth" 'BEGIN { exit !(g < m) }' || { echo "soak: FAIL: RSS grew ${growth} % after the warm-up"; status=1; }
exit $status
