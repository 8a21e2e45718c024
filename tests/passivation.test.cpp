// Idle twins leave memory and come back with identical state.

#include <map>

#include "support.hpp"

namespace twinrt {
namespace {

using testing::eventually;

class Passivation : public ::testing::Test {
protected:
  testing::temp_dir dir{"passivation"};
  // Twins go idle when the test moves this clock, not while it waits.
  std::shared_ptr<twins::manual_clock> clock =
    std::make_shared<twins::manual_clock>(twins::wall_ms());
  runtime::node_config cfg = [this] {
    auto c = testing::test_config(dir.str());
    c.passivate_after_ms = 60'000;
    c.wall_clock = clock;
    return c;
  }();
  std::unique_ptr<runtime::node> node = testing::start_node(cfg);
  std::vector<std::string> leaves;

  void SetUp() override {
    ASSERT_TRUE(node);
    std::vector<runtime::twin_spec> specs{{"acme", "enterprise", ""},
                                          {"acme/p", "plant", "acme"},
                                          {"acme/p/l", "line", "acme/p"},
                                          {"acme/wh", "warehouse", "acme"}};
    for (int m = 0; m < 30; ++m) {
      specs.push_back({"acme/p/l/m-" + std::to_string(m), "machine", "acme/p/l"});
      leaves.push_back(specs.back().id);
    }
    leaves.push_back("acme/wh");
    ASSERT_FALSE(node->create(specs));
  }

  void ingest_round(int64_t ts, uint64_t seq) {
    std::vector<twins::sample> batch;
    for (size_t i = 0; i + 1 < leaves.size(); ++i) {
      batch.push_back({leaves[i], "power_kw", ts, 10.0 + static_cast<double>(i), "", 0});
      batch.push_back({leaves[i], "vibration_mm_s", ts, 2.0 + static_cast<double>(i % 7), "", 0});
    }
    batch.push_back({"acme/wh", "receipt/SKU-7", ts, 11, "wms", seq});
    auto r = node->ingest_waiting(batch);
    ASSERT_TRUE(r);
    ASSERT_TRUE(r->rejected.empty()) << r->rejected.front().message;
  }

  std::map<std::string, twins::twin_state> snapshot() {
    std::map<std::string, twins::twin_state> out;
    for (auto& id : leaves)
      out[id] = node->get(id)->state;
    return out;
  }
};

TEST_F(Passivation, IdleTwinsPassivateAndComeBackWithIdenticalState) {
  auto t0 = clock->now_ms() - 60'000;
  ingest_round(t0, 1);
  ingest_round(t0 + 1000, 2);
  auto before = snapshot();
  EXPECT_GE(node->probe().activations(), leaves.size());
  EXPECT_GT(node->active_twins(), 3) << "leaves went before they were idle";
  // A minute later, the leaves go; the parents (enterprise, plant, line)
  // keep their folds.
  clock->advance(60'000);
  ASSERT_TRUE(eventually([&] { return node->active_twins() <= 3; }))
    << node->active_twins() << " twins still active";
  EXPECT_GE(node->probe().passivations(), leaves.size());
  for (auto& [id, st] : before) {
    auto v = node->get(id);
    ASSERT_TRUE(v);
    EXPECT_EQ(v->state, st) << id << " came back different";
  }
  // And they carry on from that state.
  ingest_round(t0 + 2000, 3);
  EXPECT_EQ(node->get("acme/wh")->state.stock.at("SKU-7"), 33);
  EXPECT_EQ(node->get("acme/p/l/m-0")->state.channels.at("power_kw").ts_ms, t0 + 2000);
}

TEST_F(Passivation, TwinsAreRestoredAfterARestart) {
  auto t0 = clock->now_ms() - 60'000;
  ingest_round(t0, 1);
  auto before = snapshot();
  twins::contribution line;
  ASSERT_TRUE(eventually([&] {
    line = node->get("acme/p/l")->state.own;
    return line == testing::fold_of_children(*node, "acme/p/l") && line.sums.count("power_kw");
  }));
  node.reset();
  node = testing::start_node(cfg);
  ASSERT_TRUE(node);
  EXPECT_EQ(node->active_twins(), 0);
  for (auto& [id, st] : before)
    EXPECT_EQ(node->get(id)->state, st) << id;
  EXPECT_EQ(node->get("acme/p/l")->state.own, line);
}

TEST_F(Passivation, QueriesFindTwinsAfterARestartWithoutWakingAny) {
  auto t0 = clock->now_ms() - 60'000;
  ingest_round(t0, 1);
  ASSERT_TRUE(eventually([&] {
    auto line = node->get("acme/p/l")->state.own;
    return line == testing::fold_of_children(*node, "acme/p/l") && line.sums.count("power_kw");
  }));
  node.reset();
  node = testing::start_node(cfg);
  ASSERT_TRUE(node);
  runtime::query_request q;
  q.kind = "machine";
  q.where = "power_kw >= 30";
  q.sort_by = "power_kw";
  q.descending = true;
  q.limit = 3;
  auto page = node->query(q);
  ASSERT_TRUE(page) << runtime::describe(page.error());
  EXPECT_EQ(page->total, 10u); // m-20 .. m-29 draw 30 .. 39 kW
  ASSERT_EQ(page->twins.size(), 3u);
  EXPECT_EQ(page->twins[0].meta.id, "acme/p/l/m-29");
  EXPECT_EQ(page->twins[0].state.channels.at("power_kw").value, 39);
  EXPECT_EQ(page->next_page_token, "v:37:acme/p/l/m-27");
  // The line's rollup, as stored and refolded at start-up: 10 + 11 + ... + 39 kW.
  runtime::query_request lines;
  lines.where = "power_kw == 735";
  auto line = node->query(lines);
  ASSERT_TRUE(line);
  ASSERT_EQ(line->twins.size(), 3u) << "the line, the plant and the enterprise";
  EXPECT_EQ(node->active_twins(), 0) << "a query woke a twin";
}

TEST_F(Passivation, ForcedPassivationKeepsStateOfTwinsWithUncommittedWrites) {
  // Passivate right after a write, before the sweep would: the next
  // activation must not read an older state from storage.
  auto t0 = clock->now_ms() - 60'000;
  for (int r = 0; r < 20; ++r) {
    ingest_round(t0 + r * 100, static_cast<uint64_t>(r + 1));
    node->passivate_all();
  }
  EXPECT_TRUE(eventually([&] { return node->get("acme/wh")->state.stock.at("SKU-7") == 220; }));
  EXPECT_EQ(node->get("acme/p/l/m-3")->state.channels.at("power_kw").ts_ms, t0 + 1900);
}

} // namespace
} // namespace twinrt
