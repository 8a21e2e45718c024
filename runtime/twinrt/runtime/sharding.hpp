#pragma once

#include <cstdint>
#include <string_view>

namespace twinrt::runtime {

/// The number of virtual shards of new data unless `[storage] virtual_shards`
/// says otherwise, and the largest allowed (shard_directory.hpp).
inline constexpr uint32_t default_virtual_shards = 256;
inline constexpr uint32_t max_virtual_shards = 65536;

/// A 64-bit hash of a twin id: the same on every node and build, so that
/// every node of a cluster puts an id in the same shard. FNV-1a's steps, but
/// its offset basis is 1469598103934665603, a digit short of FNV's
/// 14695981039346656037: the values are not the published FNV-1a ones. Kept
/// as it is, since stored history keys and placement depend on it.
inline uint64_t stable_hash(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

/// The shard (0 .. shard_count-1) that owns twin `id`: with the virtual
/// shard count of the data, the virtual shard every node and the cluster's
/// shard map agree on. Route through shard_directory, not this.
inline uint32_t shard_of(std::string_view id, uint32_t shard_count) {
  return static_cast<uint32_t>(stable_hash(id) % shard_count);
}

} // namespace twinrt::runtime
