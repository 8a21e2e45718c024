// twinrt bench sparkplug: Sparkplug B DDATA end to end through a real Mosquitto
// (edge node -> broker -> adapter -> node -> durable in RocksDB).

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "commands.hpp"
#include "twinrt/adapters/mqtt_broker.hpp"
#include "twinrt/adapters/mqtt_client.hpp"
#include "twinrt/adapters/sparkplug.hpp"
#include "twinrt/adapters/sparkplug_adapter.hpp"
#include "twinrt/runtime/node.hpp"
#include "twinrt/twins/clock.hpp"

namespace twinrt::app {

namespace {

namespace fs = std::filesystem;
namespace mqtt = adapters::mqtt;
namespace spb = adapters::sparkplug;
using clock_type = std::chrono::steady_clock;

using twins::wall_ms;

std::string device_name(int d) {
  return "press-" + std::to_string(d);
}

spb::metric value(uint64_t alias, double v, int64_t ts, const char* name = nullptr) {
  spb::metric m;
  if (name) {
    m.name = name;
    m.datatype = static_cast<uint32_t>(spb::data_type::double_);
  }
  m.alias = alias;
  m.timestamp = static_cast<uint64_t>(ts);
  m.value = v;
  return m;
}

} // namespace

int run_bench_sparkplug(const bench_sparkplug_options& opts) {
  auto o = opts;
  o.devices = std::max(1, o.devices);
  scratch_dir scratch("sparkplug", o.keep);
  const auto& base_dir = scratch.path;
  fs::create_directories(base_dir / "broker");

  mqtt::broker_options bo;
  bo.dir = (base_dir / "broker").string();
  bo.max_inflight_messages = 2'000;
  bo.max_queued_messages = static_cast<uint32_t>(o.messages) + 1'000;
  mqtt::local_broker broker(bo);
  if (auto err = broker.start(); !err.empty()) {
    std::cerr << "twinrt bench sparkplug: " << err << "\n";
    return 1;
  }
  auto cfg = o.node;
  cfg.data_dir = (base_dir / "node").string();
  auto started = runtime::node::start(cfg);
  if (!started) {
    std::cerr << "twinrt bench sparkplug: " << runtime::describe(started.error()) << "\n";
    return 1;
  }
  auto& n = **started;
  if (auto err = n.create({{"acme", "enterprise", ""}, {"acme/plant-1", "plant", "acme"}})) {
    std::cerr << "twinrt bench sparkplug: " << runtime::describe(err) << "\n";
    return 1;
  }
  runtime::node_config::sparkplug_settings sp;
  sp.enabled = true;
  sp.broker = "127.0.0.1:" + std::to_string(broker.port());
  sp.client_id = "twinrt-bench-sparkplug";
  runtime::node_config::sparkplug_rule edge_rule;
  edge_rule.device = "";
  edge_rule.twin = "acme/{group}/{node}";
  edge_rule.kind = "line";
  edge_rule.parent = "acme/{group}";
  runtime::node_config::sparkplug_rule device_rule;
  device_rule.twin = "acme/{group}/{node}/{device}";
  device_rule.kind = "machine";
  device_rule.parent = "acme/{group}/{node}";
  device_rule.channels = {{"Temperature", "temperature_c"}, {"Vibration", "vibration_mm_s"},
                          {"Power", "power_kw"}, {"State", "state"}};
  sp.devices = {edge_rule, device_rule};
  spb::adapter adapter(n, sp);
  if (auto err = adapter.start()) {
    std::cerr << "twinrt bench sparkplug: " << runtime::describe(err) << "\n";
    return 1;
  }

  mqtt::client_options eo;
  eo.port = broker.port();
  eo.client_id = "twinrt-bench-edge";
  eo.clean_session = true;
  mqtt::client edge(eo);
  edge.start();
  if (!edge.wait_connected(10'000)) {
    std::cerr << "twinrt bench sparkplug: the edge node did not connect\n";
    return 1;
  }
  auto publish = [&](spb::message_type type, const std::string& device, spb::payload p) {
    spb::topic t{type, "plant-1", "edge-1", device};
    edge.publish(spb::topic_name(t), spb::encode(p), 1);
  };
  const char* names[] = {"Temperature", "Vibration", "Power", "State"};
  auto start_ts = wall_ms() - o.messages - 10; // every timestamp in the past, rising
  uint64_t seq = 0;
  auto births = [&] {
    seq = 0;
    spb::payload nb;
    nb.seq = 0;
    publish(spb::message_type::nbirth, "", nb);
    for (int d = 0; d < o.devices; ++d) {
      spb::payload db;
      db.seq = seq = (seq + 1) % 256;
      for (uint64_t a = 0; a < 4; ++a)
        db.metrics.push_back(value(a, a == 3 ? 1 : 10, start_ts, names[a]));
      publish(spb::message_type::dbirth, device_name(d), db);
    }
  };
  // Births until the adapter has subscribed and created every device's twin.
  auto last = "acme/plant-1/edge-1/" + device_name(o.devices - 1);
  bool born = false;
  for (int tries = 0; tries < 100 && !born; ++tries) {
    births();
    for (int i = 0; i < 20 && !born; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      born = static_cast<bool>(n.get(last));
    }
  }
  if (!born) {
    std::cerr << "twinrt bench sparkplug: the births did not create the twins\n";
    return 1;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  std::printf("Sparkplug B DDATA through Mosquitto on 127.0.0.1:%u: %d messages of 4 metrics "
              "(by alias), QoS 1, %d device twins, sync_wal %s\n",
              static_cast<unsigned>(broker.port()), o.messages, o.devices,
              cfg.sync_wal ? "on" : "off");
  std::fflush(stdout);

  auto before = adapter.stats();
  auto begin = clock_type::now();
  for (int i = 0; i < o.messages; ++i) {
    spb::payload p;
    p.seq = seq = (seq + 1) % 256;
    auto ts = start_ts + 1 + i;
    for (uint64_t a = 0; a < 4; ++a)
      p.metrics.push_back(value(a, a == 3 ? (i % 3) : 10 + (i % 7), ts));
    publish(spb::message_type::ddata, device_name(i % o.devices), std::move(p));
  }
  auto expected = before.samples_accepted + static_cast<uint64_t>(o.messages) * 4;
  while (adapter.stats().samples_accepted < expected
         && std::chrono::duration<double>(clock_type::now() - begin).count() < 300)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  double secs = std::chrono::duration<double>(clock_type::now() - begin).count();
  auto s = adapter.stats();
  auto samples = s.samples_accepted - before.samples_accepted;
  std::printf("  %llu of %d messages durable in %.2f s: %.0f messages/s, %.0f samples/s; "
              "refused %llu, duplicates %llu\n",
              static_cast<unsigned long long>(samples / 4), o.messages, secs,
              static_cast<double>(samples) / 4 / secs, static_cast<double>(samples) / secs,
              static_cast<unsigned long long>(s.refused_total() - before.refused_total()),
              static_cast<unsigned long long>(s.duplicates - before.duplicates));
  return samples == static_cast<uint64_t>(o.messages) * 4 ? 0 : 1;
}

} // namespace twinrt::app
