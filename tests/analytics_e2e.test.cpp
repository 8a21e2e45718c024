// The four operator questions, end to end: a node on a temporary RocksDB,
// the plant simulator run over twelve hours of simulated time at full speed
// (its clock starts in the past and catches up with now), and the answers
// asked over Cap'n Proto RPC as twinctl asks them:
//   1. which machine will fail in the next 72 hours (rul_hours < 72, ranked);
//   2. which line underperforms its own baseline (throughput_deviation_pct);
//   3. where energy waste rises past the model's threshold (a warning);
//   4. stock per SKU per warehouse and in total, with the low-stock warning.

#include <cmath>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>

#include <capnp/ez-rpc.h>
#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include "rpc.capnp.h"
#include "support.hpp"
#include "twinrt/adapters/simulator.hpp"
#include "twinrt/runtime/metrics.hpp"

namespace twinrt {
namespace {

constexpr int64_t hour_ms = 3'600'000;
constexpr int history_h = 12;

std::optional<double> derived(rpc::Twin::Reader t, const std::string& name) {
  for (auto d : t.getDerived())
    if (name == d.getKey().cStr())
      return d.getValue();
  return std::nullopt;
}

double sum(rpc::Twin::Reader t, const std::string& key) {
  for (auto s : t.getRollup().getSums())
    if (key == s.getKey().cStr())
      return s.getValue();
  return 0;
}

class AnalyticsEndToEnd : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    dir_ = std::make_unique<testing::temp_dir>("analytics-e2e");
    auto cfg = testing::test_config(dir_->str());
    cfg.rpc_address = "127.0.0.1:0";
    cfg.rpc_tokens = {{"viewer", "viewer-secret", "read", ""}};
    node_ = testing::start_node(cfg);
    ASSERT_TRUE(node_);
    layout_.plants = 1;
    layout_.lines_per_plant = 3;
    layout_.machines_per_line = 6;
    layout_.warehouses = 2;
    layout_.skus = 12;
    layout_.depots = 0;
    layout_.vehicles = 0;
    ASSERT_FALSE(node_->create(adapters::enterprise_twins(layout_)));
    sim_ = std::make_unique<adapters::simulator>(layout_, 7);
    now_ = twins::wall_ms();
    int64_t from = now_ - history_h * hour_ms;
    auto s = adapters::demo_scenario(layout_, from, now_ - 2 * hour_ms);
    // One machine wears at a known rate: 3.0 mm/s twelve hours ago, 0.1 mm/s
    // more each hour, so 4.2 now and the alarm (7.1) 29 hours ahead.
    s.wearing = {{"acme/plant-1/line-1/machine-02", 0.1, 3.0, from}};
    s.slow_line = "acme/plant-1/line-3";
    s.wasteful_line = "acme/plant-1/line-2";
    s.low_stock_warehouse = "acme/warehouse-2";
    s.low_stock_sku = "SKU-0007";
    scenario_ = s;
    sim_->set_scenario(s);
    auto r = adapters::replay_history(*node_, *sim_, from, now_, 60'000);
    ASSERT_TRUE(r) << runtime::describe(r.error());
    samples_ = *r;
    // Then one tick live, as the demo goes on: data age counts from the newest
    // sample time, so after the replay alone every machine would be stale.
    auto live = node_->ingest_waiting(sim_->tick(twins::wall_ms(), 60'000));
    ASSERT_TRUE(live && live->rejected.empty());
    samples_ += live->accepted;
    // The last contributions reach the lines and the root a few rollup delays later.
    ASSERT_TRUE(testing::eventually([&] {
      auto root = node_->get("acme");
      if (!root || root->state.own.latest_ts_ms < now_ - 60'000)
        return false;
      for (int i = 1; i <= layout_.lines_per_plant; ++i) {
        auto id = "acme/plant-1/line-" + std::to_string(i);
        auto line = node_->get(id);
        if (!line || !(line->state.own == testing::fold_of_children(*node_, id)))
          return false;
      }
      return root->state.own == testing::fold_of_children(*node_, "acme");
    }));
    client_ = std::make_unique<capnp::EzRpcClient>(node_->rpc_address());
    auto login = client_->getMain<rpc::Gateway>().loginRequest();
    login.setToken("viewer-secret");
    reader_ = std::make_unique<rpc::Reader::Client>(
      login.send().wait(client_->getWaitScope()).getSession().getReader());
  }

  static void TearDownTestSuite() {
    reader_.reset();
    client_.reset();
    node_.reset();
    sim_.reset();
    dir_.reset();
  }

  capnp::Response<rpc::Reader::QueryResults>
  query(const std::string& kind, const std::string& where, const std::string& sort_by = "",
        bool descending = false) {
    auto req = reader_->queryRequest();
    auto q = req.initQuery();
    q.setKind(kind);
    q.setWhere(where);
    q.setSortBy(sort_by);
    q.setDescending(descending);
    return req.send().wait(client_->getWaitScope());
  }

  capnp::Response<rpc::Reader::GetResults> get(const std::string& id) {
    auto req = reader_->getRequest();
    req.setId(id);
    return req.send().wait(client_->getWaitScope());
  }

  // Rollups settle within a few rollup delays once ingest stops.
  void settle() {
    EXPECT_TRUE(testing::eventually([&] {
      auto root = node_->get("acme");
      return root && root->state.own == testing::fold_of_children(*node_, "acme");
    }));
  }

  static inline std::unique_ptr<testing::temp_dir> dir_;
  // Health counts data age from the newest sample time, so on a slow machine
  // the live tick of SetUpTestSuite may be older than stale_after by the
  // time a test asserts a health: one more live tick, and wait until `id`
  // has folded it and is no longer stale.
  void tick_live(const std::string& id) {
    auto t = twins::wall_ms();
    auto live = node_->ingest_waiting(sim_->tick(t, 60'000));
    ASSERT_TRUE(live && live->rejected.empty());
    ASSERT_TRUE(testing::eventually([&] {
      auto v = node_->get(id);
      return v && v->state.own.latest_ts_ms >= t - 60'000
             && v->state.status != twins::health_status::stale;
    })) << id << " did not take the live tick";
  }

  static inline std::unique_ptr<runtime::node> node_;
  static inline std::unique_ptr<adapters::simulator> sim_;
  static inline std::unique_ptr<capnp::EzRpcClient> client_;
  static inline std::unique_ptr<rpc::Reader::Client> reader_;
  static inline adapters::enterprise_layout layout_;
  static inline adapters::analytics_scenario scenario_;
  static inline int64_t now_ = 0;
  static inline uint64_t samples_ = 0;
};

TEST_F(AnalyticsEndToEnd, MachineDegradingAtAKnownRateIsRankedWithinTwentyPercent) {
  std::printf("simulated %d h: %llu samples\n", history_h, static_cast<unsigned long long>(samples_));
  const std::string wearing = "acme/plant-1/line-1/machine-02";
  double truth = (7.1 - sim_->vibration_level(wearing)) / 0.1;
  auto res = query("machine", "rul_hours < 72", "rul_hours");
  ASSERT_GE(res.getTwins().size(), 1u);
  auto first = res.getTwins()[0];
  EXPECT_EQ(std::string(first.getId().cStr()), wearing);
  auto rul = derived(first, "rul_hours");
  ASSERT_TRUE(rul);
  std::printf("%s: rul_hours %.1f (true %.1f), confidence %.2f\n", wearing.c_str(), *rul, truth,
              derived(first, "rul_confidence").value_or(-1));
  EXPECT_NEAR(*rul, truth, 0.2 * truth);
  EXPECT_GE(*derived(first, "rul_confidence"), 0.8);
  // Ranked: rul_hours never decreases down the list.
  double last = -1;
  for (auto t : res.getTwins()) {
    auto v = derived(t, "rul_hours");
    ASSERT_TRUE(v) << t.getId().cStr();
    EXPECT_GE(*v, last);
    last = *v;
  }
  // A healthy machine reports no failure: no estimate at all.
  auto healthy = get("acme/plant-1/line-1/machine-01");
  EXPECT_FALSE(derived(healthy.getTwin(), "rul_hours"));
}

TEST_F(AnalyticsEndToEnd, SlowLineIsFoundBelowItsBaselineWithTheNumbers) {
  for (int i = 1; i <= 3; ++i) {
    auto l = get("acme/plant-1/line-" + std::to_string(i));
    std::printf("line-%d:", i);
    for (auto d : l.getTwin().getDerived())
      std::printf(" %s=%.4g", d.getKey().cStr(), d.getValue());
    std::printf("\n");
  }
  auto res = query("line", "throughput_deviation_pct < -25", "throughput_deviation_pct");
  ASSERT_GE(res.getTwins().size(), 1u);
  auto line = res.getTwins()[0];
  EXPECT_EQ(std::string(line.getId().cStr()), scenario_.slow_line);
  auto dev = derived(line, "throughput_deviation_pct");
  auto now = derived(line, "throughput_per_h");
  auto base = derived(line, "throughput_baseline_per_h");
  ASSERT_TRUE(dev && now && base);
  std::printf("%s: %.0f parts/h against a baseline of %.0f (%.1f%%)\n", line.getId().cStr(),
              *now, *base, *dev);
  EXPECT_NEAR(*dev, (*now - *base) / *base * 100, 1e-6);
  EXPECT_LT(*dev, -25);
  // A line running normally is near its baseline.
  auto normal = get("acme/plant-1/line-1");
  auto normal_dev = derived(normal.getTwin(), "throughput_deviation_pct");
  ASSERT_TRUE(normal_dev);
  EXPECT_GT(*normal_dev, -25);
}

TEST_F(AnalyticsEndToEnd, IdleEnergyWastePastTheThresholdIsAWarning) {
  tick_live(scenario_.wasteful_line);
  auto res = query("line", "energy_waste_pct > 25", "energy_waste_pct", true);
  ASSERT_EQ(res.getTwins().size(), 1u);
  auto line = res.getTwins()[0];
  EXPECT_EQ(std::string(line.getId().cStr()), scenario_.wasteful_line);
  EXPECT_EQ(line.getHealth(), rpc::Health::WARNING);
  ASSERT_GE(line.getWarnings().size(), 1u);
  std::string warning = line.getWarnings()[0].cStr();
  std::printf("%s: %s\n", line.getId().cStr(), warning.c_str());
  EXPECT_EQ(warning.rfind("energy waste", 0), 0u) << warning;
  EXPECT_GT(*derived(line, "idle_energy_kwh_per_h"),
            2 * *derived(line, "idle_energy_baseline_kwh_per_h"));
  // The slow line makes fewer parts but wastes nothing.
  auto slow = get(scenario_.slow_line);
  EXPECT_LT(*derived(slow.getTwin(), "energy_waste_pct"), 25);
}

TEST_F(AnalyticsEndToEnd, StockIsExactAndLowStockNamesTheSku) {
  settle();
  const std::string& wh = scenario_.low_stock_warehouse;
  const std::string& sku = scenario_.low_stock_sku;
  int64_t units = sim_->stock(wh, sku);
  ASSERT_LT(units, 10);
  auto res = query("warehouse", "low_stock_skus > 0");
  ASSERT_EQ(res.getTwins().size(), 1u);
  auto w = res.getTwins()[0];
  EXPECT_EQ(std::string(w.getId().cStr()), wh);
  EXPECT_EQ(w.getHealth(), rpc::Health::WARNING);
  EXPECT_EQ(*derived(w, "low_stock_skus"), 1);
  ASSERT_EQ(w.getWarnings().size(), 1u);
  EXPECT_EQ(std::string(w.getWarnings()[0].cStr()),
            "low stock: " + sku + " has " + std::to_string(units) + " units, minimum 10");
  // Per SKU per warehouse and in total, to the unit.
  auto root = get("acme");
  for (int k = 1; k <= layout_.skus; ++k) {
    auto name = adapters::sku_name(k);
    int64_t total = 0;
    for (int i = 1; i <= layout_.warehouses; ++i) {
      auto id = "acme/warehouse-" + std::to_string(i);
      int64_t expected = sim_->stock(id, name);
      total += expected;
      EXPECT_EQ(sum(get(id).getTwin(), "stock/" + name), static_cast<double>(expected)) << id << " " << name;
    }
    EXPECT_EQ(sum(root.getTwin(), "stock/" + name), static_cast<double>(total)) << name;
  }
}

TEST_F(AnalyticsEndToEnd, DerivedValuesOfExportedKindsAreMetrics) {
  settle();
  runtime::node_collector collector(*node_, 5000);
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, collector.Collect());
  auto text = out.str();
  auto value = [&](const std::string& series) -> std::optional<double> {
    auto at = text.find("\n" + series + " ");
    if (at == std::string::npos)
      return std::nullopt;
    return std::stod(text.substr(at + series.size() + 2));
  };
  auto dev = value("twinrt_asset_derived{kind=\"line\",name=\"throughput_deviation_pct\",twin=\""
                   + scenario_.slow_line + "\"}");
  ASSERT_TRUE(dev) << "no throughput_deviation_pct series for " << scenario_.slow_line;
  EXPECT_LT(*dev, -25);
  auto low = value("twinrt_asset_derived{kind=\"warehouse\",name=\"low_stock_skus\",twin=\""
                   + scenario_.low_stock_warehouse + "\"}");
  ASSERT_TRUE(low);
  EXPECT_EQ(*low, 1);
}

TEST_F(AnalyticsEndToEnd, DerivedValuesSurviveARestart) {
  settle();
  const std::string line = scenario_.slow_line;
  auto before = node_->get(line);
  ASSERT_TRUE(before);
  auto cfg = testing::test_config(dir_->str());
  cfg.rpc_address = "127.0.0.1:0";
  cfg.rpc_tokens = {{"viewer", "viewer-secret", "read", ""}};
  reader_.reset();
  client_.reset();
  node_.reset();
  node_ = testing::start_node(cfg);
  ASSERT_TRUE(node_);
  auto after = node_->get(line);
  ASSERT_TRUE(after);
  EXPECT_EQ(after->state.analytics.derived, before->state.analytics.derived);
  EXPECT_TRUE(after->state.analytics.production == before->state.analytics.production);
  auto m = node_->get("acme/plant-1/line-1/machine-02");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->state.analytics.derived.count("rul_hours"), 1u);
  client_ = std::make_unique<capnp::EzRpcClient>(node_->rpc_address());
  auto login = client_->getMain<rpc::Gateway>().loginRequest();
  login.setToken("viewer-secret");
  reader_ = std::make_unique<rpc::Reader::Client>(
    login.send().wait(client_->getWaitScope()).getSession().getReader());
}

} // namespace
} // namespace twinrt
