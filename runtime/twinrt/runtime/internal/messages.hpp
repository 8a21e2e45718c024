#pragma once

// Messages between the gate, shards and twin actors of one node. Local only
// (never serialized): node-to-node traffic uses Cap'n Proto records.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/expected.hpp>

#include "twinrt/runtime/event.hpp"
#include "twinrt/runtime/node.hpp"
#include "twinrt/twins/rollup.hpp"
#include "twinrt/twins/sample.hpp"
#include "twinrt/twins/twin_state.hpp"

namespace twinrt::runtime::internal {

using apply_atom = caf::atom_constant<caf::atom("apply")>;
using contrib_atom = caf::atom_constant<caf::atom("contrib")>;
using drop_atom = caf::atom_constant<caf::atom("dropchild")>;
using get_atom = caf::atom_constant<caf::atom("get")>;
using flush_atom = caf::atom_constant<caf::atom("flush")>;
using stale_atom = caf::atom_constant<caf::atom("stale")>;
using reparent_atom = caf::atom_constant<caf::atom("reparent")>;
using passivate_atom = caf::atom_constant<caf::atom("passivate")>;
using model_atom = caf::atom_constant<caf::atom("model")>;
using persist_atom = caf::atom_constant<caf::atom("persist")>;
using committed_atom = caf::atom_constant<caf::atom("committed")>;
using commit_failed_atom = caf::atom_constant<caf::atom("commitfail")>;
using sweep_atom = caf::atom_constant<caf::atom("sweep")>;
using ingest_atom = caf::atom_constant<caf::atom("ingest")>;
using watch_atom = caf::atom_constant<caf::atom("watch")>;
using active_atom = caf::atom_constant<caf::atom("active")>;
using delete_atom = caf::atom_constant<caf::atom("delete")>;
using ack_atom = caf::atom_constant<caf::atom("ackalert")>;
using alert_atom = caf::atom_constant<caf::atom("alertcheck")>;

using sample_batch = std::shared_ptr<const std::vector<twins::sample>>;

/// Callbacks of the non-blocking node API, run by the bridge actor.
using get_done = std::function<void(caf::expected<twin_view>)>;
using ingest_done = std::function<void(caf::expected<twins::ingest_result>)>;
using get_done_ptr = std::shared_ptr<get_done>;
using ack_done = std::function<void(caf::expected<alert_record>)>;
using ack_done_ptr = std::shared_ptr<ack_done>;

/// Events and alert records that a change of a twin produced; stored in the
/// same write batch as the twin's state.
struct twin_outbox {
  std::vector<event> events;
  std::vector<alert_record> alerts;
  bool empty() const { return events.empty() && alerts.empty(); }
};
using ingest_done_ptr = std::shared_ptr<ingest_done>;

/// Gate -> shard, shard -> twin: the samples of `batch` at `indices`.
struct apply_request {
  sample_batch batch;
  std::vector<uint32_t> indices;
  int64_t now_ms = 0;
};

/// Twin -> shard: what was applied and the state to store with it.
struct apply_reply {
  uint32_t number = 0;
  uint32_t model_version = 0;
  std::vector<uint32_t> applied;
  std::vector<twins::rejection> rejected;
  std::string state_bytes;
  int64_t last_data_ms = 0; // twins::data_since_ms: data age counts from it
  twins::health_status status = twins::health_status::ok;
  twin_outbox out;
};

/// Child -> parent (through the parent's shard).
struct contrib_msg {
  std::string parent;
  std::string child;
  uint64_t version = 0;
  twins::contribution value;
  int64_t oldest_ts_ms = 0; // oldest sample folded in since the last push
};

/// Twin -> shard: store this state (changes not caused by a batch).
struct persist_msg {
  std::string id;
  uint32_t number = 0;
  std::string state_bytes;
  int64_t last_data_ms = 0; // twins::data_since_ms: data age counts from it
  twins::health_status status = twins::health_status::ok;
  twin_outbox out;
  std::function<void()> durable; // optional: runs once the write is durable
};

/// Twin -> shard, answering passivate: whether it quit, and its last state.
struct passivate_reply {
  bool quit = false;
  twins::twin_state state;
};

/// Node -> shard at start-up: what the shard must watch for staleness.
struct watch_entry {
  std::string id;
  int64_t last_data_ms = 0; // twins::data_since_ms: data age counts from it
  twins::health_status status = twins::health_status::ok;
};
using watch_list = std::vector<watch_entry>;

} // namespace twinrt::runtime::internal

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(twinrt::runtime::internal::sample_batch)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(twinrt::runtime::internal::get_done_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(twinrt::runtime::internal::ack_done_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(twinrt::runtime::internal::ingest_done_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(twinrt::runtime::internal::apply_request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(twinrt::runtime::internal::apply_reply)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(twinrt::runtime::internal::contrib_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(twinrt::runtime::internal::persist_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(twinrt::runtime::internal::passivate_reply)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(twinrt::runtime::internal::watch_list)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(twinrt::runtime::twin_view)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(twinrt::twins::ingest_result)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(twinrt::runtime::twin_meta)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<twinrt::runtime::twin_meta>)
