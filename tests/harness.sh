# Sourced by the shell tests: waiting for conditions and stopping the
# processes a test started. A test waits for what must happen, with a deadline
# that only a broken build reaches (a loaded 2-core machine and the sanitizer
# build included), never for a fixed time.

# Seconds a test waits for something that must happen (tests/support.hpp's
# testing::patience for the C++ tests).
patience=120

# wait_for SECONDS COMMAND...: runs COMMAND every 0.1 s until it succeeds
# (returns 0) or SECONDS have passed (returns 1).
wait_for() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

# alive PID: the process is still running. gone PID: it is not.
alive() { kill -0 "$1" 2>/dev/null; }
gone() { ! kill -0 "$1" 2>/dev/null; }

# stop_process PID...: SIGTERM, then SIGKILL for any that has not exited
# within 30 s (a demo simulating its history only stops after it); reaps them.
# Safe under `set -e`, for cleanup traps.
stop_process() {
  local pid
  for pid in "$@"; do kill "$pid" 2>/dev/null || true; done
  for pid in "$@"; do
    wait_for 30 gone "$pid" || kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}
