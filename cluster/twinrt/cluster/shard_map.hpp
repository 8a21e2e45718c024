#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace twinrt::cluster {

/// Which member node owns which shard. Assignment is by rendezvous hashing:
/// each shard goes to the member with the highest hash of (member, shard),
/// so adding or removing a member moves only the shards it gains or loses.
/// Plain data: the owner decides when the membership changes.
class shard_map {
public:
  shard_map(uint32_t shard_count, std::vector<std::string> members);

  uint32_t shard_count() const { return shard_count_; }
  const std::vector<std::string>& members() const { return members_; }

  /// The member owning `shard`; nullopt when there are no members.
  std::optional<std::string> owner(uint32_t shard) const;
  /// The member owning the shard of twin `id`: the virtual shard that
  /// runtime::shard_of gives, as every node's shard_directory does (with
  /// shard_count() the data's virtual shard count).
  std::optional<std::string> owner_of(const std::string& id) const;
  /// The shards a member owns, ascending.
  std::vector<uint32_t> shards_of(const std::string& member) const;

  /// Shards whose owner differs between two maps of the same shard count:
  /// shard -> (old owner, new owner). What a hand-off has to move.
  static std::map<uint32_t, std::pair<std::string, std::string>>
  moves(const shard_map& before, const shard_map& after);

private:
  uint32_t shard_count_;
  std::vector<std::string> members_;
  std::vector<std::string> owners_; // by shard
};

} // namespace twinrt::cluster
