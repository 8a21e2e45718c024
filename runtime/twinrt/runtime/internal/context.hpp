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

#include <caf/actor.hpp>

#include "twinrt/runtime/catalog.hpp"
#include "twinrt/runtime/change_feed.hpp"
#include "twinrt/runtime/config.hpp"
#include "twinrt/runtime/internal/view_cache.hpp"
#include "twinrt/runtime/probe.hpp"
#include "twinrt/runtime/query.hpp"
#include "twinrt/runtime/sharding.hpp"
#include "twinrt/runtime/storage.hpp"
#include "twinrt/twins/model.hpp"

namespace twinrt::runtime::internal {

using runtime::stable_hash;

int64_t now_ms();

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

  std::vector<caf::actor> shards;
  std::atomic<uint64_t> next_alert_id{1}; // set past the stored ones at start-up

  twins::model_set::model_ptr model_of(std::string_view kind) const {
    std::shared_lock<std::shared_mutex> g(models_mtx);
    return models.find(kind);
  }

  const caf::actor& shard_for(std::string_view id) const {
    return shards[stable_hash(id) % shards.size()];
  }

  mutable std::shared_mutex models_mtx;
  twins::model_set models;
};

} // namespace twinrt::runtime::internal
