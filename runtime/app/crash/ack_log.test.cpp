#include "ack_log.hpp"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

namespace twinrt::crash_loop {
namespace {

namespace fs = std::filesystem;

struct AckLog : ::testing::Test {
  fs::path path = fs::temp_directory_path()
                  / ("twinrt-ack-log-test-" + std::to_string(::getpid()) + "-"
                     + ::testing::UnitTest::GetInstance()->current_test_info()->name());
  void SetUp() override { fs::remove(path); }
  void TearDown() override { fs::remove(path); }
};

TEST_F(AckLog, ReadsBackWhatWasAcknowledged) {
  {
    auto log = ack_log::open(path.string());
    ASSERT_TRUE(log) << log.error;
    auto& l = **log;
    EXPECT_EQ(l.append_twin("crash", "enterprise", ""), "");
    EXPECT_EQ(l.append_twin("crash/region-1", "region", "crash"), "");
    EXPECT_EQ(l.append_twin("crash/region-2", "region", "crash"), "");
    EXPECT_EQ(l.append_twin("crash/warehouse-1", "warehouse", "crash/region-1"), "");
    EXPECT_EQ(l.append_model("warehouse", 1), "");
    EXPECT_EQ(l.append_batch({{"crash/warehouse-1", "receipt/SKU-1", 1000, 7, "src", 1},
                              {"crash/warehouse-1", "pick/SKU-1", 1000, 0.1, "src", 2}}),
              "");
    EXPECT_EQ(l.append_reparent("crash/warehouse-1", "crash/region-2"), "");
    EXPECT_EQ(l.append_model("warehouse", 2), "");
    EXPECT_EQ(l.append_batch({{"crash/warehouse-1", "receipt/SKU-1", 1001, 3, "src", 3}}), "");
  }
  auto e = ack_log::read(path.string());
  ASSERT_TRUE(e) << e.error;
  EXPECT_EQ(e->batches, 2u);
  EXPECT_EQ(e->samples, 3u);
  EXPECT_EQ(e->twins.at("crash").parent, "");
  EXPECT_EQ(e->twins.at("crash/warehouse-1").parent, "crash/region-2");
  EXPECT_EQ(e->twins.at("crash/warehouse-1").kind, "warehouse");
  EXPECT_EQ(e->model_versions.at("warehouse"), 2u);
  auto& receipts = e->history.at({"crash/warehouse-1", "receipt/SKU-1"});
  ASSERT_EQ(receipts.size(), 2u);
  EXPECT_EQ(receipts[0].ts_ms, 1000);
  EXPECT_EQ(receipts[1].value, 3);
  EXPECT_EQ(e->history.at({"crash/warehouse-1", "pick/SKU-1"}).at(0).value, 0.1); // exact
  ASSERT_EQ(e->last_batch.size(), 1u);
  EXPECT_EQ(e->last_batch[0].seq, 3u);
  EXPECT_EQ(e->last_batch[0].source, "src");
}

TEST_F(AckLog, IgnoresALastRecordWithoutItsNewline) {
  {
    auto log = ack_log::open(path.string());
    ASSERT_TRUE(log) << log.error;
    EXPECT_EQ((*log)->append_twin("crash", "enterprise", ""), "");
  }
  std::ofstream(path, std::ios::app) << "batch src 1 crash/m power_kw 5 1.5"; // torn
  auto e = ack_log::read(path.string());
  ASSERT_TRUE(e) << e.error;
  EXPECT_EQ(e->batches, 0u);
  EXPECT_EQ(e->twins.size(), 1u);
}

TEST_F(AckLog, RefusesARecordItCannotParseNamingTheLine) {
  std::ofstream(path) << "twin crash enterprise -\nbatch src 2 crash power_kw 5 1.5 1\n";
  auto e = ack_log::read(path.string());
  ASSERT_FALSE(e);
  EXPECT_NE(e.error.find(":2: sample 1 of 2 is incomplete"), std::string::npos) << e.error;
}

TEST_F(AckLog, RefusesAReparentOfATwinNoRecordCreated) {
  std::ofstream(path) << "reparent crash/x crash\n";
  auto e = ack_log::read(path.string());
  ASSERT_FALSE(e);
  EXPECT_NE(e.error.find(":1: reparent of crash/x"), std::string::npos) << e.error;
}

} // namespace
} // namespace twinrt::crash_loop
