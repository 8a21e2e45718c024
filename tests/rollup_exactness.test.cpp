// Promise 2: after ingest stops, every parent equals the exact fold of its
// children, whatever the order, redeliveries and moves in between.

#include <map>
#include <random>
#include <set>

#include "support.hpp"
#include "twinrt/twins/rollup.hpp"
#include "twinrt/twins/twin_state.hpp"

namespace twinrt {
namespace {

using testing::eventually;
using twins::contribution;
using twins::sample;

struct tree {
  std::vector<runtime::twin_spec> specs;
  std::vector<std::string> machines, vehicles, warehouses, depots;
};

tree make_tree() {
  tree t;
  t.specs.push_back({"acme", "enterprise", ""});
  for (int p = 1; p <= 3; ++p) {
    auto plant = "acme/plant-" + std::to_string(p);
    t.specs.push_back({plant, "plant", "acme"});
    for (int l = 1; l <= 4; ++l) {
      auto line = plant + "/line-" + std::to_string(l);
      t.specs.push_back({line, "line", plant});
      for (int m = 1; m <= 15; ++m) {
        auto id = line + "/m-" + std::to_string(m);
        t.specs.push_back({id, "machine", line});
        t.machines.push_back(id);
      }
    }
  }
  for (int w = 1; w <= 4; ++w) {
    auto id = "acme/warehouse-" + std::to_string(w);
    t.specs.push_back({id, "warehouse", "acme"});
    t.warehouses.push_back(id);
  }
  t.specs.push_back({"acme/fleet", "fleet", "acme"});
  for (int d = 1; d <= 2; ++d) {
    auto id = "acme/fleet/depot-" + std::to_string(d);
    t.specs.push_back({id, "depot", "acme/fleet"});
    t.depots.push_back(id);
  }
  for (int v = 1; v <= 40; ++v) {
    auto id = "acme/fleet/v-" + std::to_string(v);
    t.specs.push_back({id, "vehicle", t.depots[(v - 1) % 2]});
    t.vehicles.push_back(id);
  }
  return t;
}

// What the test itself knows from what it sent, independent of the node.
struct expectation {
  std::map<std::pair<std::string, std::string>, std::pair<int64_t, double>> latest; // by ts
  std::map<std::string, std::map<std::string, int64_t>> stock;                   // warehouse -> sku
  std::set<std::pair<std::string, uint64_t>> applied_seqs; // (twin/channel, seq)

  void sent(const sample& s, bool accepted) {
    if (!accepted)
      return;
    auto slash = s.channel.find('/');
    if (slash != std::string::npos) {
      auto kind = s.channel.substr(0, slash);
      auto sku = s.channel.substr(slash + 1);
      auto units = static_cast<int64_t>(s.value);
      stock[s.twin][sku] += kind == "pick" ? -units : units;
      return;
    }
    auto& l = latest[{s.twin, s.channel}];
    if (s.ts_ms >= l.first)
      l = {s.ts_ms, s.value};
  }

  double value(const std::string& twin, const std::string& channel) const {
    auto i = latest.find({twin, channel});
    return i == latest.end() ? 0.0 : i->second.second;
  }
};

class RollupExactness : public ::testing::Test {
protected:
  testing::temp_dir dir{"rollup"};
  std::unique_ptr<runtime::node> node = testing::start_node(testing::test_config(dir.str()));
  tree t = make_tree();
  expectation expect;

  void SetUp() override {
    ASSERT_TRUE(node);
    ASSERT_FALSE(node->create(t.specs));
  }

  void send(std::vector<sample> batch) {
    auto r = node->ingest_waiting(batch);
    ASSERT_TRUE(r) << runtime::describe(r.error());
    std::set<uint32_t> refused;
    for (auto& rej : r->rejected) {
      refused.insert(rej.index);
      // The only refusals this workload provokes are redeliveries.
      ASSERT_EQ(rej.reason, twins::reject_reason::duplicate_sequence) << rej.message;
    }
    for (uint32_t i = 0; i < batch.size(); ++i)
      expect.sent(batch[i], refused.count(i) == 0);
  }

  // Every check of exactness; returns the first difference found, or "".
  std::string first_difference() {
    // Each parent is the fold of its children (none of the parents in the
    // built-in models has channels of its own).
    for (auto& m : node->twins()) {
      if (node->get(m.id)->children == 0)
        continue;
      auto expected = testing::fold_of_children(*node, m.id);
      auto actual = node->get(m.id)->state.own;
      if (expected != actual)
        return "parent " + m.id + " is not the fold of its children";
    }
    // Stock per warehouse and in total, to the unit, from the test's tally.
    std::map<std::string, int64_t> total;
    for (auto& w : t.warehouses) {
      auto v = node->get(w);
      std::map<std::string, int64_t> want;
      for (auto& [sku, units] : expect.stock[w])
        if (units != 0)
          want[sku] = units, total[sku] += units;
      if (v->state.stock != want)
        return "stock of " + w + " differs from what was sent";
    }
    auto root = node->get("acme")->state.own;
    for (auto& [sku, units] : total) {
      auto i = root.sums.find("stock/" + sku);
      if (i == root.sums.end() || i->second != static_cast<double>(units))
        return "enterprise stock of " + sku + " is not " + std::to_string(units);
    }
    // Power and road counts at the top, from the test's own latest values.
    double power = 0;
    int on_road = 0;
    for (auto& id : t.machines)
      power += expect.value(id, "power_kw");
    for (auto& id : t.vehicles) {
      power += expect.value(id, "power_kw");
      on_road += expect.value(id, "state") == 1;
    }
    for (auto& id : t.warehouses)
      power += expect.value(id, "power_kw");
    auto p = root.sums.count("power_kw") ? root.sums.at("power_kw") : 0.0;
    if (std::abs(p - power) > 1e-6 * std::max(1.0, power))
      return "enterprise power " + std::to_string(p) + " kW, sent " + std::to_string(power);
    auto r = root.sums.count("count/on_road") ? root.sums.at("count/on_road") : 0.0;
    if (r != on_road)
      return "vehicles on the road " + std::to_string(r) + ", sent " + std::to_string(on_road);
    // Every twin with telemetry is counted once in the enterprise's health.
    int64_t counted = 0;
    for (auto n : root.counts)
      counted += n;
    auto leaves = static_cast<int64_t>(t.machines.size() + t.vehicles.size() + t.warehouses.size());
    if (counted != leaves)
      return "enterprise counts " + std::to_string(counted) + " twins, not " + std::to_string(leaves);
    // Each depot counts exactly the vehicles now under it.
    for (auto& d : t.depots) {
      int64_t n = 0;
      auto depot = node->get(d);
      for (auto c : depot->state.own.counts)
        n += c;
      if (n != static_cast<int64_t>(depot->children))
        return "depot " + d + " counts " + std::to_string(n) + " vehicles";
    }
    return "";
  }
};

TEST_F(RollupExactness, ParentsEqualTheFoldOfChildrenAfterRandomIngestRedeliveryAndMoves) {
  std::mt19937_64 rng(20261125);
  std::uniform_real_distribution<double> u(0, 1);
  const int64_t base = twins::wall_ms() - 3'600'000; // an hour ago, one ms per step
  uint64_t seq = 0;
  std::vector<std::vector<sample>> sent;
  for (int round = 0; round < 60; ++round) {
    std::vector<sample> batch;
    int64_t ts = base + round * 1000;
    for (int k = 0; k < 200; ++k) {
      double r = u(rng);
      // Out of order: a fifth of the samples carry a timestamp from an
      // earlier round.
      int64_t when = u(rng) < 0.2 ? ts - 1000 * static_cast<int64_t>(1 + u(rng) * 5) + k : ts + k;
      if (r < 0.5) {
        auto& id = t.machines[static_cast<size_t>(u(rng) * t.machines.size())];
        batch.push_back({id, "power_kw", when, std::round(u(rng) * 400) / 8, "", 0});
        batch.push_back({id, "vibration_mm_s", when, u(rng) * 9, "", 0});
        batch.push_back({id, "state", when, static_cast<double>(static_cast<int>(u(rng) * 4)), "", 0});
      } else if (r < 0.75) {
        auto& id = t.vehicles[static_cast<size_t>(u(rng) * t.vehicles.size())];
        batch.push_back({id, "power_kw", when, std::round(u(rng) * 800) / 8, "", 0});
        batch.push_back({id, "state", when, static_cast<double>(static_cast<int>(u(rng) * 3)), "", 0});
        batch.push_back({id, "battery_pct", when, u(rng) * 100, "", 0});
      } else {
        auto& id = t.warehouses[static_cast<size_t>(u(rng) * t.warehouses.size())];
        auto sku = "SKU-" + std::to_string(1 + static_cast<int>(u(rng) * 12));
        auto kind = u(rng) < 0.5 ? "receipt/" : u(rng) < 0.7 ? "pick/" : "adjust/";
        double units = std::string(kind) == "adjust/" ? std::round(u(rng) * 20 - 10)
                                                      : 1 + std::round(u(rng) * 50);
        batch.push_back({id, kind + sku, when, units, "wms", ++seq});
        if (u(rng) < 0.3)
          batch.push_back({id, "power_kw", when, std::round(u(rng) * 80), "", 0});
      }
    }
    send(batch);
    sent.push_back(batch);
    // Redelivery: an earlier batch again, as a broker would after a reconnect.
    if (round % 7 == 6)
      send(sent[static_cast<size_t>(u(rng) * sent.size())]);
    // Moves: a vehicle changes depot now and then.
    if (round % 10 == 5) {
      auto& v = t.vehicles[static_cast<size_t>(u(rng) * t.vehicles.size())];
      auto now_under = node->get(v)->meta.parent;
      auto other = now_under == t.depots[0] ? t.depots[1] : t.depots[0];
      ASSERT_FALSE(node->reparent(v, other));
    }
  }
  std::string diff;
  EXPECT_TRUE(eventually([&] { return (diff = first_difference()).empty(); }))
    << "after quiescence: " << diff;
}

TEST_F(RollupExactness, RedeliveredBatchChangesNothing) {
  std::vector<sample> batch{{t.warehouses[0], "receipt/SKU-1", twins::wall_ms() - 1000, 25, "erp", 1},
                            {t.warehouses[0], "pick/SKU-1", twins::wall_ms() - 900, 5, "erp", 2}};
  send(batch);
  ASSERT_TRUE(eventually([&] { return first_difference().empty(); }));
  auto before = node->get(t.warehouses[0])->state;
  auto again = node->ingest(batch);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->accepted, 0u);
  ASSERT_EQ(again->rejected.size(), 2u);
  EXPECT_EQ(node->get(t.warehouses[0])->state.stock, before.stock);
  // A later sample of the same warehouse: once the enterprise shows it, it has
  // folded every contribution the warehouse sent before, so anything the
  // redelivery had changed would show too.
  send({{t.warehouses[0], "receipt/SKU-2", twins::wall_ms() - 800, 7, "erp", 3}});
  ASSERT_TRUE(eventually([&] {
    auto sums = node->get("acme")->state.own.sums;
    return sums.count("stock/SKU-2") && sums.at("stock/SKU-2") == 7;
  }));
  EXPECT_EQ(node->get("acme")->state.own.sums.at("stock/SKU-1"), 20);
  EXPECT_EQ(node->get(t.warehouses[0])->state.stock.at("SKU-1"), 20);
  EXPECT_EQ(first_difference(), "");
}

TEST_F(RollupExactness, MovedVehicleLeavesOldDepotAndJoinsNewOne) {
  auto& v = t.vehicles[0]; // under depot-1
  send({{v, "state", twins::wall_ms() - 500, 1, "", 0}, {v, "power_kw", twins::wall_ms() - 500, 40, "", 0}});
  ASSERT_TRUE(eventually([&] { return first_difference().empty(); }));
  auto road = [&](const std::string& depot) {
    auto s = node->get(depot)->state.own.sums;
    return s.count("count/on_road") ? s.at("count/on_road") : 0.0;
  };
  EXPECT_EQ(road(t.depots[0]), 1);
  EXPECT_EQ(road(t.depots[1]), 0);
  ASSERT_FALSE(node->reparent(v, t.depots[1]));
  EXPECT_TRUE(eventually([&] { return road(t.depots[0]) == 0 && road(t.depots[1]) == 1; }));
  EXPECT_TRUE(eventually([&] { return first_difference().empty(); }));
  // Moving a twin under its current parent changes nothing.
  EXPECT_FALSE(node->reparent(t.depots[0], "acme/fleet"));
}

} // namespace
} // namespace twinrt

namespace twinrt {
namespace {

// Found by the crash loop (scripts/crash-loop.sh): a reparent is durable once
// the twin's new parent is stored; its old parent drops the twin's
// contribution a moment later. Killed in between, a parent left with no
// children kept the moved twin in its stored fold, and recovery, which
// refolded only twins with children, never took it out: its own parent
// counted the twin twice from then on.
TEST(RollupRecovery, ParentThatLostItsLastChildBeforeACrashHoldsNothingOfIt) {
  testing::temp_dir dir{"rollup-recovery"};
  auto cfg = testing::test_config(dir.str());
  const std::string v = "acme/fleet/depot-1/v-1";
  uint32_t v_number = 0;
  {
    auto node = testing::start_node(cfg);
    ASSERT_TRUE(node);
    ASSERT_FALSE(node->create({{"acme", "enterprise", ""},
                               {"acme/fleet", "fleet", "acme"},
                               {"acme/fleet/depot-1", "depot", "acme/fleet"},
                               {"acme/fleet/depot-2", "depot", "acme/fleet"},
                               {v, "vehicle", "acme/fleet/depot-1"}}));
    auto r = node->ingest_waiting({{v, "state", twins::wall_ms() - 500, 1, "", 0}});
    ASSERT_TRUE(r && r->accepted == 1);
    auto depot_1 = node->twins()[2]; // acme, acme/fleet, acme/fleet/depot-1, ...
    ASSERT_EQ(depot_1.id, "acme/fleet/depot-1");
    // depot-1's fold with the vehicle on the road is stored.
    ASSERT_TRUE(testing::eventually([&] {
      auto st = node->store().load_state(depot_1);
      return st && st->own.sums.count("count/on_road") == 1;
    }));
    for (auto& m : node->twins())
      if (m.id == v)
        v_number = m.number;
  }
  {
    // The reparent's own write, and nothing after it: the crash.
    std::string error;
    auto db = runtime::storage::open({dir.str(), false, 8, 16, nullptr}, error);
    ASSERT_TRUE(db) << error;
    auto wb = db->new_batch();
    wb.put_meta({v, v_number, "vehicle", "acme/fleet/depot-2"});
    ASSERT_EQ(db->commit_and_wait(std::move(wb)), "");
  }
  auto node = testing::start_node(cfg);
  ASSERT_TRUE(node);
  auto on_road = [&](const std::string& id) {
    auto sums = node->get(id)->state.own.sums;
    return sums.count("count/on_road") ? sums.at("count/on_road") : 0.0;
  };
  EXPECT_EQ(on_road("acme/fleet/depot-1"), 0);
  EXPECT_EQ(on_road("acme/fleet/depot-2"), 1);
  EXPECT_EQ(on_road("acme/fleet"), 1);
  EXPECT_EQ(on_road("acme"), 1);
}

} // namespace
} // namespace twinrt
