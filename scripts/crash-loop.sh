#!/usr/bin/env bash
# Crash loop: kill -9 a twinrt node ROUNDS times (default 100) at random moments
# and check, over its operator API, what survived (README "Reliability").
#
#   scripts/crash-loop.sh [ROUNDS] [OPTIONS]
#
# Builds nothing: it runs $TWINRT_BIN, else build/runtime/twinrt, as
# `twinrt bench crash --rounds ROUNDS OPTIONS` (see `twinrt bench crash --help`:
# --seed N, --dir DIR, --keep, --twinrt PATH, --max-batches N, --no-sync).
# Exit status 0: nothing lost, nothing applied twice, every rollup exact.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
rounds=100
if [[ $# -gt 0 && $1 =~ ^[0-9]+$ ]]; then
  rounds=$1
  shift
fi
bin=${TWINRT_BIN:-$root/build/runtime/twinrt}
if [[ ! -x $bin ]]; then
  echo "crash-loop.sh: no twinrt binary at $bin: build it first (scripts/build.sh) or set TWINRT_BIN" >&2
  exit 2
fi
# exec: the node the loop starts dies with the loop (PR_SET_PDEATHSIG), whatever ends it.
exec "$bin" bench crash --rounds "$rounds" "$@"
