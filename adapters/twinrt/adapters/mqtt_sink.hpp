#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "twinrt/adapters/mqtt_client.hpp"
#include "twinrt/runtime/events.hpp"

namespace twinrt::adapters {

struct mqtt_sink_options {
  std::string host = "127.0.0.1";
  uint16_t port = 1883;
  std::string topic;          // every event is published here
  std::string client_id;      // e.g. twinrt-sink-<name>
  int64_t timeout_ms = 5'000; // how long one delivery waits for its PUBACKs
  std::shared_ptr<const mqtt::tls_context> tls; // non-null: TLS to an mqtts:// broker
};

/// An event sink that publishes each event (runtime::to_json) with QoS 1 and
/// confirms a batch once the broker acknowledged every event of it (PUBACK).
/// Our MQTT client keeps unacknowledged messages and re-sends them after a
/// reconnect, so a retry of the same batch waits for those instead of
/// publishing again. Owned and called by one router thread.
class mqtt_sink : public runtime::event_sink {
public:
  explicit mqtt_sink(mqtt_sink_options opts);
  ~mqtt_sink() override;

  bool deliver(const std::vector<runtime::event>& events, std::string& error) override;
  void cancel() override;

private:
  struct attempt;
  mqtt_sink_options opts_;
  mqtt::client client_;
  std::mutex mtx_;
  std::shared_ptr<attempt> current_; // the batch whose PUBACKs are awaited
  std::atomic<bool> cancelled_{false};
};

} // namespace twinrt::adapters
