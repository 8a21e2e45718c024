#include "twinrt/runtime/shard_directory.hpp"

#include <stdexcept>
#include <string>

#include "twinrt/runtime/errc.hpp"
#include "twinrt/runtime/sharding.hpp"

namespace twinrt::runtime {

shard_directory::shard_directory(uint32_t virtual_shards) : virtual_shards_(virtual_shards) {
  // A caller's bug, not an input: the count comes from storage, checked there.
  if (virtual_shards == 0 || virtual_shards > max_virtual_shards)
    throw std::invalid_argument("shard_directory: " + std::to_string(virtual_shards)
                                + " virtual shards is outside 1.."
                                + std::to_string(max_virtual_shards));
}

shard_directory::~shard_directory() = default;

uint32_t shard_directory::shard_of(std::string_view id) const {
  return runtime::shard_of(id, virtual_shards_);
}

caf::expected<shard_actor> shard_directory::owner_of(std::string_view id) const {
  auto r = owner(shard_of(id));
  if (r)
    return r;
  auto code = code_of(r.error());
  return make_error(code == errc::none ? errc::unavailable : code,
                    "twin " + std::string(id) + ": " + describe(r.error()));
}

local_shard_directory::local_shard_directory(uint32_t virtual_shards,
                                             std::vector<shard_actor> actors)
  : shard_directory(virtual_shards), actors_(std::move(actors)) {
  if (actors_.empty())
    throw std::invalid_argument("local_shard_directory: no shard actors");
}

caf::expected<shard_actor> local_shard_directory::owner(uint32_t shard) const {
  if (shard >= virtual_shards())
    return make_error(errc::unavailable, "virtual shard " + std::to_string(shard)
                                           + " does not exist (there are "
                                           + std::to_string(virtual_shards()) + ")");
  return actors_[shard % actors_.size()];
}

std::unique_ptr<shard_directory> make_local_directory(uint32_t virtual_shards,
                                                      std::vector<shard_actor> local_shards) {
  return std::make_unique<local_shard_directory>(virtual_shards, std::move(local_shards));
}

} // namespace twinrt::runtime
