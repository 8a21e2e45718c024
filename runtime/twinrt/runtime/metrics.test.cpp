#include "twinrt/runtime/metrics.hpp"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <sstream>
#include <string>
#include <thread>

#include <unistd.h>

#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include "twinrt/runtime/node.hpp"

namespace twinrt::runtime {
namespace {

using twins::wall_ms;

// Polls `done` until it holds or a deadline that only a broken build reaches
// (a loaded machine, the sanitizers); returns its last answer.
template <class F>
bool eventually(F done) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!done() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  return done();
}

// A node with a small enterprise: two machines on one line, one warehouse.
class Metrics : public ::testing::Test {
protected:
  void SetUp() override {
    auto base = std::filesystem::temp_directory_path();
    for (int i = 0;; ++i) {
      dir_ = base / ("twinrt-metrics-test-" + std::to_string(::getpid()) + "-"
                     + std::to_string(i));
      if (std::filesystem::create_directories(dir_))
        break;
    }
    node_config cfg;
    cfg.data_dir = (dir_ / "data").string();
    cfg.sync_wal = false;
    cfg.write_buffer_mb = 4;
    cfg.block_cache_mb = 4;
    cfg.rollup_delay_ms = 5;
    auto started = node::start(cfg);
    ASSERT_TRUE(started) << describe(started.error());
    node_ = std::move(*started);
    ASSERT_FALSE(node_->create({{"t", "enterprise", ""},
                                {"t/p1", "plant", "t"},
                                {"t/p1/l1", "line", "t/p1"},
                                {"t/p1/l1/m1", "machine", "t/p1/l1"},
                                {"t/p1/l1/m2", "machine", "t/p1/l1"},
                                {"t/wh1", "warehouse", "t"}}));
  }

  void TearDown() override {
    node_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // Ingests a batch in which m1 is in alarm and one sample is refused, and
  // waits until the line's rollup shows it.
  void ingest_some() {
    auto ts = wall_ms();
    auto r = node_->ingest({{"t/p1/l1/m1", "vibration_mm_s", ts, 8.0, "", 0},
                            {"t/p1/l1/m1", "power_kw", ts, 10.0, "", 0},
                            {"t/p1/l1/m2", "vibration_mm_s", ts, 1.0, "", 0},
                            {"t/p1/l1/m2", "power_kw", ts, 5.0, "", 0},
                            {"t/p1/l1/m2", "no_such_channel", ts, 1.0, "", 0},
                            {"t/wh1", "receipt/SKU-1", ts, 40, "wms", 1}});
    ASSERT_TRUE(r) << describe(r.error());
    ASSERT_EQ(r->accepted, 5u);
    ASSERT_TRUE(eventually([&] {
      auto root = node_->get("t");
      return root && root->state.status == twins::health_status::alarm
             && root->state.own.sums.count("stock/SKU-1") && root->state.own.sums.count("power_kw")
             && root->state.own.sums.at("power_kw") == 15.0;
    })) << "the enterprise never showed the alarm, power and stock";
  }

  std::string scrape(uint32_t max_asset_series = 5000) {
    node_collector c(*node_, max_asset_series);
    return text(c);
  }

  static std::string text(const node_collector& c) {
    std::ostringstream out;
    prometheus::TextSerializer().Serialize(out, c.Collect());
    return out.str();
  }

  // The value of the series written exactly as `series`; NaN when absent.
  static double value_of(const std::string& exposition, const std::string& series) {
    std::istringstream in(exposition);
    for (std::string line; std::getline(in, line);)
      if (line.rfind(series + " ", 0) == 0)
        return std::stod(line.substr(series.size() + 1));
    return std::nan("");
  }

  std::filesystem::path dir_;
  std::unique_ptr<node> node_;
};

TEST_F(Metrics, EveryDocumentedFamilyIsExposedWithHelpAndType) {
  ingest_some();
  auto text = scrape();
  for (auto& f : node_collector::families()) {
    EXPECT_NE(text.find("# HELP " + f.name + " "), std::string::npos) << f.name;
    EXPECT_NE(text.find("# TYPE " + f.name + " "), std::string::npos) << f.name;
    EXPECT_EQ(f.name.rfind("twinrt_", 0), 0u) << f.name;
    if (f.type == prometheus::MetricType::Counter) {
      EXPECT_EQ(f.name.substr(f.name.size() - 6), "_total") << f.name;
    }
  }
}

TEST_F(Metrics, IngestAndRejectionsAreCountedByReason) {
  ingest_some();
  auto text = scrape();
  EXPECT_EQ(value_of(text, "twinrt_samples_ingested_total"), 5);
  EXPECT_EQ(value_of(text, "twinrt_samples_rejected_total{reason=\"unknown_channel\"}"), 1);
  EXPECT_EQ(value_of(text, "twinrt_samples_rejected_total{reason=\"not_finite\"}"), 0);
  // The create above ran no batch; the one ingest did.
  EXPECT_EQ(value_of(text, "twinrt_ingest_batch_duration_seconds_count"), 1);
  EXPECT_EQ(value_of(text, "twinrt_ingest_batch_duration_seconds_bucket{le=\"+Inf\"}"), 1);
}

TEST_F(Metrics, TwinsAreCountedByKindAndRollupLagIsAHistogram) {
  ingest_some();
  auto text = scrape();
  EXPECT_EQ(value_of(text, "twinrt_twins_active{kind=\"machine\"}"), 2);
  EXPECT_EQ(value_of(text, "twinrt_twin_activations_total{kind=\"machine\"}"), 2);
  EXPECT_EQ(value_of(text, "twinrt_shard_active_twins{shard=\"0\"}")
              + value_of(text, "twinrt_shard_active_twins{shard=\"1\"}")
              + value_of(text, "twinrt_shard_active_twins{shard=\"2\"}")
              + value_of(text, "twinrt_shard_active_twins{shard=\"3\"}"),
            value_of(text, "twinrt_twins_active{kind=\"machine\"}")
              + value_of(text, "twinrt_twins_active{kind=\"line\"}")
              + value_of(text, "twinrt_twins_active{kind=\"plant\"}")
              + value_of(text, "twinrt_twins_active{kind=\"enterprise\"}")
              + value_of(text, "twinrt_twins_active{kind=\"warehouse\"}"));
  // A line that wakes after its machines' states were stored folds them from
  // storage, a fold without a lag to record (on a slow machine the first
  // ingest often goes that way); a later sample reaches the awake line as a
  // contribution, and that fold's lag is recorded.
  auto r = node_->ingest({{"t/p1/l1/m2", "power_kw", wall_ms(), 6.0, "", 0}});
  ASSERT_TRUE(r && r->accepted == 1u);
  EXPECT_TRUE(eventually([&] {
    return value_of(scrape(), "twinrt_rollup_lag_seconds_count{kind=\"line\"}") >= 1;
  })) << "no rollup lag recorded for the line";
  EXPECT_TRUE(eventually([&] {
    node_->passivate_all(); // a twin with a flush pending says no; ask again
    return node_->active_twins() <= 3;
  })) << node_->active_twins();
  text = scrape();
  EXPECT_EQ(value_of(text, "twinrt_twins_passivated{kind=\"machine\"}"), 2);
  EXPECT_EQ(value_of(text, "twinrt_twin_passivations_total{kind=\"machine\"}"), 2);
}

TEST_F(Metrics, ExportedKindsShowHealthPowerAndStockButMachinesDoNot) {
  ingest_some();
  auto text = scrape();
  EXPECT_EQ(value_of(text, "twinrt_asset_health_status{kind=\"line\",status=\"alarm\",twin=\"t/p1/l1\"}"), 1);
  EXPECT_EQ(value_of(text, "twinrt_asset_health_status{kind=\"line\",status=\"ok\",twin=\"t/p1/l1\"}"), 0);
  EXPECT_EQ(value_of(text, "twinrt_asset_twins{kind=\"plant\",status=\"alarm\",twin=\"t/p1\"}"), 1);
  EXPECT_EQ(value_of(text, "twinrt_asset_worst_twin_info{kind=\"line\",twin=\"t/p1/l1\","
                           "worst_status=\"alarm\",worst_twin=\"t/p1/l1/m1\"}"),
            1);
  EXPECT_EQ(value_of(text, "twinrt_asset_power_watts{kind=\"line\",twin=\"t/p1/l1\"}"), 15000);
  EXPECT_EQ(value_of(text, "twinrt_asset_power_watts{kind=\"enterprise\",twin=\"t\"}"), 15000);
  EXPECT_EQ(value_of(text, "twinrt_asset_stock_units{kind=\"warehouse\",sku=\"SKU-1\",twin=\"t/wh1\"}"), 40);
  EXPECT_EQ(value_of(text, "twinrt_asset_stock_units{kind=\"enterprise\",sku=\"SKU-1\",twin=\"t\"}"), 40);
  EXPECT_GE(value_of(text, "twinrt_asset_health_score{kind=\"line\",twin=\"t/p1/l1\"}"), 0);
  EXPECT_EQ(text.find("kind=\"machine\",twin="), std::string::npos) << "a machine has series";
  EXPECT_EQ(value_of(text, "twinrt_asset_series_dropped_total"), 0);
}

TEST_F(Metrics, SeriesCapKeepsTwinsNearerTheRootAndCountsWhatItDropped) {
  ingest_some();
  node_collector c(*node_, 3);
  auto first = text(c);
  EXPECT_EQ(value_of(first, "twinrt_asset_series"), 3);
  EXPECT_FALSE(std::isnan(value_of(first, "twinrt_asset_health_score{kind=\"enterprise\",twin=\"t\"}")));
  EXPECT_EQ(first.find("twinrt_asset_health_score{kind=\"line\""), std::string::npos);
  auto dropped = value_of(first, "twinrt_asset_series_dropped_total");
  EXPECT_GT(dropped, 0);
  // A counter: the next scrape adds what it dropped.
  EXPECT_EQ(value_of(text(c), "twinrt_asset_series_dropped_total"), 2 * dropped);
}

TEST_F(Metrics, RocksDbFiguresAreThere) {
  ingest_some();
  auto text = scrape();
  EXPECT_EQ(value_of(text, "twinrt_rocksdb_write_stopped"), 0);
  EXPECT_GE(value_of(text, "twinrt_rocksdb_pending_compaction_bytes"), 0);
  EXPECT_GT(value_of(text, "twinrt_rocksdb_memtable_bytes"), 0);
  EXPECT_GE(value_of(text, "twinrt_rocksdb_write_stalls_total{cause=\"stop\"}"), 0);
  EXPECT_GT(value_of(text, "twinrt_storage_commit_groups_total"), 0);
  EXPECT_EQ(value_of(text, "twinrt_storage_corrupt_records_total"), 0);
  // sync_wal is off in this fixture.
  EXPECT_EQ(value_of(text, "twinrt_rocksdb_wal_syncs_total"), 0);
}

TEST_F(Metrics, RpcCallsAreCountedByMethodAndResult) {
  node_->probe().rpc_done("get", "ok", 0.002);
  node_->probe().rpc_done("get", "ok", 0.004);
  node_->probe().rpc_done("ingest", "overloaded", 0.001);
  auto text = scrape();
  EXPECT_EQ(value_of(text, "twinrt_rpc_requests_total{method=\"get\",result=\"ok\"}"), 2);
  EXPECT_EQ(value_of(text, "twinrt_rpc_requests_total{method=\"ingest\",result=\"overloaded\"}"), 1);
  EXPECT_EQ(value_of(text, "twinrt_rpc_request_duration_seconds_bucket{method=\"get\",result=\"ok\",le=\"0.005\"}"), 2);
  EXPECT_EQ(value_of(text, "twinrt_rpc_request_duration_seconds_bucket{method=\"get\",result=\"ok\",le=\"0.0025\"}"), 1);
}

TEST(MetricsServer, AddressWithoutPortIsRefusedNamingIt) {
  auto s = metrics_server::start("localhost", nullptr);
  ASSERT_FALSE(s);
  EXPECT_NE(describe(s.error()).find("localhost"), std::string::npos) << describe(s.error());
}

TEST(MetricsServer, PortInUseIsRefusedNamingTheAddress) {
  auto first = metrics_server::start("127.0.0.1:0", nullptr);
  ASSERT_TRUE(first) << describe(first.error());
  auto taken = (*first)->address();
  EXPECT_NE(taken, "127.0.0.1:0");
  auto second = metrics_server::start(taken, nullptr);
  ASSERT_FALSE(second);
  EXPECT_NE(describe(second.error()).find(taken), std::string::npos) << describe(second.error());
}

} // namespace
} // namespace twinrt::runtime
