#pragma once

// The subcommands of the twinrt binary.

#include <filesystem>
#include <string>
#include <system_error>

#include <unistd.h>

#include "twinrt/adapters/replay.hpp"
#include "twinrt/runtime/config.hpp"

namespace twinrt::app {

/// A fresh directory under the system's temporary directory for one
/// benchmark run ("twinrt-bench-NAME-PID"), removed with everything in it
/// when it goes out of scope, unless `keep`.
struct scratch_dir {
  explicit scratch_dir(const std::string& name, bool keep_it = false)
    : path(std::filesystem::temp_directory_path()
           / ("twinrt-bench-" + name + "-" + std::to_string(::getpid()))),
      keep(keep_it) {
    std::filesystem::create_directories(path);
  }
  ~scratch_dir() {
    std::error_code ec;
    if (!keep)
      std::filesystem::remove_all(path, ec);
  }
  scratch_dir(const scratch_dir&) = delete;
  scratch_dir& operator=(const scratch_dir&) = delete;

  std::filesystem::path path;
  bool keep;
};

struct demo_options {
  runtime::node_config node;
  double duration_s = 0; // 0: until Ctrl-C
  int tick_ms = 200;
  int history_h = 12;    // a new demo first simulates this many hours up to now
  uint64_t seed = 0;     // the simulator's random numbers; 0: from the clock
};

struct bench_options {
  runtime::node_config node;
  int twins = 100'000;
  double seconds = 10;
  int batch = 8'000;
  int producers = 2;
  bool keep = false;
  bool compare_metrics = false; // run with metrics off and on, print both
  int rounds = 1;               // off/on pairs with compare_metrics
  double scrape_interval_s = 1; // while metrics are on; 0: not scraped
};

struct bench_mqtt_options {
  runtime::node_config node;
  int messages = 100'000;
  int machines = 1'000;
  int samples_per_message = 4;
  int inflight = 2'000;        // the broker's max_inflight_messages
  int batch_messages = 2'000;  // the adapter's [mqtt] batch_messages
  bool keep = false;
};

struct bench_sparkplug_options {
  runtime::node_config node;
  int messages = 50'000; // DDATA messages of 4 metrics
  int devices = 100;     // device twins the messages go to
  bool keep = false;
};

struct bench_rpc_options {
  runtime::node_config node;
  double seconds = 3;
};

struct bench_query_options {
  int twins = 1'000'000; // machine twins in the generated fleet
  int iterations = 50;   // runs of each query
  uint64_t seed = 1;
};

int run_demo(const demo_options& opts);
/// The query index on a generated fleet beside a filter over a plain array.
int run_bench_query(const bench_query_options& opts);
int run_bench_rpc(const bench_rpc_options& opts);
int run_bench_mqtt(const bench_mqtt_options& opts);
int run_bench_sparkplug(const bench_sparkplug_options& opts);
int run_node(const runtime::node_config& cfg, double duration_s);
int run_bench_ingest(const bench_options& opts);
/// Replays a sample file into a node; exit code 0 when complete and clean, 1
/// when lines were bad or refused, 3 when it stopped early (continue later).
int run_replay(adapters::replay_options opts);

struct bench_replay_options {
  runtime::node_config node;
  int machines = 100;
  uint64_t samples = 1'000'000; // per file
};
struct bench_chunk_options {
  int points = 3'600; // per series, at 1 Hz
  int chunk = 120;    // points per sealed chunk
  uint64_t seed = 1;
};
/// Prints the history chunk codec's bytes per sample and encode/decode rates
/// next to today's bytes per sample; exit code 1 when a chunk does not
/// decode to what went in.
int run_bench_chunk(const bench_chunk_options& opts);

/// Replays generated files into a node of its own and prints samples/s.
int run_bench_replay(const bench_replay_options& opts);
/// Runs edge mode from cfg.mqtt and cfg.edge until a signal or `duration_s`;
/// prints the edge's counters every `report_every_s`.
int run_edge(const runtime::node_config& cfg, double duration_s, double report_every_s);

/// Set by SIGINT/SIGTERM.
bool stop_requested();
void install_signal_handlers();

} // namespace twinrt::app
