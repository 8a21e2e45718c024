#!/usr/bin/env bash
# Builds the fuzz targets (tests/fuzz/<name>.fuzz.cpp) with clang as libFuzzer binaries
# under ASan+UBSan and runs each for SECONDS, starting from its seed corpus.
#   scripts/fuzz.sh [SECONDS] [NAME...]      default: 60 s, every target
# Needs clang (Debian's clang package carries libFuzzer); installed with apt-get when
# missing. It is not one of scripts/deps.sh's packages: only fuzzing needs it.
# Findings go to <build dir>/fuzz-artifacts/ (replay one: <build dir>/tests/fuzz/fuzz_NAME FILE,
# or with the plain build: TWINRT_FUZZ_RUNS=0 build/tests/fuzz/fuzz_NAME FILE). Each run's
# log is <build dir>/fuzz-logs/NAME.log; a table of runs, time, crashes and coverage is
# printed at the end (and written to <build dir>/fuzz-logs/summary.md).
# TWINRT_FUZZ_BUILD_DIR picks the build directory (default build-fuzz), TWINRT_FUZZ_JOBS the
# number of build jobs (default: ninja's).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
[ $# -gt 0 ] && shift
dir=${TWINRT_FUZZ_BUILD_DIR:-build-fuzz}
if ! command -v clang++ >/dev/null; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends clang
fi
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for f in tests/fuzz/*.fuzz.cpp; do
    n=$(basename "$f" .fuzz.cpp)
    names+=("$n")
  done
fi
CC=clang CXX=clang++ cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DTWINRT_FUZZ=ON >/dev/null
ninja -C "$dir" ${TWINRT_FUZZ_JOBS:+-j"$TWINRT_FUZZ_JOBS"} "${names[@]/#/fuzz_}"
mkdir -p "$dir/fuzz-artifacts" "$dir/fuzz-logs"
summary="$dir/fuzz-logs/summary.md"
{
  echo "| target | seconds | runs | crashes | coverage (cov) | features (ft) | corpus |"
  echo "| --- | --- | --- | --- | --- | --- | --- |"
} >"$summary"
status=0
for n in "${names[@]}"; do
  work="$dir/fuzz-corpus/$n"
  log="$dir/fuzz-logs/$n.log"
  mkdir -p "$work"
  echo "== fuzz_$n for ${seconds}s (log: $log)"
  # -timeout: an input that takes 30 s is a finding (a hang), not a slow run.
  rc=0
  ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    "$dir/tests/fuzz/fuzz_$n" -max_total_time="$seconds" -print_final_stats=1 -timeout=30 \
    -rss_limit_mb=4096 -artifact_prefix="$dir/fuzz-artifacts/$n-" "$work" "tests/fuzz/corpus/$n" \
    >"$log" 2>&1 || rc=$?
  tail -n 25 "$log"
  crashes=0
  if [ "$rc" -ne 0 ]; then
    status=1
    crashes=1 # libFuzzer stops at the first finding
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n 1)
  last=$(grep -E '^#[0-9]+' "$log" | grep -E 'cov: [0-9]+' | tail -n 1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9A-Za-z]*\).*/\1/p' <<<"$last")
  echo "| $n | ${took:-$seconds} | ${runs:-?} | $crashes | ${cov:-?} | ${ft:-?} | ${corp:-?} |" \
    >>"$summary"
done
echo
cat "$summary"
exit $status
