#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <caf/expected.hpp>

#include "twinrt/cluster/etcd_client.hpp"
#include "twinrt/cluster/layout.hpp"

namespace twinrt::cluster {

/// One virtual shard's entry of the shard map in etcd. Its epoch is the
/// mod_revision of the entry: every change makes a larger one, so a node
/// that holds epoch e knows its view is stale when the entry says more, and
/// a write fenced by e fails once anyone else changed the entry.
struct shard_entry {
  std::string owner;                 // the node that accepts writes for the shard
  std::vector<std::string> replicas; // for replication (not used yet)
  std::vector<std::string> in_sync;  // replicas caught up with the owner (not used yet)
  int64_t epoch = 0;                 // mod_revision of the entry; 0: no entry

  bool same_placement(const shard_entry& o) const {
    return owner == o.owner && replicas == o.replicas && in_sync == o.in_sync;
  }
};

/// A condition every fenced write carries: key `key` still has create
/// revision `revision`. The placer's fence is its election key: once its
/// lease expired and another placer was elected, that key is a new one and
/// every write of the old placer fails.
struct fence {
  std::string key;
  int64_t revision = 0;
};

/// The value stored for an entry (JSON: {"owner":..,"replicas":[..],"in_sync":[..]}).
std::string encode_entry(const shard_entry& e);
/// Reads an entry back; a value that does not read is errc::bad_reply naming `key`.
caf::expected<shard_entry> decode_entry(const std::string& value, const std::string& key);

/// The whole shard map: virtual shard -> entry (shards without an entry are
/// absent), read at one revision.
struct shard_snapshot {
  int64_t revision = 0;
  std::map<uint32_t, shard_entry> entries;
};
caf::expected<shard_snapshot> load_shards(etcd::client& etcd, const layout& keys);

/// Changes shard `shard`'s entry to `next` if its epoch is still `epoch`
/// (0: only if it has no entry) and, with a fence, if the fence holds. The
/// new epoch; errc::conflict saying what changed when a condition failed
/// ("shard 17 has epoch 57, not 42"; "placer fence ... no longer holds"):
/// nothing is written then.
caf::expected<int64_t> cas_shard(etcd::client& etcd, const layout& keys, uint32_t shard,
                                 const shard_entry& next, int64_t epoch,
                                 const std::optional<fence>& f = std::nullopt);

/// The cluster's number of virtual shards: written by the first caller, and
/// every later caller must agree (errc::bad_argument otherwise, naming both).
caf::expected<uint32_t> agree_shard_count(etcd::client& etcd, const layout& keys, uint32_t count);

} // namespace twinrt::cluster
