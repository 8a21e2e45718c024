#pragma once

// Shared by the actors of one node; not part of the runtime's public API.

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include <caf/expected.hpp>

#include "twinrt/runtime/catalog.hpp"
#include "twinrt/runtime/change_feed.hpp"
#include "twinrt/runtime/actor_interfaces.hpp"
#include "twinrt/runtime/config.hpp"
#include "twinrt/runtime/internal/view_cache.hpp"
#include "twinrt/runtime/probe.hpp"
#include "twinrt/runtime/query.hpp"
#include "twinrt/runtime/sharding.hpp"
#include "twinrt/runtime/shard_directory.hpp"
#include "twinrt/runtime/storage.hpp"
#include "twinrt/twins/model.hpp"

namespace twinrt::runtime::internal {

/// Everything the actors of one node share. Owned by `node`; actors hold a
/// shared_ptr so that it outlives the last of them.
struct node_context {
  node_config cfg;
  std::unique_ptr<storage> db;
  catalog cat;
  runtime_probe* probe = nullptr; // never null once the node runs
  change_feed feed;
  view_cache views; // on when the node serves RPC
  query_index index; // every twin's kind, place, health and values; see query.hpp

  // This node's shard actors: the ones a broadcast (model reload,
  // passivation, shutdown) goes to. Which one owns a twin is the
  // directory's answer, never worked out from this list.
  std::vector<shard_actor> shards;
  std::unique_ptr<shard_directory> directory; // set once the shards run
  std::atomic<uint64_t> next_alert_id{1}; // set past the stored ones at start-up

  // The node's wall clock (node_config::wall_clock).
  int64_t now_ms() const { return cfg.wall_clock->now_ms(); }

  twins::model_set::model_ptr model_of(std::string_view kind) const {
    std::shared_lock<std::shared_mutex> g(models_mtx);
    return models.find(kind);
  }

  mutable std::shared_mutex models_mtx;
  twins::model_set models;
};

/// Sorts twins into one group per owning actor, asking the directory once
/// per virtual shard met rather than once per twin: how a batch or a list of
/// twins becomes one message per owner. For one batch or list at a time, on
/// one thread.
class owner_groups {
public:
  explicit owner_groups(const shard_directory& dir)
    : dir_(dir), group_of_shard_(dir.virtual_shards(), unresolved) {
  }

  /// The group (0, 1, ... in the order owners are first met) of the actor
  /// that owns twin `id`, or the directory's error naming the twin.
  caf::expected<uint32_t> group_of(std::string_view id) {
    auto shard = dir_.shard_of(id);
    auto& g = group_of_shard_[shard];
    if (g != unresolved)
      return g;
    auto owner = dir_.owner_of(id);
    if (!owner)
      return std::move(owner.error());
    auto i = std::find(owners_.begin(), owners_.end(), *owner);
    g = static_cast<uint32_t>(i - owners_.begin());
    if (i == owners_.end())
      owners_.push_back(std::move(*owner));
    return g;
  }

  /// The owner of each group, by group number.
  const std::vector<shard_actor>& owners() const { return owners_; }

private:
  static constexpr uint32_t unresolved = std::numeric_limits<uint32_t>::max();
  const shard_directory& dir_;
  std::vector<uint32_t> group_of_shard_;
  std::vector<shard_actor> owners_;
};

} // namespace twinrt::runtime::internal
