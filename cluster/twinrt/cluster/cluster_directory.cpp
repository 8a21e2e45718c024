#include "twinrt/cluster/cluster_directory.hpp"

#include <stdexcept>

#include "twinrt/runtime/errc.hpp"

namespace twinrt::cluster {

cluster_directory::cluster_directory(uint32_t virtual_shards, std::string node,
                                     std::vector<runtime::shard_actor> local_actors,
                                     std::shared_ptr<const shard_view> view)
  : shard_directory(virtual_shards),
    node_(std::move(node)),
    actors_(std::move(local_actors)),
    view_(std::move(view)) {
  if (actors_.empty() || !view_)
    throw std::invalid_argument("cluster_directory: no shard actors or no shard view");
}

caf::expected<runtime::shard_actor> cluster_directory::owner(uint32_t shard) const {
  using runtime::errc;
  auto name = "virtual shard " + std::to_string(shard);
  if (shard >= virtual_shards())
    return runtime::make_error(errc::unavailable, name + " does not exist (there are "
                                                    + std::to_string(virtual_shards()) + ")");
  auto e = view_->entry(shard);
  if (!e)
    return runtime::make_error(errc::unavailable, name + " has no owner in the shard map yet; retry later");
  if (e->owner != node_)
    return runtime::make_error(errc::unavailable, name + " is owned by node " + e->owner + " (epoch "
                                                    + std::to_string(e->epoch)
                                                    + "), not by this node " + node_);
  return actors_[shard % actors_.size()];
}

int64_t cluster_directory::epoch(uint32_t shard) const {
  auto e = view_->entry(shard);
  return e ? e->epoch : 0;
}

} // namespace twinrt::cluster
