#pragma once

// The Sparkplug B host application of a node: subscribes to spBv1.0/#, keeps
// one edge_node_session per edge node and turns what they report into twins
// and samples. See the README section "Sparkplug B".

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <caf/error.hpp>

#include "twinrt/adapters/sparkplug_session.hpp"
#include "twinrt/runtime/config.hpp"

namespace twinrt::runtime {
class node;
}

namespace twinrt::adapters::sparkplug {

/// What the adapter did so far.
struct adapter_stats {
  uint64_t messages = 0;           // PUBLISHes handled
  uint64_t samples_accepted = 0;   // durable in the node (metric values and $offline marks)
  uint64_t duplicates = 0;         // already applied (a redelivery, or a birth repeating a value)
  uint64_t twins_created = 0;
  uint64_t twins_moved = 0;        // reparented because the mapping says so
  uint64_t offline_marks = 0;      // twins marked offline (NDEATH, DDEATH)
  uint64_t online_marks = 0;       // twins marked online (NBIRTH, DBIRTH)
  uint64_t rebirths_requested = 0; // NCMD Node Control/Rebirth published
  uint64_t ignored_metrics = 0;    // null, non-numeric and protocol metrics
  uint64_t not_acked = 0;          // QoS 1 messages left unacknowledged: the node failed
  std::array<uint64_t, reason_count + 1> refused{}; // indexed by reason
  uint64_t refused_total() const;
};

/// Feeds a node from Sparkplug B edge nodes through an MQTT broker.
///
/// Births create (or move) the twins the [[sparkplug.devices]] rules map
/// them to, mark them online and apply the metric values they carry; DATA
/// applies values (aliases resolved from the birth); NDEATH and DDEATH mark
/// the twins offline, so their health is stale at once. A sequence gap, or
/// data from an edge node or device without a birth, publishes
/// spBv1.0/{group}/NCMD/{node} with "Node Control/Rebirth" = true.
///
/// Sample identity: source "spb:{group}/{node}[/{device}]", seq = the metric's
/// timestamp in ms (else the payload's): monotone per metric, unlike
/// Sparkplug's seq, which wraps at 256. A redelivered message, or a birth that
/// repeats the last value, is refused by the twin as a duplicate and counted
/// as such; a value older than the last one applied for its channel is too.
///
/// Messages are handled in arrival order on the adapter's own thread; those
/// queued together (up to 256) go to the node as one batch. A QoS 1 message
/// is acknowledged once its samples are durable (or it was refused). Refused input is counted by reason, kept in
/// recent_refusals() and given to the on_refusal callback; nothing of it
/// reaches the node.
class adapter {
public:
  adapter(runtime::node& node, runtime::node_config::sparkplug_settings settings);
  ~adapter(); // stops
  adapter(const adapter&) = delete;
  adapter& operator=(const adapter&) = delete;

  /// Called with each refusal (from the adapter's thread); set before start().
  void on_refusal(std::function<void(const refusal&)> f);

  /// Connects in the background and subscribes. Fails, naming it, on a
  /// broker address that is not HOST:PORT.
  caf::error start();
  void stop();

  bool connected() const;
  /// HOST:PORT of the broker (after start()): `broker`, else the [mqtt] one.
  std::string broker() const;
  adapter_stats stats() const;
  /// The latest refusals (up to 100), oldest first.
  std::vector<refusal> recent_refusals() const;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace twinrt::adapters::sparkplug
