#include "twinrt/cluster/shard_map.hpp"

#include <algorithm>

#include "twinrt/runtime/sharding.hpp"

namespace twinrt::cluster {

namespace {

uint64_t score(const std::string& member, uint32_t shard) {
  // Mix the shard into the member's hash; FNV alone is weak on short
  // suffixes, so finish with a 64-bit avalanche (splitmix64).
  uint64_t z = runtime::stable_hash(member) ^ (0x9e3779b97f4a7c15ull * (shard + 1ull));
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

} // namespace

shard_map::shard_map(uint32_t shard_count, std::vector<std::string> members)
  : shard_count_(shard_count), members_(std::move(members)) {
  std::sort(members_.begin(), members_.end());
  members_.erase(std::unique(members_.begin(), members_.end()), members_.end());
  owners_.resize(shard_count_);
  for (uint32_t s = 0; s < shard_count_ && !members_.empty(); ++s) {
    auto best = members_.front();
    auto best_score = score(best, s);
    for (auto& m : members_) {
      auto sc = score(m, s);
      if (sc > best_score || (sc == best_score && m < best))
        best = m, best_score = sc;
    }
    owners_[s] = best;
  }
}

std::optional<std::string> shard_map::owner(uint32_t shard) const {
  if (members_.empty() || shard >= shard_count_)
    return std::nullopt;
  return owners_[shard];
}

std::optional<std::string> shard_map::owner_of(const std::string& id) const {
  if (shard_count_ == 0)
    return std::nullopt;
  return owner(runtime::shard_of(id, shard_count_));
}

std::vector<uint32_t> shard_map::shards_of(const std::string& member) const {
  std::vector<uint32_t> out;
  for (uint32_t s = 0; s < shard_count_; ++s)
    if (!members_.empty() && owners_[s] == member)
      out.push_back(s);
  return out;
}

std::map<uint32_t, std::pair<std::string, std::string>>
shard_map::moves(const shard_map& before, const shard_map& after) {
  std::map<uint32_t, std::pair<std::string, std::string>> out;
  auto n = std::min(before.shard_count_, after.shard_count_);
  for (uint32_t s = 0; s < n; ++s) {
    auto a = before.owner(s).value_or("");
    auto b = after.owner(s).value_or("");
    if (a != b)
      out[s] = {a, b};
  }
  return out;
}

} // namespace twinrt::cluster
