#pragma once

// Shared by the MQTT tests: a broker in a temp dir, a small plant of twins, a collector
// of messages, and running the mosquitto command-line clients.

#include <mutex>
#include <string>
#include <vector>

#include <spawn.h>
#include <sys/wait.h>

#include "support.hpp"
#include "twinrt/adapters/mqtt_broker.hpp"
#include "twinrt/adapters/mqtt_client.hpp"

extern char** environ;

namespace twinrt::testing {

/// Twins for MQTT tests: acme -> plant-1 -> line-1 -> machine-01..03, acme -> warehouse-1.
inline std::vector<runtime::twin_spec> mqtt_plant() {
  return {{"acme", "enterprise", ""},
          {"acme/plant-1", "plant", "acme"},
          {"acme/plant-1/line-1", "line", "acme/plant-1"},
          {"acme/plant-1/line-1/machine-01", "machine", "acme/plant-1/line-1"},
          {"acme/plant-1/line-1/machine-02", "machine", "acme/plant-1/line-1"},
          {"acme/plant-1/line-1/machine-03", "machine", "acme/plant-1/line-1"},
          {"acme/warehouse-1", "warehouse", "acme"}};
}

/// The routes of the MQTT tests.
inline std::vector<runtime::node_config::mqtt_route> mqtt_routes() {
  return {{"plants/{plant}/lines/{line}/machines/{machine}/telemetry", "acme/{plant}/{line}/{machine}"},
          {"warehouses/{warehouse}/movements", "acme/{warehouse}"}};
}

/// Runs a program (searched in PATH) to its end; returns its exit status, -1 if it did not run.
inline int run_program(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid;
  if (::posix_spawnp(&pid, argv[0], nullptr, nullptr, argv.data(), environ) != 0)
    return -1;
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/// mosquitto_pub of one QoS 1 message.
inline int mosquitto_pub(uint16_t port, const std::string& topic, const std::string& payload) {
  return run_program({"mosquitto_pub", "-h", "127.0.0.1", "-p", std::to_string(port), "-q", "1",
                      "-t", topic, "-m", payload});
}

/// Collects the messages of a subscription (acknowledging each at once).
class collector {
public:
  collector(uint16_t port, const std::string& id, const std::string& filter)
    : client_(options(port, id)) {
    client_.on_message([this](const adapters::mqtt::message& m) {
      {
        std::lock_guard<std::mutex> g(mtx_);
        got_.push_back(m);
      }
      client_.ack(m.packet_id);
    });
    client_.subscribe(filter, 1);
    client_.start();
  }
  static adapters::mqtt::client_options options(uint16_t port, const std::string& id) {
    adapters::mqtt::client_options o;
    o.port = port;
    o.client_id = id;
    o.clean_session = true;
    o.keep_alive_s = 5;
    o.reconnect_min_ms = 50;
    o.reconnect_max_ms = 500;
    return o;
  }
  std::vector<adapters::mqtt::message> messages() {
    std::lock_guard<std::mutex> g(mtx_);
    return got_;
  }
  size_t size() {
    std::lock_guard<std::mutex> g(mtx_);
    return got_.size();
  }
  adapters::mqtt::client& client() { return client_; }

private:
  std::mutex mtx_;
  std::vector<adapters::mqtt::message> got_;
  adapters::mqtt::client client_;
};

} // namespace twinrt::testing
