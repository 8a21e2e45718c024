// twinrt edge: subscribe to a local broker, filter, buffer durably and forward
// to a central node (adapters/twinrt/adapters/edge.hpp).

#include <chrono>
#include <cstdio>
#include <thread>

#include "commands.hpp"
#include "twinrt/adapters/edge.hpp"

namespace twinrt::app {

namespace {

void print_stats(const adapters::edge::edge_stats& s) {
  std::printf("twinrt edge: %llu messages (%llu rejected), %llu samples: %llu redelivered, "
              "%llu filtered, %llu buffered; %llu forwarded (%llu refused by central, %llu "
              "already applied there); "
              "%llu queued (%llu bytes), %llu dropped for the disk budget, %llu corrupt; "
              "broker %s, central %s\n",
              static_cast<unsigned long long>(s.messages), static_cast<unsigned long long>(s.rejected),
              static_cast<unsigned long long>(s.samples),
              static_cast<unsigned long long>(s.redelivered),
              static_cast<unsigned long long>(s.filtered), static_cast<unsigned long long>(s.buffered),
              static_cast<unsigned long long>(s.forwarded), static_cast<unsigned long long>(s.refused),
              static_cast<unsigned long long>(s.already_applied),
              static_cast<unsigned long long>(s.queued),
              static_cast<unsigned long long>(s.queued_bytes),
              static_cast<unsigned long long>(s.dropped),
              static_cast<unsigned long long>(s.corrupt), s.broker_connected ? "up" : "down",
              s.central_connected ? "up" : "down");
  std::fflush(stdout);
}

} // namespace

int run_edge(const runtime::node_config& cfg, double duration_s, double report_every_s) {
  std::string error;
  auto edge = adapters::edge::edge_node::start(cfg, error);
  if (!edge) {
    std::fprintf(stderr, "twinrt edge: %s\n", error.c_str());
    return 2;
  }
  std::printf("twinrt edge: '%s' from the broker at %s%s:%u to the central node at %s%s; buffer in %s\n",
              cfg.edge.id.c_str(), cfg.mqtt.tls.enabled ? "mqtts://" : "", cfg.mqtt.host.c_str(),
              static_cast<unsigned>(cfg.mqtt.port), cfg.edge.central.c_str(),
              cfg.edge.central_tls ? " (TLS)" : "", cfg.edge.buffer_dir.c_str());
  std::fflush(stdout);
  auto begin = std::chrono::steady_clock::now();
  auto last = begin;
  while (!stop_requested()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto now = std::chrono::steady_clock::now();
    if (duration_s > 0 && std::chrono::duration<double>(now - begin).count() >= duration_s)
      break;
    if (std::chrono::duration<double>(now - last).count() >= report_every_s) {
      print_stats(edge->stats());
      last = now;
    }
  }
  print_stats(edge->stats());
  edge.reset();
  std::printf("twinrt edge: stopped\n");
  return 0;
}

} // namespace twinrt::app
