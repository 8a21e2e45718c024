#pragma once
// A small MQTT 3.1.1 client of our own over one TCP connection.
//
// Why not libmosquitto: an incoming QoS 1 message must be acknowledged (PUBACK) only once
// its samples are durable in twinrt, which libmosquitto does not allow (it acks on receipt).
// Here the caller decides when: ack(packet_id). PUBACKs leave in the order the PUBLISHes
// arrived (MQTT 3.1.1 section 4.6), so an ack for a later message waits for the earlier ones.
//
// One I/O thread per client: connects, keeps the connection alive (PINGREQ), reconnects
// with exponential backoff, re-subscribes and re-sends unacknowledged outgoing QoS 1
// PUBLISHes with DUP set. QoS 2 is not supported (subscriptions ask for at most QoS 1).
// Plain TCP, or TLS to an mqtts:// broker (mqtt_transport.hpp).

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "twinrt/adapters/mqtt_transport.hpp"

namespace twinrt::adapters::mqtt {

struct will {
  std::string topic;
  std::string payload;
  uint8_t qos = 0;
  bool retain = false;
};

struct client_options {
  std::string host = "127.0.0.1";
  uint16_t port = 1883;
  std::string client_id;            // required when clean_session is false
  bool clean_session = false;       // false: the broker keeps our subscriptions and unacked QoS 1 messages
  uint16_t keep_alive_s = 30;
  std::string username, password;   // empty: none
  std::optional<will> last_will;
  int64_t reconnect_min_ms = 100, reconnect_max_ms = 5'000;  // backoff between connection attempts
  /// Larger incoming packets are counted (oversized_packets). A PUBLISH is still delivered, with
  /// its payload read past and dropped (message::dropped_bytes says how much), so that the
  /// receiver can refuse and acknowledge it; any other packet that large drops the connection.
  size_t max_packet_bytes = 1 << 20;
  /// Non-null: TLS (make_tls_context), the broker's certificate checked for `host` or the
  /// context's server_name.
  std::shared_ptr<const tls_context> tls;
};

struct message {
  std::string topic;
  std::string payload;
  uint8_t qos = 0;
  bool retain = false;
  bool dup = false;
  uint16_t packet_id = 0;  // 0 for QoS 0
  size_t dropped_bytes = 0; // > 0: the payload was this long, above max_packet_bytes; `payload` is empty
};

/// Counters of one client, for metrics and tests.
struct client_stats {
  uint64_t connects = 0;            // successful CONNACKs
  uint64_t connect_failures = 0;    // refused or failed attempts
  uint64_t messages_in = 0;         // PUBLISH received
  uint64_t acks_sent = 0;           // PUBACK sent
  uint64_t published = 0;           // PUBLISH sent (first sends, not re-sends)
  uint64_t resent = 0;              // QoS 1 PUBLISH re-sent with DUP after a reconnect
  uint64_t oversized_packets = 0;   // incoming packets above max_packet_bytes
  uint64_t protocol_errors = 0;     // malformed packets from the broker (connection dropped)
  uint64_t subscribe_refusals = 0;  // subscription filters the broker refused (SUBACK 0x80)
  std::string last_connect_error;   // why the latest failed attempt failed; "" once connected
};

/// Connects, keeps the connection alive, reconnects with backoff and re-subscribes. One I/O thread of its own.
class client {
public:
  explicit client(client_options opts);
  ~client();                                  // stops
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  void on_message(std::function<void(const message&)> handler);   // set before start(); runs on the I/O thread
  void on_connection(std::function<void(bool connected)> handler); // optional; runs on the I/O thread
  /// Optional; runs on the I/O thread after each failed connection attempt, with why and a
  /// message naming the broker ("TLS handshake with 127.0.0.1:8883 failed: ...").
  void on_connect_failure(std::function<void(connect_failure why, const std::string& message)> handler);
  void subscribe(std::string filter, uint8_t qos);                // remembered; (re)sent on every connect
  void start();
  void stop();
  /// Acknowledges an incoming QoS 1 message. Thread-safe. PUBACKs go out in the order the PUBLISHes arrived
  /// (MQTT 3.1.1 section 4.6), so an ack waits for earlier unacked ones. Acks for messages of an earlier
  /// connection are dropped (the broker re-delivers those after a reconnect).
  void ack(uint16_t packet_id);
  /// Publishes. For QoS 1, `done(true)` runs when the broker's PUBACK arrives; messages not yet acknowledged are
  /// re-sent (DUP) after a reconnect; done(false) only on stop(). For QoS 0, done(true) runs once the packet
  /// is written to the socket (done(false) if not connected then). Thread-safe.
  void publish(std::string topic, std::string payload, uint8_t qos, bool retain = false,
               std::function<void(bool ok)> done = {});
  bool connected() const;
  /// Blocks until connected and every subscription is acknowledged (SUBACK), or the timeout
  /// passes; true when connected and subscribed.
  bool wait_connected(int64_t timeout_ms) const;
  /// Outgoing QoS 1 messages not yet acknowledged by the broker.
  size_t pending_publishes() const;
  client_stats stats() const;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// Options for the [mqtt] broker of `s`: address, TLS (the files loaded now), client id,
/// keep-alive, credentials, a persistent session. Fails naming a TLS file it cannot use.
caf::expected<client_options> options_for(const runtime::node_config::mqtt_settings& s);

/// Logs each failed connection attempt of `c` on stderr as "PREFIX: MESSAGE" (the same
/// message again at most once a minute) and calls `count` (e.g. a metric by reason).
/// Set before c.start().
void report_connect_failures(client& c, std::string prefix,
                             std::function<void(connect_failure why)> count = {});

} // namespace twinrt::adapters::mqtt
