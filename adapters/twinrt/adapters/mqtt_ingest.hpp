#pragma once
// The MQTT JSON adapter: subscribes to the topics of `[[mqtt.routes]]`, turns each message
// into samples (mqtt_json.hpp), ingests several messages per node batch and acknowledges
// each QoS 1 message to the broker only once its batch is durable (at least once, end to
// end). A message that cannot be used is rejected with a reason: logged (rate-limited),
// counted (twinrt_mqtt_rejected_total{reason}) and, when `dead_letter_topic` is set,
// published there as JSON {"topic", "reason", "error", "payload"}; it is acknowledged too,
// so a bad message is never re-delivered forever. The adapter keeps going.
//
// Threads: the MQTT client's I/O thread parses and queues each message in one of two
// lanes, chosen by topic; each lane's batch thread calls node::ingest_waiting and
// acknowledges, so two batches are in flight while the messages of one topic (one source
// of sequence numbers) stay in order. The queue is bounded (QoS 1
// messages wait for room, which slows the broker down; QoS 0 messages beyond it are
// dropped and counted as `overloaded`).
//
// Messages that never arrive: when publishers number their messages with "seq", a jump in a
// topic's numbers (sequence_watch in mqtt_json.hpp) is counted
// (twinrt_mqtt_sequence_gaps_total, twinrt_mqtt_sequence_gap_messages_total) and logged
// (rate-limited) with the topic and the missing numbers: a broker that drops QoS 1 messages
// (a full session queue) tells nobody, but shows up here.

#include <cstdint>
#include <memory>
#include <string>

#include <caf/expected.hpp>

#include "twinrt/runtime/config.hpp"

namespace twinrt::runtime {
class node;
} // namespace twinrt::runtime

namespace twinrt::adapters::mqtt {

/// What the adapter did so far (the same numbers as its metrics).
struct ingest_stats {
  uint64_t accepted = 0;   // messages whose samples were all stored
  uint64_t partial = 0;    // messages with some samples refused by the node
  uint64_t duplicate = 0;  // re-deliveries whose samples were all applied before
  uint64_t rejected = 0;   // messages with nothing stored
  uint64_t samples = 0;    // samples stored
  uint64_t dead_letters = 0;
  uint64_t batches = 0;    // node ingests
  uint64_t sequence_gaps = 0;         // jumps in a topic's "seq" (sequence_watch)
  uint64_t sequence_gap_messages = 0; // the numbers those jumps skipped: messages never received
};

class ingest {
public:
  /// Compiles the routes and starts connecting (in the background, with backoff) and
  /// ingesting. Fails with errc::bad_request naming the route when a pattern is wrong.
  /// `n` must outlive the adapter.
  static caf::expected<std::unique_ptr<ingest>>
  start(runtime::node& n, const runtime::node_config::mqtt_settings& settings);

  /// Stops: takes no more messages (those arriving now are not acknowledged, so the broker
  /// re-delivers them to the next session), ingests and acknowledges those already queued,
  /// then disconnects.
  ~ingest();
  ingest(const ingest&) = delete;
  ingest& operator=(const ingest&) = delete;

  bool connected() const;
  /// Blocks until connected and subscribed (the SUBSCRIBE sent), or the timeout passes.
  bool wait_connected(int64_t timeout_ms) const;
  ingest_stats stats() const;

private:
  struct impl;
  explicit ingest(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

} // namespace twinrt::adapters::mqtt
