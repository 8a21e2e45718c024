// twinrt bench mqtt: MQTT JSON ingest end to end through a real Mosquitto (publisher ->
// broker -> adapter -> node -> durable in RocksDB), beside what `mosquitto_sub` alone
// receives from the same publisher through the same broker (the ceiling).

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "commands.hpp"
#include "twinrt/adapters/mqtt_broker.hpp"
#include "twinrt/adapters/mqtt_client.hpp"
#include "twinrt/adapters/mqtt_ingest.hpp"
#include "twinrt/runtime/node.hpp"
#include "twinrt/twins/clock.hpp"

extern char** environ;

namespace twinrt::app {

namespace {

namespace fs = std::filesystem;
namespace mqtt = adapters::mqtt;
using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t) {
  return std::chrono::duration<double>(clock_type::now() - t).count();
}

using twins::wall_ms;

struct stream {
  std::vector<std::string> topics, payloads;
  size_t samples = 0;
};

// Message i goes to machine i % machines; its timestamps rise per machine.
stream make_stream(const bench_mqtt_options& o, const std::string& prefix) {
  stream s;
  auto base = wall_ms() - o.messages; // every timestamp in the past
  const char* channels[] = {"vibration_mm_s", "temperature_c", "power_kw", "state"};
  for (int i = 0; i < o.messages; ++i) {
    int m = i % o.machines;
    s.topics.push_back(prefix + "/line-" + std::to_string(m / 50) + "/machine-" + std::to_string(m));
    std::string p = "{\"ts\":" + std::to_string(base + i);
    for (int c = 0; c < o.samples_per_message; ++c)
      p += ",\"" + std::string(channels[c % 4]) + (c >= 4 ? std::to_string(c / 4) : "") + "\":"
           + std::to_string(c % 4 == 3 ? 1 : 1 + (i % 7));
    s.payloads.push_back(p + "}");
    s.samples += static_cast<size_t>(o.samples_per_message);
  }
  return s;
}

// Publishes the stream with QoS 1 as fast as the client takes it; returns when every
// message is handed to the client. `acked` counts the broker's PUBACKs.
void publish_all(mqtt::client& pub, const stream& s, std::atomic<int>& acked) {
  for (size_t i = 0; i < s.topics.size(); ++i)
    pub.publish(s.topics[i], s.payloads[i], 1, false, [&acked](bool ok) {
      if (ok)
        acked.fetch_add(1, std::memory_order_relaxed);
    });
}

mqtt::client_options publisher_options(uint16_t port, const std::string& id) {
  mqtt::client_options o;
  o.port = port;
  o.client_id = id;
  o.clean_session = true;
  return o;
}

struct ceiling_result {
  double seconds = 0;
  bool complete = false;
};

// mosquitto_sub -C N alone on the broker: from the first publish until it has received N.
ceiling_result measure_ceiling(const bench_mqtt_options& o, uint16_t port) {
  auto s = make_stream(o, "ceiling");
  std::string exe = "mosquitto_sub", h = "-h", host = "127.0.0.1", p = "-p",
              port_s = std::to_string(port), q = "-q", one = "1", t = "-t", filter = "ceiling/#",
              c = "-C", count = std::to_string(o.messages), i = "-i", id = "twinrt-bench-ceiling";
  char* argv[] = {exe.data(), h.data(), host.data(), p.data(), port_s.data(), q.data(), one.data(),
                  t.data(), filter.data(), c.data(), count.data(), i.data(), id.data(), nullptr};
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  ceiling_result r;
  if (::posix_spawnp(&pid, exe.c_str(), &fa, nullptr, argv, environ) != 0) {
    posix_spawn_file_actions_destroy(&fa);
    std::cerr << "twinrt bench mqtt: cannot run mosquitto_sub\n";
    return r;
  }
  posix_spawn_file_actions_destroy(&fa);
  std::this_thread::sleep_for(std::chrono::seconds(1)); // subscribed by then (loopback)
  mqtt::client pub(publisher_options(port, "twinrt-bench-ceiling-pub"));
  pub.start();
  pub.wait_connected(10'000);
  std::atomic<int> acked{0};
  auto begin = clock_type::now();
  publish_all(pub, s, acked);
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (seconds_since(begin) > 120) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return r;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  r.seconds = seconds_since(begin);
  r.complete = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  return r;
}

} // namespace

int run_bench_mqtt(const bench_mqtt_options& opts) {
  auto o = opts;
  o.machines = std::max(1, o.machines);
  o.samples_per_message = std::clamp(o.samples_per_message, 1, 64);
  scratch_dir scratch("mqtt", o.keep);
  const auto& base = scratch.path;
  fs::create_directories(base / "broker");

  mqtt::broker_options bo;
  bo.dir = (base / "broker").string();
  bo.max_inflight_messages = static_cast<uint32_t>(o.inflight);
  bo.max_queued_messages = static_cast<uint32_t>(o.messages) + 1000;
  mqtt::local_broker broker(bo);
  if (auto err = broker.start(); !err.empty()) {
    std::cerr << "twinrt bench mqtt: " << err << "\n";
    return 1;
  }

  auto cfg = o.node;
  cfg.data_dir = (base / "node").string();
  auto started = runtime::node::start(cfg);
  if (!started) {
    std::cerr << "twinrt bench mqtt: " << runtime::describe(started.error()) << "\n";
    return 1;
  }
  auto& n = **started;
  std::vector<runtime::twin_spec> specs = {{"acme", "enterprise", ""}, {"acme/plant-1", "plant", "acme"}};
  for (int m = 0; m < o.machines; ++m) {
    auto line = "acme/plant-1/line-" + std::to_string(m / 50);
    if (m % 50 == 0)
      specs.push_back({line, "line", "acme/plant-1"});
    specs.push_back({line + "/machine-" + std::to_string(m), "machine", line});
  }
  if (auto err = n.create(specs)) {
    std::cerr << "twinrt bench mqtt: " << runtime::describe(err) << "\n";
    return 1;
  }
  std::printf("MQTT JSON ingest through Mosquitto on 127.0.0.1:%u: %d messages of %d samples, "
              "QoS 1, %d machine twins, broker max_inflight_messages %d\n",
              static_cast<unsigned>(broker.port()), o.messages, o.samples_per_message, o.machines,
              o.inflight);
  std::fflush(stdout);

  // 1. The ceiling: mosquitto_sub alone.
  auto ceiling = measure_ceiling(o, broker.port());
  if (!ceiling.complete) {
    std::cerr << "twinrt bench mqtt: mosquitto_sub did not receive every message\n";
    return 1;
  }

  // 2. twinrt: publisher -> broker -> adapter -> node, until every sample is durable.
  runtime::node_config::mqtt_settings ms;
  ms.enabled = true;
  ms.port = broker.port();
  ms.client_id = "twinrt-bench";
  ms.batch_messages = static_cast<uint32_t>(o.batch_messages);
  ms.linger_ms = 2;
  ms.routes = {{"bench/{line}/{machine}", "acme/plant-1/{line}/{machine}"}};
  auto adapter = mqtt::ingest::start(n, ms);
  if (!adapter || !(*adapter)->wait_connected(10'000)) {
    std::cerr << "twinrt bench mqtt: the adapter did not connect\n";
    return 1;
  }
  auto s = make_stream(o, "bench");
  mqtt::client pub(publisher_options(broker.port(), "twinrt-bench-pub"));
  pub.start();
  pub.wait_connected(10'000);
  std::atomic<int> acked{0};
  auto& a = **adapter;
  auto begin = clock_type::now();
  publish_all(pub, s, acked);
  double published_s = 0;
  while (true) {
    auto st = a.stats();
    if (published_s == 0 && acked.load() == o.messages)
      published_s = seconds_since(begin);
    if (st.accepted + st.partial + st.rejected + st.duplicate >= static_cast<uint64_t>(o.messages))
      break;
    if (seconds_since(begin) > 300) {
      std::cerr << "twinrt bench mqtt: gave up after 300 s with " << st.accepted << " messages stored\n";
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  double e2e_s = seconds_since(begin);
  auto st = a.stats();
  if (published_s == 0)
    published_s = e2e_s;

  double ceiling_rate = o.messages / ceiling.seconds;
  double rate = o.messages / e2e_s;
  std::printf("mosquitto_sub alone (broker ceiling):        %9.0f messages/s  %9.0f samples/s\n",
              ceiling_rate, ceiling_rate * o.samples_per_message);
  std::printf("twinrt, publisher -> durable in RocksDB:     %9.0f messages/s  %9.0f samples/s\n",
              rate, rate * o.samples_per_message);
  std::printf("ratio twinrt / mosquitto_sub:                %9.2f\n", rate / ceiling_rate);
  std::printf("publisher's PUBACKs from the broker:         %9.0f messages/s\n",
              o.messages / published_s);
  std::printf("node ingests: %llu (%.0f messages each); stored %llu of %zu samples, %llu messages refused\n",
              static_cast<unsigned long long>(st.batches),
              st.batches ? static_cast<double>(o.messages) / static_cast<double>(st.batches) : 0.0,
              static_cast<unsigned long long>(st.samples), s.samples,
              static_cast<unsigned long long>(st.rejected + st.partial));
  return st.samples == s.samples ? 0 : 1;
}

} // namespace twinrt::app
