// twinrt bench rpc: get calls through the whole RPC path beside a trivial
// echo on the same server (the ceiling).

#include <algorithm>
#include <atomic>
#include <optional>
#include <thread>
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
#include "twinrt/twins/clock.hpp"

namespace twinrt::app {

namespace {

namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;
using twins::wall_ms;

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

// One server's figures: echo and get, with 1 and with 64 in flight, while
// the simulated enterprise keeps ingesting (every machine changes each tick).
struct server_figures {
  figures echo[2], get[2]; // [0]: 1 in flight, [1]: 64
  size_t twins = 0;
  std::string address;
};

constexpr int inflights[2] = {1, 64};

std::optional<server_figures> measure_server(runtime::node_config cfg, double seconds) {
  auto started = runtime::node::start(cfg);
  if (!started) {
    std::cerr << "bench: " << runtime::describe(started.error()) << "\n";
    return std::nullopt;
  }
  auto& n = **started;
  adapters::enterprise_layout layout;
  auto twins = adapters::enterprise_twins(layout);
  if (auto err = n.create(twins)) {
    std::cerr << "bench: " << runtime::describe(err) << "\n";
    return std::nullopt;
  }
  std::atomic<bool> stop{false};
  std::thread ingest([&] {
    adapters::simulator sim(layout, 1);
    auto last = wall_ms() - 100;
    while (!stop) {
      auto now = wall_ms();
      n.ingest_waiting(sim.tick(now, now - last));
      last = now;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  std::vector<std::string> ids;
  for (auto& t : twins)
    if (t.kind == "machine")
      ids.push_back(t.id);

  server_figures out;
  out.twins = twins.size();
  out.address = n.rpc_address();
  {
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
    for (int i = 0; i < 2; ++i) {
      out.echo[i] = measure(ws, inflights[i], seconds, echo);
      out.get[i] = measure(ws, inflights[i], seconds, get);
    }
  }
  stop = true;
  ingest.join();
  return out;
}

void print_row(const std::string& what, const figures& f) {
  std::printf("  %-34s %12.0f %10.0f %10.0f\n", what.c_str(), f.calls_per_s, f.p50_us, f.p99_us);
}

} // namespace

int run_bench_rpc(const bench_rpc_options& opts) {
  scratch_dir scratch("rpc");
  const auto& base = scratch.path;
  auto cfg = opts.node;
  cfg.rpc_address = "127.0.0.1:0";
  cfg.rpc_tokens = {{"bench", "bench-secret", "read", ""}};
  // First as a node runs by default; then with the read cache off, so that
  // every get goes through the twin's actor.
  cfg.data_dir = (base / "cached").string();
  auto cached = measure_server(cfg, opts.seconds);
  cfg.data_dir = (base / "uncached").string();
  cfg.rpc_read_cache = 0;
  auto uncached = cached ? measure_server(cfg, opts.seconds) : std::nullopt;
  if (!cached || !uncached)
    return 1;
  std::printf("twinrt bench rpc: %zu twins, simulator ingesting every 100 ms, %.0f s per figure, "
              "loopback\n",
              cached->twins, opts.seconds);
  std::printf("  %-34s %12s %10s %10s\n", "", "calls/s", "p50 us", "p99 us");
  for (int i = 0; i < 2; ++i) {
    auto n = std::to_string(inflights[i]) + " in flight";
    print_row("echo, " + n, cached->echo[i]);
    print_row("get,  " + n, cached->get[i]);
    print_row("get,  " + n + ", read cache off", uncached->get[i]);
    print_row("echo, " + n + ", (that server)", uncached->echo[i]);
  }
  std::printf("\n  ratio get / echo, 1 in flight:  %.2f   (read cache off: %.2f)\n",
              cached->get[0].calls_per_s / cached->echo[0].calls_per_s,
              uncached->get[0].calls_per_s / uncached->echo[0].calls_per_s);
  std::printf("  ratio get / echo, 64 in flight: %.2f   (read cache off: %.2f)\n",
              cached->get[1].calls_per_s / cached->echo[1].calls_per_s,
              uncached->get[1].calls_per_s / uncached->echo[1].calls_per_s);
  std::printf("  get p99 with 1 in flight: %.0f us   (read cache off: %.0f us)\n",
              cached->get[0].p99_us, uncached->get[0].p99_us);
  return 0;
}

} // namespace twinrt::app
