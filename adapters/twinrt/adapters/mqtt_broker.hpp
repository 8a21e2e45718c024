#pragma once
// A Mosquitto broker run as a child process on a free loopback port, for the
// MQTT tests and `twinrt bench mqtt`. Not used by a node in production.

#include <cstdint>
#include <string>

#include <sys/types.h>

namespace twinrt::adapters::mqtt {

struct broker_options {
  std::string executable = "/usr/sbin/mosquitto";
  std::string dir;                  // config, log and persistence go here (must exist)
  bool persistence = false;         // keep sessions and queued messages across a broker restart
  uint32_t max_inflight_messages = 20;  // per client, unacknowledged QoS 1 messages out
  uint32_t max_queued_messages = 1000;  // per client, messages queued beyond those in flight
  uint32_t message_size_limit = 0;  // 0: the broker's default
};

/// Owns the child process; stops it (SIGTERM, then SIGKILL) when destroyed.
class local_broker {
public:
  explicit local_broker(broker_options opts);
  ~local_broker();
  local_broker(const local_broker&) = delete;
  local_broker& operator=(const local_broker&) = delete;

  /// Starts the broker (on the same port when started before) and waits until it accepts
  /// connections. Returns an empty string, or why it failed (naming the executable and the log).
  std::string start();
  void stop();
  uint16_t port() const { return port_; }
  /// The broker's log file.
  std::string log_path() const;

private:
  broker_options opts_;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
};

/// A TCP port on 127.0.0.1 that was free a moment ago.
uint16_t free_loopback_port();

} // namespace twinrt::adapters::mqtt
