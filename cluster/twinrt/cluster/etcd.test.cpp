// The etcd client, watch and membership against a real etcd process.

#include <algorithm>
#include <atomic>
#include <mutex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "twinrt/cluster/errc.hpp"
#include "twinrt/cluster/etcd_client.hpp"
#include "twinrt/cluster/etcd_process.test.hpp"
#include "twinrt/cluster/etcd_watch.hpp"
#include "twinrt/cluster/membership.hpp"
#include "twinrt/cluster/shard_table.hpp"

namespace twinrt::cluster {

using namespace testing;

class Etcd : public with_etcd {};

TEST_F(Etcd, KeysAndValuesOfAnyBytesRoundTrip) {
  std::string key("kv/\x00\xff/a", 8), value("\x01\x02\x00 \xfe", 5);
  auto rev = etcd.put(key, value);
  ASSERT_TRUE(rev) << describe(rev.error());
  ASSERT_TRUE(etcd.put("kv/b", "").engaged());
  auto got = etcd.get(key);
  ASSERT_TRUE(got) << describe(got.error());
  ASSERT_EQ(got->kvs.size(), 1u);
  EXPECT_EQ(got->kvs[0].key, key);
  EXPECT_EQ(got->kvs[0].value, value);
  EXPECT_EQ(got->kvs[0].mod_revision, *rev);
  EXPECT_EQ(got->kvs[0].version, 1);
  auto all = etcd.get_prefix("kv/");
  ASSERT_TRUE(all);
  ASSERT_EQ(all->kvs.size(), 2u);
  EXPECT_EQ(all->kvs[1].value, "");
  EXPECT_GE(all->revision, *rev);
  EXPECT_EQ(etcd.del_prefix("kv/"), 2);
  EXPECT_TRUE(etcd.get_prefix("kv/")->kvs.empty());
  EXPECT_EQ(etcd.del("kv/b"), 0);
}

TEST_F(Etcd, TransactionsCompareRevisionsAndVersions) {
  using etcd::compare;
  using etcd::op;
  // Create only if absent: the first succeeds, the second runs the failure branch.
  auto first = etcd.txn({compare::absent("txn/a")}, {op::put("txn/a", "1")}, {op::get("txn/a")});
  ASSERT_TRUE(first) << describe(first.error());
  EXPECT_TRUE(first->succeeded);
  auto second = etcd.txn({compare::absent("txn/a")}, {op::put("txn/a", "2")}, {op::get("txn/a")});
  ASSERT_TRUE(second);
  EXPECT_FALSE(second->succeeded);
  ASSERT_EQ(second->ranges.size(), 1u);
  ASSERT_EQ(second->ranges[0].kvs.size(), 1u);
  EXPECT_EQ(second->ranges[0].kvs[0].value, "1");
  EXPECT_EQ(second->ranges[0].kvs[0].create_revision, first->revision);
  // mod_revision and version.
  auto ok = etcd.txn({compare::mod_revision("txn/a", first->revision), compare::version("txn/a", 1)},
                     {op::put("txn/a", "3")});
  ASSERT_TRUE(ok);
  EXPECT_TRUE(ok->succeeded);
  auto stale = etcd.txn({compare::mod_revision("txn/a", first->revision)}, {op::put("txn/a", "4")});
  ASSERT_TRUE(stale);
  EXPECT_FALSE(stale->succeeded);
  EXPECT_EQ(etcd.get("txn/a")->kvs[0].value, "3");
  EXPECT_EQ(etcd.get("txn/a")->kvs[0].version, 2);
}

TEST_F(Etcd, CasOfAShardEntryRefusesAStaleEpoch) {
  auto keys = *layout::make("cas");
  shard_entry e;
  e.owner = "n1";
  auto e1 = cas_shard(etcd, keys, 7, e, 0);
  ASSERT_TRUE(e1) << describe(e1.error());
  EXPECT_EQ(code_of(cas_shard(etcd, keys, 7, e, 0).error()), errc::conflict); // exists already
  e.owner = "n2";
  auto e2 = cas_shard(etcd, keys, 7, e, *e1);
  ASSERT_TRUE(e2) << describe(e2.error());
  EXPECT_GT(*e2, *e1);
  e.owner = "n3";
  auto stale = cas_shard(etcd, keys, 7, e, *e1);
  ASSERT_FALSE(stale);
  EXPECT_EQ(code_of(stale.error()), errc::conflict);
  EXPECT_EQ(describe(stale.error()), "conflict: shard 7 has epoch " + std::to_string(*e2) + ", not "
                                       + std::to_string(*e1));
  // A fence that does not hold refuses the write too, even with the right epoch.
  ASSERT_TRUE(etcd.put("cas-fence", "x").engaged());
  auto fenced = cas_shard(etcd, keys, 7, e, *e2, fence{"cas-fence", 1});
  ASSERT_FALSE(fenced);
  EXPECT_EQ(code_of(fenced.error()), errc::conflict);
  auto now = load_shards(etcd, keys);
  ASSERT_TRUE(now);
  ASSERT_EQ(now->entries.size(), 1u);
  EXPECT_EQ(now->entries[7].owner, "n2");
  EXPECT_EQ(now->entries[7].epoch, *e2);
}

TEST_F(Etcd, AShardEntryThatDoesNotReadIsRefusedByName) {
  auto keys = *layout::make("garbled");
  ASSERT_TRUE(etcd.put(keys.shard(3), "{\"owner\": 5}").engaged());
  auto got = load_shards(etcd, keys);
  ASSERT_FALSE(got);
  EXPECT_EQ(code_of(got.error()), errc::bad_reply);
  EXPECT_NE(describe(got.error()).find(keys.shard(3)), std::string::npos) << describe(got.error());
}

TEST_F(Etcd, LeasesAreGrantedRenewedAndRevoked) {
  auto lease = etcd.grant(30);
  ASSERT_TRUE(lease) << describe(lease.error());
  EXPECT_EQ(lease->ttl_s, 30);
  ASSERT_TRUE(etcd.put("leased/a", "x", lease->id).engaged());
  EXPECT_EQ(etcd.get("leased/a")->kvs[0].lease, lease->id);
  auto renewed = etcd.keepalive(lease->id);
  ASSERT_TRUE(renewed) << describe(renewed.error());
  EXPECT_EQ(*renewed, 30);
  auto left = etcd.time_to_live(lease->id);
  ASSERT_TRUE(left);
  EXPECT_EQ(left->second, 30);
  ASSERT_TRUE(etcd.revoke(lease->id));
  EXPECT_TRUE(etcd.get("leased/a")->kvs.empty()); // revoking deletes the lease's keys
  EXPECT_EQ(code_of(etcd.keepalive(lease->id).error()), errc::lease_expired);
  EXPECT_EQ(code_of(etcd.revoke(lease->id).error()), errc::lease_expired);
  EXPECT_EQ(code_of(etcd.time_to_live(lease->id).error()), errc::lease_expired);
}

TEST_F(Etcd, AnEtcdThatDoesNotAnswerIsUnreachable) {
  auto [port, unused] = free_ports();
  (void) unused;
  etcd::client nobody("http://127.0.0.1:" + std::to_string(port), std::chrono::milliseconds{500});
  auto got = nobody.get("a");
  ASSERT_FALSE(got);
  EXPECT_EQ(code_of(got.error()), errc::unreachable);
  EXPECT_NE(describe(got.error()).find(std::to_string(port)), std::string::npos);
}

TEST_F(Etcd, AWatchFromARevisionDeliversEveryEventInOrderAcrossARestart) {
  auto start = etcd.put("w/0", "0");
  ASSERT_TRUE(start);
  std::mutex mtx;
  std::vector<etcd::watch_event> got;
  etcd::watch w(server->endpoint(), "w/", etcd::prefix_end("w/"), *start,
                [&](const std::vector<etcd::watch_event>& evs) {
                  std::lock_guard<std::mutex> g(mtx);
                  got.insert(got.end(), evs.begin(), evs.end());
                });
  auto count = [&] {
    std::lock_guard<std::mutex> g(mtx);
    return got.size();
  };
  for (int i = 1; i < 10; ++i)
    ASSERT_TRUE(etcd.put("w/" + std::to_string(i % 3), std::to_string(i)).engaged());
  ASSERT_TRUE(etcd.del("w/1").engaged());
  ASSERT_TRUE(eventually([&] { return count() == 11; })) << count();
  ASSERT_TRUE(eventually([&] { return w.established(); }));
  server->restart(); // the stream breaks; the watch connects again
  for (int i = 10; i < 20; ++i)
    ASSERT_TRUE(etcd.put("w/" + std::to_string(i % 3), std::to_string(i)).engaged());
  ASSERT_TRUE(eventually([&] { return count() >= 21; })) << count() << "\n" << server->log();
  EXPECT_GE(w.connects(), 2u);
  std::lock_guard<std::mutex> g(mtx);
  ASSERT_EQ(got.size(), 21u);
  EXPECT_EQ(got[0].current.value, "0");
  for (size_t i = 1; i < got.size(); ++i)
    EXPECT_EQ(got[i].current.mod_revision, got[i - 1].current.mod_revision + 1) << i;
  EXPECT_EQ(got[10].what, etcd::watch_event::kind::del);
  ASSERT_TRUE(got[10].prev.has_value());
  EXPECT_EQ(got[10].prev->value, "7");
  EXPECT_EQ(got[20].current.value, "19");
  ASSERT_TRUE(got[20].prev.has_value());
  EXPECT_EQ(got[20].prev->value, "16");
}

TEST_F(Etcd, AWatchFromACompactedRevisionSaysSoAndStops) {
  auto old = etcd.put("c/a", "1");
  ASSERT_TRUE(old);
  auto now = etcd.put("c/a", "2");
  ASSERT_TRUE(now);
  ASSERT_TRUE(etcd.post("/v3/kv/compaction", "{\"revision\":\"" + std::to_string(*now) + "\"}"));
  std::mutex mtx;
  caf::error error;
  etcd::watch w(server->endpoint(), "c/", etcd::prefix_end("c/"), *old,
                [](const std::vector<etcd::watch_event>&) {},
                [&](const caf::error& e) {
                  std::lock_guard<std::mutex> g(mtx);
                  error = e;
                });
  ASSERT_TRUE(eventually([&] { return !w.running(); }));
  std::lock_guard<std::mutex> g(mtx);
  EXPECT_EQ(code_of(error), errc::compacted) << describe(error);
}

TEST_F(Etcd, AMemberKeyLivesWithItsLeaseAndANodeIdIsLiveOnce) {
  auto keys = *layout::make("members");
  membership::options o{server->endpoint(), "members", "n1", "127.0.0.1:7801", 2};
  auto m = membership::join(o);
  ASSERT_TRUE(m) << describe(m.error());
  auto again = membership::join(o);
  ASSERT_FALSE(again);
  EXPECT_EQ(code_of(again.error()), errc::conflict);
  EXPECT_NE(describe(again.error()).find("node n1 is already a live member"), std::string::npos);
  o.node = "bad/id";
  EXPECT_EQ(code_of(membership::join(o).error()), errc::bad_argument);
  auto listed = list_members(etcd, keys);
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].node, "n1");
  EXPECT_EQ((*listed)[0].address, "127.0.0.1:7801");
  m->reset(); // leaving revokes the lease: the key goes at once
  EXPECT_TRUE(list_members(etcd, keys)->empty());
}

TEST_F(Etcd, AKilledMembersKeyVanishesWhenItsLeaseExpires) {
  temp_dir dir("member");
  auto keys = *layout::make("killed");
  auto alive = [&](const std::string& node) {
    auto ms = list_members(etcd, keys);
    return ms && std::any_of(ms->begin(), ms->end(), [&](auto& m) { return m.node == node; });
  };
  auto n1 = start_member(server->endpoint(), "killed", "n1", {"--ttl", "3"},
                         (dir.path() / "n1.log").string());
  auto n2 = start_member(server->endpoint(), "killed", "n2", {"--ttl", "3"},
                         (dir.path() / "n2.log").string());
  ASSERT_TRUE(eventually([&] { return alive("n1") && alive("n2"); })) << n1->output();
  auto lease = etcd.get(keys.member("n1"))->kvs[0].lease;
  // n2 outlives n1's lease by renewing its own (it joined as early).
  // A node id already live: a clear error, exit code 2.
  auto twin = start_member(server->endpoint(), "killed", "n1", {"--ttl", "3"},
                           (dir.path() / "n1-again.log").string());
  EXPECT_EQ(twin->wait(), 2);
  EXPECT_NE(twin->output().find("conflict: node n1 is already a live member of cluster killed"),
            std::string::npos) << twin->output();
  n1->kill(SIGKILL);
  ASSERT_TRUE(eventually([&] { return !alive("n1"); }));
  EXPECT_TRUE(alive("n2"));
  EXPECT_EQ(code_of(etcd.time_to_live(lease).error()), errc::lease_expired);
  n2->kill(SIGTERM); // leaves: revokes its lease
  EXPECT_FALSE(alive("n2")) << n2->output();
  EXPECT_NE(n2->output().find("member n2 leaves"), std::string::npos) << n2->output();
}

TEST_F(Etcd, AMemberStoppedLongerThanItsLeaseLearnsItIsNoMemberAnyMore) {
  temp_dir dir("stopped");
  auto keys = *layout::make("stopped");
  auto n1 = start_member(server->endpoint(), "stopped", "n1", {"--ttl", "1"},
                         (dir.path() / "n1.log").string());
  ASSERT_TRUE(eventually([&] {
    auto r = etcd.get(keys.member("n1"));
    return r && !r->kvs.empty();
  })) << n1->output();
  n1->kill(SIGSTOP);
  ASSERT_TRUE(eventually([&] {
    auto r = etcd.get(keys.member("n1"));
    return r && r->kvs.empty();
  }));
  n1->kill(SIGCONT);
  EXPECT_EQ(n1->wait(), 3) << n1->output(); // its next renewal finds the lease gone
  EXPECT_NE(n1->output().find("member n1 lost its lease"), std::string::npos) << n1->output();
  EXPECT_TRUE(etcd.get(keys.member("n1"))->kvs.empty()); // and it did not come back by itself
}

TEST_F(Etcd, MembersOutliveAnEtcdOutageLongerThanTheirLease) {
  // etcd gives every lease its full TTL again when it starts: members that
  // renew as soon as it is back stay members, under the same lease.
  auto keys = *layout::make("outage");
  auto m = membership::join({server->endpoint(), "outage", "n1", "", 2});
  ASSERT_TRUE(m) << describe(m.error());
  auto lease = (*m)->lease();
  server->stop();
  // Renewals fail every 1/12 of the TTL while etcd is away: 30 of them span
  // more than the whole lease.
  ASSERT_TRUE(eventually([&] { return (*m)->failed_renewals() >= 30; }));
  server->start();
  ASSERT_TRUE(eventually([&] { return (*m)->failed_renewals() == 0; }));
  EXPECT_TRUE((*m)->alive());
  auto listed = list_members(etcd, keys);
  ASSERT_TRUE(listed) << describe(listed.error());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].lease, lease);
}

} // namespace twinrt::cluster
