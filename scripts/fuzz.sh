#!/usr/bin/env bash
# Builds the fuzz targets (tests/fuzz/<name>.fuzz.cpp) with clang as libFuzzer binaries
# under ASan+UBSan and runs each for SECONDS, starting from its seed corpus.
#   scripts/fuzz.sh [SECONDS] [NAME...]      default: 60 s, every target
# Findings go to <build dir>/fuzz-artifacts/ (replay one: <build dir>/tests/fuzz/fuzz_NAME FILE).
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
mkdir -p "$dir/fuzz-artifacts"
status=0
for n in "${names[@]}"; do
  work="$dir/fuzz-corpus/$n"
  mkdir -p "$work"
  echo "== fuzz_$n for ${seconds}s"
  ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    "$dir/tests/fuzz/fuzz_$n" -max_total_time="$seconds" -print_final_stats=1 \
    -artifact_prefix="$dir/fuzz-artifacts/$n-" "$work" "tests/fuzz/corpus/$n" || status=1
done
exit $status
