// twinrt replay: backfills a node's history from a sample file over RPC; and
// twinrt bench replay, which measures it against a node of its own.

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <unistd.h>

#include "commands.hpp"
#include "twinrt/runtime/node.hpp"
#include "twinrt/twins/clock.hpp"

namespace twinrt::app {

int run_replay(adapters::replay_options opts) {
  opts.bar = isatty(STDERR_FILENO) == 1;
  opts.stop = [] { return stop_requested(); };
  auto r = adapters::run_replay(opts, stderr);
  double rate = r.seconds > 0 ? static_cast<double>(r.sent_this_run) / r.seconds : 0;
  std::printf("replay %s: %s after line %llu; %llu accepted, %llu already applied, "
              "%llu rejected, %llu bad lines; this run %llu samples in %.1f s (%.0f samples/s)\n",
              opts.file.c_str(), r.complete ? "complete" : "stopped",
              static_cast<unsigned long long>(r.lines), static_cast<unsigned long long>(r.accepted),
              static_cast<unsigned long long>(r.duplicates),
              static_cast<unsigned long long>(r.rejected),
              static_cast<unsigned long long>(r.bad_lines),
              static_cast<unsigned long long>(r.sent_this_run), r.seconds, rate);
  if (r.overtaken > 0)
    std::printf("replay %s: %llu samples were not applied (overtaken after an overloaded "
                "answer; listed on stderr)\n",
                opts.file.c_str(), static_cast<unsigned long long>(r.overtaken));
  std::fflush(stdout);
  if (!r.error.empty()) {
    std::fprintf(stderr, "twinrt replay: %s\n", r.error.c_str());
    return 3;
  }
  if (!r.complete)
    return 3; // stopped by a signal; the next run continues
  return r.rejected + r.bad_lines + r.overtaken > 0 ? 1 : 0;
}

namespace {

// `machines` machines, `steps` seconds of four channels each, two days old:
// CSV or JSON lines. Returns the number of samples.
uint64_t write_history(const std::string& path, bool json, int machines, int steps) {
  std::ofstream out(path);
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> v(1, 50);
  auto t0 = twins::wall_ms() - 2 * 86'400'000LL;
  const char* channels[] = {"power_kw", "temperature_c", "vibration_mm_s", "parts_total"};
  uint64_t n = 0;
  char buf[256];
  for (int step = 0; step < steps; ++step)
    for (int m = 0; m < machines; ++m)
      for (int c = 0; c < 4; ++c) {
        double value = c == 3 ? step : std::round(v(rng) * 1000) / 1000;
        long long ts = t0 + step * 1000LL;
        if (json)
          std::snprintf(buf, sizeof(buf),
                        "{\"twin\": \"bench/plant/line/m%05d\", \"channel\": \"%s\", \"ts\": %lld, "
                        "\"value\": %g}\n",
                        m, channels[c], ts, value);
        else
          std::snprintf(buf, sizeof(buf), "bench/plant/line/m%05d,%s,%lld,%g\n", m, channels[c], ts,
                        value);
        out << buf;
        ++n;
      }
  return n;
}

} // namespace

int run_bench_replay(const bench_replay_options& opts) {
  namespace fs = std::filesystem;
  scratch_dir scratch("replay");
  const auto& dir = scratch.path;
  auto cfg = opts.node;
  cfg.data_dir = (dir / "data").string();
  cfg.rpc_address = "127.0.0.1:0";
  cfg.rpc_tokens = {{"bench", "bench-secret", "write", ""}};
  int rc = 0;
  {
    auto started = runtime::node::start(cfg);
    if (!started) {
      std::cerr << "bench: " << runtime::describe(started.error()) << "\n";
      return 1;
    }
    auto& n = **started;
    std::vector<runtime::twin_spec> twins{{"bench", "enterprise", ""},
                                          {"bench/plant", "plant", "bench"},
                                          {"bench/plant/line", "line", "bench/plant"}};
    for (int m = 0; m < opts.machines; ++m) {
      char id[64];
      std::snprintf(id, sizeof(id), "bench/plant/line/m%05d", m);
      twins.push_back({id, "machine", "bench/plant/line"});
    }
    if (auto err = n.create(twins)) {
      std::cerr << "bench: " << runtime::describe(err) << "\n";
      return 1;
    }
    int steps = static_cast<int>(opts.samples / (4 * static_cast<uint64_t>(opts.machines)));
    std::printf("replay into a node over loopback RPC: %d machines, %d s of 4 channels each, "
                "2 days old; sync_wal %s\n",
                opts.machines, steps, cfg.sync_wal ? "on" : "off");
    std::printf("  %-28s %10s %10s %12s\n", "file, batch x in flight", "samples", "seconds",
                "samples/s");
    struct run {
      bool json;
      size_t batch, inflight;
    };
    int run_no = 0;
    for (auto r : {run{false, 5'000, 4}, run{false, 5'000, 1}, run{false, 20'000, 4},
                   run{true, 5'000, 4}}) {
      auto file = (dir / (r.json ? "history.jsonl" : "history.csv")).string();
      if (!fs::exists(file))
        write_history(file, r.json, opts.machines, steps);
      adapters::replay_options o;
      o.file = file;
      o.address = n.rpc_address();
      o.token = "bench-secret";
      o.batch = r.batch;
      o.inflight = r.inflight;
      o.restart = true;
      o.source = "bench-run-" + std::to_string(run_no++); // a new source applies the file again
      o.report_every_s = 1e9;
      auto rep = adapters::run_replay(o, stderr);
      if (!rep.error.empty() || !rep.complete) {
        std::cerr << "bench: replay failed: " << rep.error << "\n";
        rc = 1;
        break;
      }
      char what[64];
      std::snprintf(what, sizeof(what), "%s, %zu x %zu", r.json ? "JSON" : "CSV", r.batch,
                    r.inflight);
      std::printf("  %-28s %10llu %10.2f %12.0f\n", what,
                  static_cast<unsigned long long>(rep.sent_this_run), rep.seconds,
                  rep.seconds > 0 ? static_cast<double>(rep.sent_this_run) / rep.seconds : 0);
      std::fflush(stdout);
    }
  }
  return rc;
}

} // namespace twinrt::app
