#!/usr/bin/env bash
# One command for the tests: install, build, run the whole suite; then the
# same suite again under AddressSanitizer + UndefinedBehaviorSanitizer.
# TWINRT_SKIP_SANITIZE=1 skips the second pass.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh build
(cd build && ctest --output-on-failure -j 1)
if [ "${TWINRT_SKIP_SANITIZE:-0}" != 1 ]; then
  scripts/build.sh build-asan -DTWINRT_SANITIZE=ON
  export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:suppressions=$PWD/tests/ubsan.supp
  (cd build-asan && ctest --output-on-failure -j 1)
fi
