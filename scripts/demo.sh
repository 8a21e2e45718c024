#!/usr/bin/env bash
# One command for the demo: install, build, and run one node with a simulated
# enterprise until Ctrl-C. Extra arguments go to `twinrt demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh build
exec build/runtime/twinrt demo "$@"
