#pragma once

// twinrt bench crash: kill -9 a real `twinrt node` at random moments, again
// and again, and check after every restart, over the operator API only and
// against a log of its own, that nothing acknowledged was lost or applied
// twice and that every rollup is the fold of its children.

#include <cstdint>
#include <functional>
#include <string>

namespace twinrt::crash_loop {

struct options {
  int rounds = 100;           // kills
  uint64_t seed = 0;          // 0: from std::random_device (printed, to repeat the choices)
  std::string node_exe;       // the twinrt binary to run as `EXE node`; "": this executable
  std::string dir;            // work directory (node data, config, models, log); "": a new temporary one
  bool keep = false;          // keep the work directory afterwards (it is always kept after a failure)
  int max_batches = 40;       // acknowledged batches before a kill, at most
  bool sync_wal = true;       // the node's storage.sync_wal
  int phantom_round = 0;      // tests the checker: in this round, log a batch as acknowledged
                              // without sending it; the next check must report it lost
  std::function<bool()> stop; // true: stop early (Ctrl-C)
};

/// Runs the loop and prints one line per round and a summary on stdout.
/// Returns 0 when every check passed, 1 when an acknowledged sample was lost
/// or applied twice, a rollup did not match, or an acknowledged reparent or
/// model load was lost; 2 when the loop could not run as planned (the node
/// did not start, died by itself, refused the workload); 130 when stopped.
int run(const options& opts);

} // namespace twinrt::crash_loop
