#pragma once

// File replay: backfills a node's history from a sample file (JSON lines or
// CSV, see sample_file.hpp) with the samples' own timestamps, over the node's
// operator API.
//
// Every sample is sent with a stable identity: source = the file's own
// source if the line has one, else "replay:" + the file name; seq = the line's
// own seq if it has one, else its line number. The node applies a (source,
// seq) once, so batches re-sent after an interruption change nothing twice.
// A state file records how far the node has acknowledged; a later run
// continues from there.

#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>

#include "twinrt/adapters/rpc_ingest.hpp"

namespace twinrt::adapters {

struct replay_options {
  std::string file;
  std::string address = "127.0.0.1:7800"; // node RPC HOST:PORT
  std::string token;                      // a token with role write
  rpc_transport transport;                // plain, or TLS (--tls, --ca, --tls-name)
  std::string state_path;                 // "": FILE + ".replay-state"
  std::string source;                     // "": "replay:" + the file name
  bool restart = false;                   // ignore the state file, start at line 1
  double speed = 0;                       // 0: as fast as possible; X: X times real time
  size_t batch = 5'000;                   // samples per RPC call
  size_t inflight = 4;                    // calls in flight
  bool bar = false;                       // a live progress bar (stderr is a terminal)
  double report_every_s = 5;              // without the bar: one progress line this often
  double reconnect_for_s = 60;            // give up after the node is gone this long
  size_t max_printed = 100;               // bad or rejected lines printed; the rest only counted
  std::function<bool()> stop;             // polled; true ends the run after the calls in flight
};

/// Totals over the whole file (this run and the runs it continues).
struct replay_report {
  uint64_t lines = 0;      // lines read, up to the last acknowledged batch
  uint64_t accepted = 0;   // samples the node applied
  uint64_t duplicates = 0; // samples the node had already applied (an earlier run)
  uint64_t rejected = 0;   // samples the node refused (unknown twin, out of range, ...)
  uint64_t bad_lines = 0;  // lines that are not samples
  uint64_t overtaken = 0;  // samples not applied: after an "overloaded" answer a later
                           // batch of their channel was applied first (see the README)
  uint64_t sent_this_run = 0;
  double seconds = 0;      // this run
  bool complete = false;   // the end of the file was reached and acknowledged
  std::string error;       // why the run stopped early; "" when complete or stopped
};

/// Replays `opts.file`; progress goes to `progress` (normally stderr), bad and
/// rejected lines as "FILE:LINE: reason" lines too. Blocks until the file is
/// done, `opts.stop` says stop, or the node stays unreachable.
replay_report run_replay(const replay_options& opts, std::FILE* progress);

/// The default identity of a replayed file: "replay:" + its file name.
std::string replay_source(const std::string& file);

} // namespace twinrt::adapters
