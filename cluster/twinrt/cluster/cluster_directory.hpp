#pragma once

#include <memory>
#include <string>
#include <vector>

#include "twinrt/cluster/shard_view.hpp"
#include "twinrt/runtime/shard_directory.hpp"

namespace twinrt::cluster {

/// The runtime's shard_directory on a cluster member: the owner of a virtual
/// shard is whoever the shard map (a shard_view, followed from etcd) names.
/// A shard this node owns is served by its local shard actor v % actors (as
/// on one node); any other shard answers runtime::errc::unavailable naming
/// its owner and epoch, until routing to other nodes exists. Answers from
/// the view's copy, never waiting for etcd.
class cluster_directory final : public runtime::shard_directory {
public:
  cluster_directory(uint32_t virtual_shards, std::string node,
                    std::vector<runtime::shard_actor> local_actors,
                    std::shared_ptr<const shard_view> view);

  caf::expected<runtime::shard_actor> owner(uint32_t shard) const override;

  /// The epoch of the map entry the last answer for `shard` would use (0: none).
  int64_t epoch(uint32_t shard) const;

private:
  std::string node_;
  std::vector<runtime::shard_actor> actors_;
  std::shared_ptr<const shard_view> view_;
};

} // namespace twinrt::cluster
