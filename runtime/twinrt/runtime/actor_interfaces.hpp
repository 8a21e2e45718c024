#pragma once

// The typed interfaces of the runtime's actors: what each accepts and what it
// answers, checked by the compiler at every send. Their messages are the
// plain values of messages.hpp, so a handle may point at a remote node.

#include <cstdint>
#include <string>

#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "twinrt/runtime/messages.hpp"

namespace twinrt::runtime {

/// The actor of one live twin; only its shard actor talks to it (and the
/// twin to itself: flush, alert checks).
using twin_actor = caf::typed_actor<
  // Applies samples; the reply holds what to store.
  caf::replies_to<apply_atom, apply_request>::with<apply_reply>,
  // A child's latest contribution.
  caf::reacts_to<contrib_atom, contrib_msg>,
  // Child `std::string` left: its contribution goes from the fold.
  caf::reacts_to<drop_atom, std::string>,
  caf::replies_to<get_atom>::with<twin_view>,
  // Folds children and pushes to the parent (sent to itself, delayed).
  caf::reacts_to<flush_atom>,
  // Data older than the model allows as of `int64_t` (ms).
  caf::reacts_to<stale_atom, int64_t>,
  // The new parent's id (empty: a root now).
  caf::reacts_to<reparent_atom, std::string>,
  // The kind's model changed: apply the version in force.
  caf::reacts_to<model_atom>,
  // Quits when nothing is pending; says whether it did.
  caf::replies_to<passivate_atom>::with<passivate_reply>,
  // A hold time ended: evaluate the alert rules again (sent to itself).
  caf::reacts_to<alert_atom>,
  // Answered with the acknowledged record once it is durable.
  caf::replies_to<ack_atom, ack_request>::with<alert_record>>;

/// A shard actor: owns the twins of the virtual shards the shard_directory
/// gives it, activates and passivates them, and writes what they produce.
using shard_actor = caf::typed_actor<
  // Part of a batch; answered once its writes are durable.
  caf::replies_to<ingest_atom, apply_request>::with<twins::ingest_result>,
  // The committer: commit `uint64_t` is durable / failed with a reason.
  caf::reacts_to<committed_atom, uint64_t>,
  caf::reacts_to<commit_failed_atom, uint64_t, std::string>,
  // A twin's state to store.
  caf::reacts_to<persist_atom, persist_msg>,
  // The same, answered with the record once durable.
  caf::replies_to<persist_atom, persist_msg, alert_record>::with<alert_record>,
  caf::reacts_to<contrib_atom, contrib_msg>,
  // (parent, child): the child left the parent.
  caf::reacts_to<drop_atom, std::string, std::string>,
  // A twin's view, by id.
  caf::replies_to<get_atom, std::string>::with<twin_view>,
  caf::replies_to<ack_atom, ack_request>::with<alert_record>,
  // (twin, new parent).
  caf::reacts_to<reparent_atom, std::string, std::string>,
  // The model of kind `std::string` changed.
  caf::reacts_to<model_atom, std::string>,
  caf::reacts_to<watch_atom, watch_list>,
  // Periodic (sent to itself): staleness and idle passivation.
  caf::reacts_to<sweep_atom>,
  // Passivate every twin that can go, now.
  caf::reacts_to<passivate_atom>,
  // How many twins are live.
  caf::replies_to<active_atom>::with<int64_t>,
  // (twin, kind): the twin was deleted.
  caf::reacts_to<delete_atom, std::string, std::string>>;

/// The ingest gate: splits a batch by owning shard actor and bounds the
/// batches in flight.
using ingest_gate_actor =
  caf::typed_actor<caf::replies_to<ingest_atom, sample_batch>::with<twins::ingest_result>>;

} // namespace twinrt::runtime
