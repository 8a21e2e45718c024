// A node's view of the shard map and the cluster's shard_directory, against a real etcd.

#include <string>

#include <gtest/gtest.h>

#include "twinrt/cluster/cluster_directory.hpp"
#include "twinrt/cluster/errc.hpp"
#include "twinrt/cluster/etcd_process.test.hpp"
#include "twinrt/cluster/shard_table.hpp"
#include "twinrt/cluster/shard_view.hpp"
#include "twinrt/runtime/errc.hpp"

namespace twinrt::cluster {

using namespace testing;

class ShardView : public with_etcd {
protected:
  /// Writes shard `s`'s entry with `owner` over whatever it has; its new epoch.
  int64_t place(const layout& keys, uint32_t s, const std::string& owner) {
    auto now = load_shards(etcd, keys);
    EXPECT_TRUE(now);
    shard_entry e;
    e.owner = owner;
    auto epoch = cas_shard(etcd, keys, s, e, now && now->entries.count(s) ? now->entries[s].epoch : 0);
    EXPECT_TRUE(epoch) << describe(epoch.error());
    return epoch ? *epoch : 0;
  }
};

TEST_F(ShardView, FollowsTheMapAcrossAnEtcdRestart) {
  auto keys = *layout::make("view");
  for (uint32_t s = 0; s < 4; ++s)
    place(keys, s, "n1");
  auto v = shard_view::open(server->endpoint(), "view");
  ASSERT_TRUE(v) << describe(v.error());
  auto& view = **v;
  ASSERT_EQ(view.entries().size(), 4u);
  EXPECT_EQ(view.entry(2)->owner, "n1");
  EXPECT_FALSE(view.entry(4).has_value());

  auto e2 = place(keys, 2, "n2");
  ASSERT_TRUE(eventually([&] { return view.entry(2)->epoch == e2; }));
  EXPECT_EQ(view.entry(2)->owner, "n2");
  EXPECT_GE(view.revision(), e2);

  server->restart();
  auto e3 = place(keys, 3, "n2");
  ASSERT_TRUE(eventually([&] { return view.entry(3)->epoch == e3; })) << server->log();
  EXPECT_EQ(view.entry(3)->owner, "n2");
  ASSERT_TRUE(etcd.del(keys.shard(1)));
  ASSERT_TRUE(eventually([&] { return !view.entry(1).has_value(); }));
  EXPECT_EQ(view.entries().size(), 3u);
  EXPECT_EQ(view.loads(), 1u); // followed, never read whole again
}

TEST_F(ShardView, ReadsTheMapAgainWhenItMissedCompactedRevisions) {
  auto keys = *layout::make("compact");
  place(keys, 0, "n1");
  place(keys, 1, "n1");
  tcp_proxy link(server->client_port()); // the view's way to etcd, which the test cuts
  auto v = shard_view::open(link.endpoint(), "compact");
  ASSERT_TRUE(v) << describe(v.error());
  auto& view = **v;
  link.closed(true);
  link.cut();
  // While the view is cut off, the map changes and etcd forgets the old revisions.
  place(keys, 0, "n2");
  auto e1 = place(keys, 1, "n2");
  ASSERT_TRUE(etcd.post("/v3/kv/compaction", "{\"revision\":\"" + std::to_string(e1) + "\"}"));
  EXPECT_EQ(view.entry(1)->owner, "n1");
  link.closed(false);
  ASSERT_TRUE(eventually([&] { return view.loads() == 2 && view.entry(1)->epoch == e1; }));
  EXPECT_EQ(view.entry(0)->owner, "n2");
  EXPECT_EQ(view.entry(1)->owner, "n2");
  // And it follows again from there.
  auto e0 = place(keys, 0, "n3");
  ASSERT_TRUE(eventually([&] { return view.entry(0)->epoch == e0; }));
}

TEST_F(ShardView, TheClusterDirectoryServesOwnedShardsAndNamesTheOwnerOfOthers) {
  constexpr uint32_t shards = 8;
  auto keys = *layout::make("dir");
  for (uint32_t s = 0; s < shards - 1; ++s) // shard 7 gets no entry
    place(keys, s, s % 2 == 0 ? "n1" : "n2");
  auto v = shard_view::open(server->endpoint(), "dir");
  ASSERT_TRUE(v) << describe(v.error());
  std::shared_ptr<const shard_view> view = std::move(*v);
  // The actors play no part: what is checked is which shards get one.
  cluster_directory dir(shards, "n1", {runtime::shard_actor{}, runtime::shard_actor{}}, view);

  EXPECT_TRUE(dir.owner(0));
  EXPECT_TRUE(dir.owner(6));
  auto other = dir.owner(1);
  ASSERT_FALSE(other);
  EXPECT_EQ(runtime::code_of(other.error()), runtime::errc::unavailable);
  EXPECT_NE(runtime::describe(other.error()).find("virtual shard 1 is owned by node n2 (epoch "),
            std::string::npos)
    << runtime::describe(other.error());
  auto none = dir.owner(7);
  ASSERT_FALSE(none);
  EXPECT_NE(runtime::describe(none.error()).find("virtual shard 7 has no owner"), std::string::npos);
  EXPECT_FALSE(dir.owner(8));
  EXPECT_EQ(dir.epoch(7), 0);

  // A twin in a shard of n2: refused with its name, by the runtime's rules.
  std::string id;
  for (int i = 0; id.empty(); ++i)
    if (dir.shard_of("acme/m-" + std::to_string(i)) == 3)
      id = "acme/m-" + std::to_string(i);
  auto twin = dir.owner_of(id);
  ASSERT_FALSE(twin);
  EXPECT_EQ(runtime::code_of(twin.error()), runtime::errc::unavailable);
  EXPECT_NE(runtime::describe(twin.error()).find("twin " + id), std::string::npos);

  // The map moves shard 3 to this node: the directory follows.
  auto e3 = place(keys, 3, "n1");
  ASSERT_TRUE(eventually([&] { return dir.owner_of(id).engaged(); }));
  EXPECT_EQ(dir.epoch(3), e3);
}

} // namespace twinrt::cluster
