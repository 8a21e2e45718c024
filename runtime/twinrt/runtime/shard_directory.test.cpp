#include "twinrt/runtime/shard_directory.hpp"

#include <set>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/actor_cast.hpp>
#include <caf/send.hpp>

#include <gtest/gtest.h>

#include "twinrt/runtime/errc.hpp"

namespace twinrt::runtime {
namespace {

// Actors that stand for shard actors: the directory only hands them out, so
// they answer nothing (cast to the shard interface they do not implement).
class LocalDirectory : public ::testing::Test {
protected:
  LocalDirectory() : sys_(configured()) {
    for (int i = 0; i < 3; ++i)
      actors_.push_back(caf::actor_cast<shard_actor>(
        sys_.spawn([](caf::event_based_actor*) { return caf::behavior{}; })));
  }

  ~LocalDirectory() override {
    for (auto& a : actors_)
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    actors_.clear();
  }

  static caf::actor_system_config& configured() {
    static caf::actor_system_config cfg; // outlives every system built from it
    cfg.set("scheduler.max-threads", size_t{1});
    cfg.set("logger.verbosity", caf::atom("quiet"));
    return cfg;
  }

  caf::actor_system sys_;
  std::vector<shard_actor> actors_;
};

TEST_F(LocalDirectory, VirtualShardIsOwnedByTheActorAtItsNumberModuloTheActors) {
  local_shard_directory dir(8, actors_);
  EXPECT_EQ(dir.virtual_shards(), 8u);
  for (uint32_t v = 0; v < 8; ++v) {
    auto owner = dir.owner(v);
    ASSERT_TRUE(owner) << "virtual shard " << v << ": " << describe(owner.error());
    EXPECT_EQ(*owner, actors_[v % 3]) << "virtual shard " << v;
  }
}

TEST_F(LocalDirectory, ATwinGoesToTheOwnerOfItsVirtualShard) {
  local_shard_directory dir(256, actors_);
  std::set<caf::actor_addr> used;
  for (int i = 0; i < 1000; ++i) {
    auto id = "acme/plant-" + std::to_string(i % 7) + "/m-" + std::to_string(i);
    auto v = dir.shard_of(id);
    EXPECT_EQ(v, shard_of(id, 256)) << id; // the hash the cluster's map uses too
    auto owner = dir.owner_of(id);
    ASSERT_TRUE(owner) << id;
    EXPECT_EQ(*owner, actors_[v % 3]) << id;
    used.insert(owner->address());
  }
  EXPECT_EQ(used.size(), 3u) << "every actor owns some of 1000 twins";
}

TEST_F(LocalDirectory, AShardOutOfRangeHasNoOwnerAndSaysSo) {
  local_shard_directory dir(16, actors_);
  auto owner = dir.owner(16);
  ASSERT_FALSE(owner);
  EXPECT_EQ(code_of(owner.error()), errc::unavailable);
  EXPECT_NE(describe(owner.error()).find("virtual shard 16"), std::string::npos)
    << describe(owner.error());
}

TEST_F(LocalDirectory, MoreActorsThanVirtualShardsLeavesSomeIdle) {
  local_shard_directory dir(2, actors_);
  EXPECT_EQ(*dir.owner(0), actors_[0]);
  EXPECT_EQ(*dir.owner(1), actors_[1]);
}

TEST(ShardDirectory, ItsCountMustBeFromOneTo65536) {
  EXPECT_THROW(make_local_directory(0, {shard_actor{}}), std::invalid_argument);
  EXPECT_THROW(make_local_directory(max_virtual_shards + 1, {shard_actor{}}),
               std::invalid_argument);
  EXPECT_THROW(make_local_directory(16, {}), std::invalid_argument);
}

// A directory that, like a cluster's during a move, has no owner for some
// shards.
class half_owned final : public shard_directory {
public:
  explicit half_owned(shard_actor a) : shard_directory(16), a_(std::move(a)) {}
  caf::expected<shard_actor> owner(uint32_t shard) const override {
    if (shard % 2 == 1)
      return make_error(errc::unavailable,
                        "virtual shard " + std::to_string(shard) + " has no owner now; retry later");
    return a_;
  }

private:
  shard_actor a_;
};

TEST_F(LocalDirectory, ATwinWithoutOwnerGetsAnErrorNamingTheTwinAndItsShard) {
  half_owned dir(actors_[0]);
  std::string orphan;
  for (int i = 0; orphan.empty(); ++i)
    if (auto id = "acme/m-" + std::to_string(i); dir.shard_of(id) % 2 == 1)
      orphan = id;
  auto owner = dir.owner_of(orphan);
  ASSERT_FALSE(owner);
  EXPECT_EQ(code_of(owner.error()), errc::unavailable);
  auto text = describe(owner.error());
  EXPECT_EQ(text, "twin " + orphan + ": virtual shard " + std::to_string(dir.shard_of(orphan))
                    + " has no owner now; retry later");
}

TEST(ShardOf, TheHashOfAnIdIsTheSameEverywhere) {
  // Placement and stored history keys depend on it: a change here moves
  // every twin of an existing cluster. FNV-1a's steps with its own offset
  // basis (sharding.hpp), so not the published FNV-1a values.
  EXPECT_EQ(stable_hash(""), 1469598103934665603ull);
  EXPECT_EQ(stable_hash("a"), 4953267810257967366ull);
  EXPECT_EQ(shard_of("acme/plant-1/line-2/press-7", 256), 255u);
  EXPECT_EQ(shard_of("acme/plant-1/line-2/press-7", 64), 63u);
}

} // namespace
} // namespace twinrt::runtime
