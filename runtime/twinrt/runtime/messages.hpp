#pragma once

// The messages between the ingest gate, the shard actors and the twin actors
// (their typed interfaces: actor_interfaces.hpp). Every one is a plain value
// with an `inspect` overload and a CAF type ID (the block at the end), so the
// same message can go to an actor on another node unchanged; register them
// with add_message_types (below) on every node. Local-only messages that
// carry callbacks live in internal/local_messages.hpp, not here.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/meta/load_callback.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/type_id.hpp>

#include "twinrt/runtime/event.hpp"
#include "twinrt/runtime/twin_view.hpp"
#include "twinrt/twins/rollup.hpp"
#include "twinrt/twins/sample.hpp"
#include "twinrt/twins/twin_state.hpp"

namespace caf {
class actor_system_config;
}

namespace twinrt::runtime {

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

/// The samples of one ingest call, immutable once built. Copies share one
/// vector, so the gate hands each shard the whole batch plus the indices it
/// owns without copying samples; on a wire the samples travel by value.
class sample_batch {
public:
  sample_batch() = default;
  explicit sample_batch(std::vector<twins::sample> samples)
    : samples_(std::make_shared<const std::vector<twins::sample>>(std::move(samples))) {
  }

  const std::vector<twins::sample>& samples() const { return samples_ ? *samples_ : none(); }
  const twins::sample& operator[](size_t i) const { return samples()[i]; }
  size_t size() const { return samples().size(); }

private:
  static const std::vector<twins::sample>& none();
  std::shared_ptr<const std::vector<twins::sample>> samples_;
};

/// Events and alert records that a change of a twin produced; stored in the
/// same write batch as the twin's state.
struct twin_outbox {
  std::vector<event> events;
  std::vector<alert_record> alerts;
  bool empty() const { return events.empty() && alerts.empty(); }
};

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

/// Twin -> shard: store this state (changes not caused by a batch). Sent
/// with an alert_record as a request, the shard answers with that record
/// once the write is durable (how an acknowledgement is answered).
struct persist_msg {
  std::string id;
  uint32_t number = 0;
  std::string state_bytes;
  int64_t last_data_ms = 0; // twins::data_since_ms: data age counts from it
  twins::health_status status = twins::health_status::ok;
  twin_outbox out;
};

/// Caller -> shard -> twin: acknowledge alert `alert` of twin `twin`.
struct ack_request {
  std::string twin;
  uint64_t alert = 0;
  std::string by;
  std::string note;
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

/// Registers every type of this header with `cfg` (by its type ID name),
/// as each node must before its actor system starts.
void add_message_types(caf::actor_system_config& cfg);

// -- inspection ------------------------------------------------------------------

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, sample_batch& x) {
  if constexpr (Inspector::writes_state) {
    std::vector<twins::sample> loaded;
    return f(caf::meta::type_name("sample_batch"), loaded, caf::meta::load_callback([&] {
               x = sample_batch(std::move(loaded));
               return caf::error{};
             }));
  } else {
    return f(caf::meta::type_name("sample_batch"),
             const_cast<std::vector<twins::sample>&>(x.samples()));
  }
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, twin_outbox& x) {
  return f(caf::meta::type_name("twin_outbox"), x.events, x.alerts);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, apply_request& x) {
  return f(caf::meta::type_name("apply_request"), x.batch, x.indices, x.now_ms);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, apply_reply& x) {
  return f(caf::meta::type_name("apply_reply"), x.number, x.model_version, x.applied, x.rejected,
           x.state_bytes, x.last_data_ms, x.status, x.out);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, contrib_msg& x) {
  return f(caf::meta::type_name("contrib_msg"), x.parent, x.child, x.version, x.value,
           x.oldest_ts_ms);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, persist_msg& x) {
  return f(caf::meta::type_name("persist_msg"), x.id, x.number, x.state_bytes, x.last_data_ms,
           x.status, x.out);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, ack_request& x) {
  return f(caf::meta::type_name("ack_request"), x.twin, x.alert, x.by, x.note);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, passivate_reply& x) {
  return f(caf::meta::type_name("passivate_reply"), x.quit, x.state);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, watch_entry& x) {
  return f(caf::meta::type_name("watch_entry"), x.id, x.last_data_ms, x.status);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, twin_meta& x) {
  return f(caf::meta::type_name("twin_meta"), x.id, x.number, x.kind, x.parent);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, twin_view& x) {
  return f(caf::meta::type_name("twin_view"), x.meta, x.children, x.state, x.active);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, event& x) {
  return f(caf::meta::type_name("event"), x.id, x.type, x.twin, x.kind, x.sev, x.ts_ms,
           x.details);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, alert_record& x) {
  return f(caf::meta::type_name("alert_record"), x.id, x.twin, x.kind, x.rule, x.value,
           x.message, x.event, x.sev, x.state, x.raised_ms, x.raised_value, x.acked_ms,
           x.acked_by, x.note, x.cleared_ms, x.cleared_value);
}

} // namespace twinrt::runtime

// The twins' plain data, inspected where CAF finds it (argument-dependent
// lookup); twins/ itself knows nothing of CAF.
namespace twinrt::twins {

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, sample& x) {
  return f(caf::meta::type_name("sample"), x.twin, x.channel, x.ts_ms, x.value, x.source,
           x.seq);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, rejection& x) {
  return f(caf::meta::type_name("rejection"), x.index, x.reason, x.message);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, ingest_result& x) {
  return f(caf::meta::type_name("ingest_result"), x.accepted, x.rejected);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, contribution& x) {
  return f(caf::meta::type_name("contribution"), x.sums, x.counts, x.score_sum, x.score_count,
           x.worst_id, x.worst_status, x.latest_ts_ms);
}

/// A twin's state crosses a wire in its stored encoding (storage.hpp), the
/// one form kept complete, and compatible, as the state grows.
std::string state_to_wire(const twin_state& x);
/// The state in `bytes`, or an error naming what is wrong with them.
caf::error state_from_wire(std::string_view bytes, twin_state& x);

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, twin_state& x) {
  if constexpr (Inspector::writes_state) {
    std::string bytes;
    return f(caf::meta::type_name("twin_state"), bytes,
             caf::meta::load_callback([&] { return state_from_wire(bytes, x); }));
  } else {
    auto bytes = state_to_wire(x);
    return f(caf::meta::type_name("twin_state"), bytes);
  }
}

} // namespace twinrt::twins

CAF_BEGIN_TYPE_ID_BLOCK(twinrt_runtime, caf::first_custom_type_id)
  CAF_ADD_TYPE_ID(twinrt_runtime, (twinrt::runtime::sample_batch))
  CAF_ADD_TYPE_ID(twinrt_runtime, (twinrt::runtime::apply_request))
  CAF_ADD_TYPE_ID(twinrt_runtime, (twinrt::runtime::apply_reply))
  CAF_ADD_TYPE_ID(twinrt_runtime, (twinrt::runtime::contrib_msg))
  CAF_ADD_TYPE_ID(twinrt_runtime, (twinrt::runtime::persist_msg))
  CAF_ADD_TYPE_ID(twinrt_runtime, (twinrt::runtime::ack_request))
  CAF_ADD_TYPE_ID(twinrt_runtime, (twinrt::runtime::passivate_reply))
  CAF_ADD_TYPE_ID(twinrt_runtime, (twinrt::runtime::watch_list))
  CAF_ADD_TYPE_ID(twinrt_runtime, (twinrt::runtime::twin_view))
  CAF_ADD_TYPE_ID(twinrt_runtime, (twinrt::runtime::alert_record))
  CAF_ADD_TYPE_ID(twinrt_runtime, (twinrt::twins::ingest_result))
CAF_END_TYPE_ID_BLOCK(twinrt_runtime)
