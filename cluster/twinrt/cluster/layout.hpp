#pragma once

#include <cstdint>
#include <string>

#include <caf/expected.hpp>

namespace twinrt::cluster {

/// Where a cluster keeps its metadata in etcd, all under /twinrt/<cluster>/:
///
///   members/<node>        one per live node, bound to the node's lease
///   placer                the elected placer's node id, bound to its lease
///   shard_count           the number of virtual shards, written once
///   shards/<00017>        per virtual shard: owner, replicas, in-sync set
///   drain/<node>          the placer moves every shard away from the node
///
/// Several clusters can share one etcd; a node of one never reads another's keys.
class layout {
public:
  /// Refuses a cluster name that is not 1-64 letters, digits, '-', '_', '.'.
  static caf::expected<layout> make(const std::string& cluster);

  const std::string& cluster() const { return cluster_; }
  const std::string& root() const { return root_; }
  std::string members() const { return root_ + "members/"; }
  std::string member(const std::string& node) const { return members() + node; }
  std::string placer() const { return root_ + "placer"; }
  std::string shard_count() const { return root_ + "shard_count"; }
  std::string shards() const { return root_ + "shards/"; }
  std::string drains() const { return root_ + "drain/"; }
  std::string drain(const std::string& node) const { return drains() + node; }
  /// Zero-padded so that the keys sort in shard order.
  std::string shard(uint32_t s) const;
  /// The shard of a key under shards(); -1 when it is not one.
  int64_t shard_of_key(const std::string& key) const;

private:
  std::string cluster_, root_;
};

/// Refuses a node id that is not 1-64 letters, digits, '-', '_', '.':
/// "node id 'a/b' has the byte '/' (...)". `what` names the input.
caf::expected<void> check_name(const std::string& name, const char* what);

} // namespace twinrt::cluster
