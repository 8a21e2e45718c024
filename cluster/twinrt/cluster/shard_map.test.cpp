#include "twinrt/cluster/shard_map.hpp"

#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "twinrt/runtime/shard_directory.hpp"

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

TEST(ShardMap, ThreeMembersShare256ShardsEvenlyAndAFourthTakesAQuarter) {
  shard_map three(256, {"n1", "n2", "n3"});
  for (auto& member : three.members()) {
    auto n = three.shards_of(member).size(); // 85.3 each on average
    EXPECT_GT(n, 64u) << member;
    EXPECT_LT(n, 107u) << member;
  }
  shard_map four(256, {"n1", "n2", "n3", "n4"});
  auto moved = shard_map::moves(three, four).size(); // 64 on average
  EXPECT_GT(moved, 48u);
  EXPECT_LT(moved, 80u);
  EXPECT_EQ(moved, four.shards_of("n4").size());
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

// Ids shaped like real ones, of varied depth and length.
std::vector<std::string> twin_ids(int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i)
    out.push_back("acme/plant-" + std::to_string(i % 13) + "/line-" + std::to_string(i % 7)
                  + (i % 3 == 0 ? "/robot-" : "/press-") + std::to_string(i));
  return out;
}

TEST(ShardMap, TwinIdsMapToTheShardTheRuntimeUses) {
  // The virtual shard of a twin is the runtime's answer, from the directory
  // a node routes with; the map's owner of the twin must be the owner of
  // that shard. The directory's actors play no part here.
  constexpr uint32_t virtual_shards = 256;
  runtime::local_shard_directory runtime_dir(virtual_shards, {runtime::shard_actor{}});
  shard_map map(virtual_shards, {"node-a", "node-b", "node-c", "node-d", "node-e"});
  std::map<std::string, int> per_member;
  for (auto& id : twin_ids(10'000)) {
    auto shard = runtime_dir.shard_of(id);
    auto expected = map.owner(shard);
    ASSERT_TRUE(expected.has_value()) << "virtual shard " << shard;
    ASSERT_EQ(map.owner_of(id), expected)
      << id << ": the runtime puts it in virtual shard " << shard << ", owned by " << *expected;
    ++per_member[*expected];
  }
  // The check can fail: the twins spread over every member, so a map that
  // hashed ids its own way would name another owner for most of them.
  EXPECT_EQ(per_member.size(), map.members().size());
  for (auto& [member, n] : per_member)
    EXPECT_GT(n, 1'000) << member << " owns only " << n << " of 10,000 twins";
}

} // namespace twinrt::cluster
