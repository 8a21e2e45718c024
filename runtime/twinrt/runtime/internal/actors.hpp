#pragma once

#include <memory>
#include <optional>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include "twinrt/runtime/actor_interfaces.hpp"
#include "twinrt/runtime/internal/context.hpp"

namespace twinrt::runtime::internal {

/// Spawns the actor of one twin for `shard`, the shard actor that holds it
/// (its writes go there). Its state comes from `preset` when given (a twin
/// passivated a moment ago whose last write may not be durable yet), else
/// from storage, else it starts empty.
twin_actor spawn_twin(caf::actor_system& sys, std::shared_ptr<node_context> ctx,
                      shard_actor shard, twin_meta meta,
                      std::optional<twins::twin_state> preset);

/// Spawns shard actor number `index` of this node; it owns the twins of the
/// virtual shards that ctx->directory gives it. It starts running with its
/// first message: set ctx->directory before sending one.
shard_actor spawn_shard(caf::actor_system& sys, std::shared_ptr<node_context> ctx,
                        size_t index);

/// Spawns the ingest gate: splits batches by owning shard actor (one part
/// each, as ctx->directory says) and bounds the batches in flight.
ingest_gate_actor spawn_gate(caf::actor_system& sys, std::shared_ptr<node_context> ctx);

/// Spawns the bridge: asks the gate or a shard on behalf of callers outside
/// the actor system that must not block (the RPC event loop), and runs their
/// callback with the answer (internal/local_messages.hpp). One long-lived
/// actor instead of one per call; untyped, since its messages never leave
/// this process.
caf::actor spawn_bridge(caf::actor_system& sys);

} // namespace twinrt::runtime::internal
