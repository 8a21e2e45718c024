// The placer and the shard map in etcd, against a real etcd process.

#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "twinrt/cluster/errc.hpp"
#include "twinrt/cluster/etcd_process.test.hpp"
#include "twinrt/cluster/etcd_watch.hpp"
#include "twinrt/cluster/membership.hpp"
#include "twinrt/cluster/placer.hpp"
#include "twinrt/cluster/shard_map.hpp"
#include "twinrt/cluster/shard_table.hpp"

namespace twinrt::cluster {

using namespace testing;

namespace {

// Leases long enough that a loaded machine never lets one expire by chance:
// these tests are about placement, not expiry.
std::unique_ptr<membership> join(const std::string& endpoint, const std::string& cluster,
                                 const std::string& node, int64_t ttl_s = 6) {
  auto m = membership::join({endpoint, cluster, node, "", ttl_s});
  EXPECT_TRUE(m) << describe(m.error());
  return m ? std::move(*m) : nullptr;
}

/// True when every one of `count` shards has an entry naming its rendezvous
/// owner among `members`.
bool placed_by_rendezvous(etcd::client& etcd, const layout& keys, uint32_t count,
                          const std::vector<std::string>& members) {
  auto snap = load_shards(etcd, keys);
  if (!snap || snap->entries.size() != count)
    return false;
  shard_map want(count, members);
  for (auto& [s, e] : snap->entries)
    if (e.owner != want.owner(s))
      return false;
  return true;
}

} // namespace

class Placer : public with_etcd {};

TEST_F(Placer, TheShardMapConvergesAfterAJoinMovingAQuarterAFewAtATime) {
  constexpr uint32_t shards = 256;
  constexpr size_t max_moves = 8;
  auto keys = *layout::make("join");
  auto a = join(server->endpoint(), "join", "a");
  auto b = join(server->endpoint(), "join", "b");
  auto c = join(server->endpoint(), "join", "c");
  auto p = placer::start({server->endpoint(), "join", "a", 6, shards, max_moves,
                          std::chrono::milliseconds{50}});
  ASSERT_TRUE(p) << describe(p.error());
  ASSERT_TRUE(eventually([&] { return placed_by_rendezvous(etcd, keys, shards, {"a", "b", "c"}); }))
    << (*p)->last_round();
  auto before = load_shards(etcd, keys);
  ASSERT_TRUE(before);

  // Every change of an existing entry from here on, grouped by revision.
  std::mutex mtx;
  std::map<int64_t, size_t> changes_per_revision;
  etcd::watch w(server->endpoint(), keys.shards(), etcd::prefix_end(keys.shards()),
                before->revision + 1, [&](const std::vector<etcd::watch_event>& evs) {
                  std::lock_guard<std::mutex> g(mtx);
                  for (auto& e : evs)
                    ++changes_per_revision[e.current.mod_revision];
                });
  auto d = join(server->endpoint(), "join", "d");
  ASSERT_TRUE(eventually([&] {
    return placed_by_rendezvous(etcd, keys, shards, {"a", "b", "c", "d"});
  })) << (*p)->last_round();
  auto after = load_shards(etcd, keys);
  ASSERT_TRUE(after);

  size_t moved = 0;
  for (auto& [s, e] : after->entries) {
    auto& old = before->entries[s];
    if (e.owner == old.owner) {
      EXPECT_EQ(e.epoch, old.epoch) << "shard " << s << " was written without a move";
      continue;
    }
    ++moved;
    EXPECT_EQ(e.owner, "d") << "shard " << s << " moved between old members";
    EXPECT_GT(e.epoch, old.epoch);
  }
  // Rendezvous hashing: the newcomer takes about a quarter.
  EXPECT_EQ(moved, shard_map::moves(shard_map(shards, {"a", "b", "c"}),
                                    shard_map(shards, {"a", "b", "c", "d"}))
                     .size());
  EXPECT_GT(moved, shards / 4 - shards / 16);
  EXPECT_LT(moved, shards / 4 + shards / 16);
  ASSERT_TRUE(eventually([&] {
    std::lock_guard<std::mutex> g(mtx);
    size_t n = 0;
    for (auto& [rev, k] : changes_per_revision)
      n += k;
    return n == moved;
  }));
  std::lock_guard<std::mutex> g(mtx);
  EXPECT_GE(changes_per_revision.size(), moved / max_moves);
  for (auto& [rev, n] : changes_per_revision)
    EXPECT_LE(n, max_moves) << "revision " << rev << " moved " << n << " shards at once";
}

TEST_F(Placer, NothingMovesWhileAnOwnerIsNoLiveMember) {
  constexpr uint32_t shards = 64;
  auto keys = *layout::make("suspect");
  auto a = join(server->endpoint(), "suspect", "a");
  auto b = join(server->endpoint(), "suspect", "b");
  auto p = placer::start({server->endpoint(), "suspect", "a", 6, shards, 4,
                          std::chrono::milliseconds{50}});
  ASSERT_TRUE(p) << describe(p.error());
  ASSERT_TRUE(eventually([&] { return placed_by_rendezvous(etcd, keys, shards, {"a", "b"}); }));
  auto before = load_shards(etcd, keys);
  b.reset(); // b leaves (its shards are still b's); c joins
  auto c = join(server->endpoint(), "suspect", "c");
  auto moves = (*p)->moves();
  auto rounds = (*p)->rounds();
  ASSERT_TRUE(eventually([&] { return (*p)->rounds() >= rounds + 5; }));
  EXPECT_EQ((*p)->moves(), moves);
  EXPECT_NE((*p)->last_round().find("suspect: owner b of"), std::string::npos) << (*p)->last_round();
  auto still = load_shards(etcd, keys);
  ASSERT_TRUE(still);
  for (auto& [s, e] : still->entries)
    EXPECT_EQ(e.epoch, before->entries[s].epoch) << "shard " << s;
  // b back: every shard goes to its rendezvous owner among a, b, c.
  b = join(server->endpoint(), "suspect", "b");
  ASSERT_TRUE(eventually([&] { return placed_by_rendezvous(etcd, keys, shards, {"a", "b", "c"}); }))
    << (*p)->last_round();
}

TEST_F(Placer, ADrainedMemberHandsOverEveryShardAndOnlyItsOwn) {
  constexpr uint32_t shards = 64;
  temp_dir dir("drain");
  auto keys = *layout::make("drain");
  auto a = join(server->endpoint(), "drain", "a");
  auto b = join(server->endpoint(), "drain", "b");
  auto c = join(server->endpoint(), "drain", "c");
  auto p = placer::start({server->endpoint(), "drain", "a", 6, shards, 4,
                          std::chrono::milliseconds{50}});
  ASSERT_TRUE(p) << describe(p.error());
  ASSERT_TRUE(eventually([&] { return placed_by_rendezvous(etcd, keys, shards, {"a", "b", "c"}); }));
  auto before = load_shards(etcd, keys);
  ASSERT_TRUE(before);
  auto cmd = [&](std::vector<std::string> args, const std::string& log) {
    args.insert(args.begin(), {TWINRT_CLUSTER_TOOL});
    auto run = std::make_unique<child_process>(args, (dir.path() / log).string());
    EXPECT_EQ(run->wait(), 0) << run->output();
    return run->output();
  };
  auto said = cmd({"drain", "--etcd", server->endpoint(), "--cluster", "drain", "--node", "c"},
                  "drain.log");
  EXPECT_NE(said.find("node c drains"), std::string::npos) << said;
  ASSERT_TRUE(eventually([&] { return placed_by_rendezvous(etcd, keys, shards, {"a", "b"}); }))
    << (*p)->last_round();
  auto after = load_shards(etcd, keys);
  ASSERT_TRUE(after);
  for (auto& [s, e] : after->entries) {
    auto& old = before->entries[s];
    EXPECT_NE(e.owner, "c") << "shard " << s;
    if (old.owner != "c") {
      EXPECT_EQ(e.epoch, old.epoch) << "shard " << s << " of " << old.owner << " moved";
    }
  }
  auto status = cmd({"status", "--etcd", server->endpoint(), "--cluster", "drain"}, "status.log");
  EXPECT_NE(status.find("  c  shards 0  joined at revision "), std::string::npos) << status;
  EXPECT_NE(status.find("DRAINING"), std::string::npos) << status;
  // c owns nothing: it may leave without making anyone suspect.
  c.reset();
  auto rounds = (*p)->rounds();
  ASSERT_TRUE(eventually([&] { return (*p)->rounds() >= rounds + 3; }));
  EXPECT_EQ((*p)->last_round().find("suspect"), std::string::npos) << (*p)->last_round();
  // Back and no longer draining: it gets its shards again.
  c = join(server->endpoint(), "drain", "c");
  cmd({"drain", "--etcd", server->endpoint(), "--cluster", "drain", "--node", "c", "--undo"},
      "undrain.log");
  ASSERT_TRUE(eventually([&] { return placed_by_rendezvous(etcd, keys, shards, {"a", "b", "c"}); }))
    << (*p)->last_round();
}

TEST_F(Placer, NothingMovesWhileAMembersRenewalIsLate) {
  constexpr uint32_t shards = 64;
  auto keys = *layout::make("late");
  tcp_proxy link(server->client_port()); // b's way to etcd, which the test cuts
  auto a = join(server->endpoint(), "late", "a");
  // b's lease of 10 s: suspect once it has less than 5 s left, gone at 0.
  auto b = join(link.endpoint(), "late", "b", 10);
  auto p = placer::start({server->endpoint(), "late", "a", 6, shards, 4,
                          std::chrono::milliseconds{50}});
  ASSERT_TRUE(p) << describe(p.error());
  ASSERT_TRUE(eventually([&] { return placed_by_rendezvous(etcd, keys, shards, {"a", "b"}); }));
  link.closed(true);
  link.cut();
  ASSERT_TRUE(eventually([&] {
    return (*p)->last_round().find("suspect: member b: its lease has") != std::string::npos;
  })) << (*p)->last_round();
  auto before = load_shards(etcd, keys);
  auto c = join(server->endpoint(), "late", "c");
  auto moves = (*p)->moves();
  auto rounds = (*p)->rounds();
  ASSERT_TRUE(eventually([&] { return (*p)->rounds() >= rounds + 5; }));
  link.closed(false); // b renews again, before its lease runs out
  EXPECT_EQ((*p)->moves(), moves) << (*p)->last_round();
  auto still = load_shards(etcd, keys);
  ASSERT_TRUE(still);
  for (auto& [s, e] : still->entries)
    EXPECT_EQ(e.epoch, before->entries[s].epoch) << "shard " << s;
  ASSERT_TRUE(eventually([&] { return placed_by_rendezvous(etcd, keys, shards, {"a", "b", "c"}); }))
    << (*p)->last_round();
  EXPECT_TRUE(b->alive());
}

TEST_F(Placer, OfTwoCandidatesOneIsElectedAndTheOtherTakesOverWhenItIsKilled) {
  temp_dir dir("placer");
  auto keys = *layout::make("elect");
  std::map<std::string, std::unique_ptr<child_process>> nodes;
  for (std::string n : {"a", "b"})
    nodes[n] = start_member(server->endpoint(), "elect", n,
                            {"--ttl", "3", "--placer", "--shards", "32"},
                            (dir.path() / (n + ".log")).string());
  etcd::kv first;
  ASSERT_TRUE(eventually([&] {
    auto r = etcd.get(keys.placer());
    if (!r || r->kvs.empty())
      return false;
    first = r->kvs[0];
    return true;
  })) << nodes["a"]->output();
  ASSERT_TRUE(nodes.count(first.value)) << first.value;
  std::string other = first.value == "a" ? "b" : "a";
  ASSERT_TRUE(eventually([&] { return placed_by_rendezvous(etcd, keys, 32, {"a", "b"}); }))
    << nodes[first.value]->output();

  nodes[first.value]->kill(SIGKILL);
  etcd::kv second;
  ASSERT_TRUE(eventually([&] {
    auto r = etcd.get(keys.placer());
    if (!r || r->kvs.empty())
      return false;
    second = r->kvs[0];
    return second.value == other;
  })) << nodes[other]->output();
  EXPECT_GT(second.create_revision, first.create_revision);
  EXPECT_TRUE(eventually([&] {
    return nodes[other]->output().find("placer elected: " + other) != std::string::npos;
  })) << nodes[other]->output();
  // What an operator sees: the new placer, one live member, the dead one's shards.
  auto status = std::make_unique<child_process>(
    std::vector<std::string>{TWINRT_CLUSTER_TOOL, "status", "--etcd", server->endpoint(),
                             "--cluster", "elect"},
    (dir.path() / "status.log").string());
  EXPECT_EQ(status->wait(), 0) << status->output();
  auto shown = status->output();
  EXPECT_NE(shown.find("placer: " + other + " (token " + std::to_string(second.create_revision) + ")"),
            std::string::npos) << shown;
  EXPECT_NE(shown.find("members: 1\n  " + other + "  shards "), std::string::npos) << shown;
  EXPECT_NE(shown.find("  " + first.value + "  shards "), std::string::npos) << shown;
  EXPECT_NE(shown.find("NOT LIVE"), std::string::npos) << shown;
  EXPECT_NE(shown.find("shard map: 32 entries"), std::string::npos) << shown;
  // The killed placer's fence no longer holds: its writes are refused.
  auto snap = load_shards(etcd, keys);
  ASSERT_TRUE(snap);
  auto entry = snap->entries[0];
  entry.owner = "x";
  auto stale = cas_shard(etcd, keys, 0, entry, entry.epoch, fence{keys.placer(), first.create_revision});
  ASSERT_FALSE(stale);
  EXPECT_EQ(code_of(stale.error()), errc::conflict);
  auto fenced = place_once(etcd, keys, 32, fence{keys.placer(), first.create_revision}, 4);
  ASSERT_FALSE(fenced);
  EXPECT_NE(describe(fenced.error()).find("another placer leads"), std::string::npos);
  // The survivor's own fence holds.
  auto ok = place_once(etcd, keys, 32, fence{keys.placer(), second.create_revision}, 4);
  ASSERT_TRUE(ok) << describe(ok.error());
}

TEST_F(Placer, AClusterKeepsTheShardCountItWasGiven) {
  auto keys = *layout::make("count");
  ASSERT_EQ(agree_shard_count(etcd, keys, 256), 256u);
  ASSERT_EQ(agree_shard_count(etcd, keys, 256), 256u);
  auto other = agree_shard_count(etcd, keys, 64);
  ASSERT_FALSE(other);
  EXPECT_EQ(describe(other.error()), "bad argument: cluster count has 256 virtual shards, not 64");
}

} // namespace twinrt::cluster
