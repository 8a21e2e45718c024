#pragma once

#include <cstdint>
#include <string_view>

namespace twinrt::runtime {

/// FNV-1a of a twin id: the same on every node and build, so that every node
/// of a cluster puts an id in the same shard.
inline uint64_t stable_hash(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

/// The shard (0 .. shard_count-1) that owns twin `id`.
inline uint32_t shard_of(std::string_view id, uint32_t shard_count) {
  return static_cast<uint32_t>(stable_hash(id) % shard_count);
}

} // namespace twinrt::runtime
