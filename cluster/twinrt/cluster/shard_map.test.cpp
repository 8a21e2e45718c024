#include "twinrt/cluster/shard_map.hpp"

#include <gtest/gtest.h>

namespace twinrt::cluster {

TEST(ShardMap, EveryShardHasExactlyOneOwnerAmongTheMembers) {
  shard_map m(64, {"node-b", "node-a", "node-c"});
  size_t total = 0;
  for (auto& member : m.members())
    total += m.shards_of(member).size();
  EXPECT_EQ(total, 64u);
  for (uint32_t s = 0; s < 64; ++s)
    ASSERT_TRUE(m.owner(s).has_value());
}

TEST(ShardMap, LoadIsSpreadOverMembers) {
  shard_map m(256, {"a", "b", "c", "d"});
  for (auto& member : m.members()) {
    auto n = m.shards_of(member).size();
    EXPECT_GT(n, 32u) << member;
    EXPECT_LT(n, 96u) << member;
  }
}

TEST(ShardMap, AssignmentDoesNotDependOnMemberOrder) {
  shard_map a(32, {"x", "y", "z"});
  shard_map b(32, {"z", "x", "y", "x"});
  EXPECT_TRUE(shard_map::moves(a, b).empty());
}

TEST(ShardMap, AddingAMemberMovesShardsOnlyToIt) {
  shard_map before(128, {"a", "b", "c"});
  shard_map after(128, {"a", "b", "c", "d"});
  auto moves = shard_map::moves(before, after);
  EXPECT_FALSE(moves.empty());
  for (auto& [shard, change] : moves)
    EXPECT_EQ(change.second, "d") << "shard " << shard << " moved between old members";
}

TEST(ShardMap, RemovingAMemberMovesOnlyItsShards) {
  shard_map before(128, {"a", "b", "c"});
  shard_map after(128, {"a", "c"});
  for (auto& [shard, change] : shard_map::moves(before, after))
    EXPECT_EQ(change.first, "b") << "shard " << shard;
  EXPECT_EQ(shard_map::moves(before, after).size(), before.shards_of("b").size());
}

TEST(ShardMap, NoMembersMeansNoOwner) {
  shard_map m(8, {});
  EXPECT_FALSE(m.owner(3).has_value());
  EXPECT_FALSE(m.owner_of("acme/plant-1").has_value());
}

TEST(ShardMap, TwinIdsMapToTheShardTheRuntimeUses) {
  shard_map m(16, {"solo"});
  EXPECT_EQ(m.owner_of("acme/plant-1/line-2"), std::optional<std::string>("solo"));
  EXPECT_EQ(m.shards_of("solo").size(), 16u);
}

} // namespace twinrt::cluster
