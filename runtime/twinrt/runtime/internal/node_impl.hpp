#pragma once

// The inside of a node, shared by the files that implement node.hpp:
// node.cpp (the node's life and the ingest path), node_start.cpp (start,
// models and recovery), node_twins.cpp (creating, moving and deleting twins,
// alerts) and node_reads.cpp (gets, queries, history, watches). Not part of
// the runtime's public API.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>

#include "twinrt/runtime/internal/actors.hpp"
#include "twinrt/runtime/internal/context.hpp"
#include "twinrt/runtime/messages.hpp"
#include "twinrt/runtime/metrics.hpp"
#include "twinrt/runtime/node.hpp"
#include "twinrt/runtime/rpc_server.hpp"

namespace twinrt::runtime {

struct node::impl {
  caf::actor_system_config caf_cfg;
  std::unique_ptr<caf::actor_system> sys;
  std::shared_ptr<internal::node_context> ctx;
  runtime_probe probe;
  ingest_gate_actor gate;
  caf::actor bridge; // asks actors for callers that must not block
  std::unique_ptr<metrics_server> metrics; // reset first: it reads the node
  std::unique_ptr<rpc_server> rpc;         // likewise: it calls the node
  std::unique_ptr<event_router> router;    // reads storage: stops before it closes
  std::vector<std::string> changed_at_start; // kinds whose version the start changed

  ~impl();

  // Puts the models of `files` in force and stores them, all or none
  // (node_start.cpp). At start, a stored newer version wins silently.
  model_load take_models(const twins::model_files& files, bool at_start);

  // Twins of `kind` whose stored latest values the model now in force would
  // refuse: the new version narrowed a range below what they hold.
  void warn_out_of_range(const std::string& kind, std::vector<std::string>& warnings);

  // Brings every parent's stored contribution up to date with its children's
  // stored states, deepest parents first, and lists what the shards must
  // watch for staleness (send_watches). After a crash this makes the rollups
  // exact again before the first sample is taken. Returns the storage
  // failure that stopped it; empty when done.
  std::string recover(watch_list& watches);

  // Tells the shard actors owning the twins of `watches` to watch them, one
  // message per owner. A twin whose shard has no owner now is left to the
  // owner that takes the shard, which learns it from storage.
  void send_watches(watch_list watches);

  template <class T, class Handle, class... Ts>
  caf::expected<T> ask(const Handle& dest, Ts&&... xs) {
    caf::scoped_actor self{*sys};
    caf::expected<T> out{caf::error{}};
    self->request(dest, caf::infinite, std::forward<Ts>(xs)...)
      .receive([&](T& x) { out = std::move(x); },
               [&](caf::error& e) { out = std::move(e); });
    return out;
  }
};

} // namespace twinrt::runtime
