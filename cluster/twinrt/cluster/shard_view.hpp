#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <caf/expected.hpp>

#include "twinrt/cluster/etcd_watch.hpp"
#include "twinrt/cluster/layout.hpp"
#include "twinrt/cluster/shard_table.hpp"
#include "twinrt/cluster/worker.hpp"

namespace twinrt::cluster {

/// A node's copy of the shard map, kept in step with etcd: read once, then
/// followed by a watch from the read's revision + 1 (each change once, in
/// order, across reconnects). When etcd compacted the revisions the watch
/// needs, the view reads the map again and watches from there. Readers never
/// wait for etcd: they get the map as of revision(), which only grows.
class shard_view {
public:
  /// Reads the map and starts following it; errc::unreachable and the like
  /// when the first read fails.
  static caf::expected<std::unique_ptr<shard_view>> open(const std::string& endpoint,
                                                         const std::string& cluster);
  ~shard_view();
  shard_view(const shard_view&) = delete;
  shard_view& operator=(const shard_view&) = delete;

  /// Shard `shard`'s entry as of revision(); nullopt when it has none.
  std::optional<shard_entry> entry(uint32_t shard) const;
  /// Every entry as of revision().
  std::map<uint32_t, shard_entry> entries() const;
  /// The store revision the view is complete up to.
  int64_t revision() const;
  /// How often the map was read whole (1 + resyncs after a compaction).
  uint64_t loads() const { return loads_.load(); }

private:
  shard_view(std::string endpoint, layout keys)
    : endpoint_(std::move(endpoint)), keys_(std::move(keys)) {}
  caf::expected<void> load();
  void apply(const std::vector<etcd::watch_event>& events);
  void resync_loop();

  std::string endpoint_;
  layout keys_;
  mutable std::mutex mtx_;
  std::map<uint32_t, shard_entry> entries_;
  int64_t revision_ = 0;
  std::atomic<uint64_t> loads_{0};
  std::unique_ptr<etcd::watch> watch_; // resync thread only, after open
  bool resync_ = false; // the watch stopped: read the map again
  worker worker_;         // reads it again when asked
};

} // namespace twinrt::cluster
