// twinrt bench rpc: get calls through the whole RPC path beside a trivial
// echo on the same server (the ceiling).

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <random>

#include <unistd.h>

#include <capnp/ez-rpc.h>
#include <kj/async.h>

#include "commands.hpp"
#include "rpc.capnp.h"
#include "twinrt/adapters/simulator.hpp"
#include "twinrt/runtime/node.hpp"

namespace twinrt::app {

namespace {

namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

struct figures {
  double calls_per_s = 0;
  double p50_us = 0;
  double p99_us = 0;
};

// Keeps `inflight` calls outstanding on one connection for `seconds`.
template <class Send>
figures measure(kj::WaitScope& ws, int inflight, double seconds, Send send) {
  std::vector<double> lat_us;
  lat_us.reserve(1'000'000);
  uint64_t done = 0;
  auto begin = clock_type::now();
  auto deadline = begin + std::chrono::duration<double>(seconds);
  std::function<kj::Promise<void>()> lane = [&]() -> kj::Promise<void> {
    if (clock_type::now() >= deadline)
      return kj::READY_NOW;
    auto t0 = clock_type::now();
    return send().then([&, t0]() {
      lat_us.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - t0).count());
      ++done;
      return lane();
    });
  };
  kj::Vector<kj::Promise<void>> lanes;
  for (int i = 0; i < inflight; ++i)
    lanes.add(lane());
  kj::joinPromises(lanes.releaseAsArray()).wait(ws);
  double elapsed = std::chrono::duration<double>(clock_type::now() - begin).count();
  figures f;
  f.calls_per_s = static_cast<double>(done) / elapsed;
  if (!lat_us.empty()) {
    std::sort(lat_us.begin(), lat_us.end());
    f.p50_us = lat_us[lat_us.size() / 2];
    f.p99_us = lat_us[static_cast<size_t>(static_cast<double>(lat_us.size() - 1) * 0.99)];
  }
  return f;
}

} // namespace

int run_bench_rpc(const bench_rpc_options& opts) {
  auto base = fs::temp_directory_path() / ("twinrt-bench-rpc-" + std::to_string(::getpid()));
  fs::create_directories(base);
  auto cfg = opts.node;
  cfg.data_dir = (base / "node").string();
  cfg.rpc_address = "127.0.0.1:0";
  cfg.rpc_tokens = {{"bench", "bench-secret", "read", ""}};
  int rc = 0;
  {
    auto started = runtime::node::start(cfg);
    if (!started) {
      std::cerr << "bench: " << runtime::describe(started.error()) << "\n";
      return 1;
    }
    auto& n = **started;
    adapters::enterprise_layout layout;
    if (auto err = n.create(adapters::enterprise_twins(layout))) {
      std::cerr << "bench: " << runtime::describe(err) << "\n";
      return 1;
    }
    adapters::simulator sim(layout, 1);
    auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
    n.ingest_waiting(sim.tick(now - 1000, 1000));
    std::vector<std::string> ids;
    for (auto& t : adapters::enterprise_twins(layout))
      if (t.kind == "machine")
        ids.push_back(t.id);

    capnp::EzRpcClient client(n.rpc_address());
    auto& ws = client.getWaitScope();
    auto login = client.getMain<rpc::Gateway>().loginRequest();
    login.setToken("bench-secret");
    auto reader = login.send().wait(ws).getSession().getReader();
    std::mt19937_64 rng(3);
    auto echo = [&] {
      auto req = reader.echoRequest();
      req.setValue(42);
      return req.send().ignoreResult();
    };
    auto get = [&] {
      auto req = reader.getRequest();
      req.setId(ids[rng() % ids.size()]);
      return req.send().ignoreResult();
    };
    measure(ws, 8, 0.5, get); // warm-up: every machine active
    std::printf("twinrt bench rpc: %zu twins, %.0f s per figure, loopback %s\n",
                adapters::enterprise_twins(layout).size(), opts.seconds, n.rpc_address().c_str());
    std::printf("  %-26s %12s %10s %10s\n", "", "calls/s", "p50 us", "p99 us");
    figures results[2][2];
    int inflights[2] = {1, 64};
    for (int i = 0; i < 2; ++i) {
      results[i][0] = measure(ws, inflights[i], opts.seconds, echo);
      results[i][1] = measure(ws, inflights[i], opts.seconds, get);
      std::printf("  %-26s %12.0f %10.0f %10.0f\n",
                  ("echo, " + std::to_string(inflights[i]) + " in flight").c_str(),
                  results[i][0].calls_per_s, results[i][0].p50_us, results[i][0].p99_us);
      std::printf("  %-26s %12.0f %10.0f %10.0f\n",
                  ("get,  " + std::to_string(inflights[i]) + " in flight").c_str(),
                  results[i][1].calls_per_s, results[i][1].p50_us, results[i][1].p99_us);
    }
    std::printf("\n  ratio get / echo, 1 in flight:  %.2f\n",
                results[0][1].calls_per_s / results[0][0].calls_per_s);
    std::printf("  ratio get / echo, 64 in flight: %.2f\n",
                results[1][1].calls_per_s / results[1][0].calls_per_s);
    std::printf("  get p99 with 1 in flight: %.0f us\n", results[0][1].p99_us);
  }
  fs::remove_all(base);
  return rc;
}

} // namespace twinrt::app
