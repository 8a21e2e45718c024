// Storage faults, injected under RocksDB by a file system that fails on
// command: a failed write, a failed fsync and a full disk each stop the node
// from acknowledging (callers get "storage_failed: <RocksDB's reason>", never
// a hang), never get a batch acknowledged that was not stored, show in
// node::store().failed() (the twinrt_storage_failed metric), and after the
// fault is cleared and the node restarted every acknowledged sample is there,
// once, with exact rollups.

#include <map>

#include "faulty_fs.hpp"
#include "support.hpp"

namespace twinrt {
namespace {

using runtime::code_of;
using runtime::describe;
using runtime::errc;
using testing::fault;
using twins::sample;

const std::string enterprise = "acme";
const std::string warehouse = "acme/wh-1";
const std::string plant = "acme/plant-1";
const std::string line = "acme/plant-1/line-1";
const std::string machine = "acme/plant-1/line-1/press-1";

const char* injected_reason(fault f) {
  switch (f) {
    case fault::write: return "injected write failure";
    case fault::sync: return "injected fsync failure";
    case fault::no_space: return "No space left on device";
    default: return "?";
  }
}

class StorageFaults : public ::testing::TestWithParam<fault> {
protected:
  testing::temp_dir dir{"storage-faults"};
  std::shared_ptr<testing::faulty_fs> fs = std::make_shared<testing::faulty_fs>();
  int64_t t0 = twins::wall_ms() - 60'000;

  runtime::node_config config() {
    auto c = testing::test_config(dir.str());
    c.sync_wal = true; // the fsync is where a sync fault shows
    c.file_system = fs;
    return c;
  }

  // Three samples: a machine reading, a receipt of `units` and a pick of 1,
  // each with the checker's source and sequence number.
  std::vector<sample> batch(uint64_t k) {
    auto ts = t0 + static_cast<int64_t>(k);
    return {{machine, "temperature_c", ts, 50.0 + static_cast<double>(k % 10), "checker", k},
            {warehouse, "receipt/SKU-1", ts, 5, "checker", k},
            {warehouse, "pick/SKU-1", ts, 1, "checker", k}};
  }
};

TEST_P(StorageFaults, NodeStopsAcknowledgingSaysWhyAndKeepsEveryAcknowledgedSample) {
  uint64_t acked_batches = 0;
  uint64_t sent = 0;
  {
    auto node = testing::start_node(config());
    ASSERT_TRUE(node);
    ASSERT_FALSE(node->create({{enterprise, "enterprise", ""},
                               {warehouse, "warehouse", enterprise},
                               {plant, "plant", enterprise},
                               {line, "line", plant},
                               {machine, "machine", line}}));
    for (int i = 0; i < 20; ++i) {
      auto r = node->ingest(batch(++sent));
      ASSERT_TRUE(r) << describe(r.error());
      ASSERT_TRUE(r->rejected.empty()) << r->rejected.front().message;
      ++acked_batches;
    }
    EXPECT_FALSE(node->store().failed());

    fs->arm(GetParam());
    auto r = node->ingest(batch(++sent));
    ASSERT_FALSE(r) << "a batch was acknowledged though its write failed";
    EXPECT_EQ(code_of(r.error()), errc::storage_failure);
    auto why = describe(r.error());
    EXPECT_EQ(why.rfind("storage_failed: ", 0), 0u) << why;
    EXPECT_NE(why.find(injected_reason(GetParam())), std::string::npos) << why;
    EXPECT_GT(fs->injected(), 0u);
    EXPECT_TRUE(node->store().failed());
    EXPECT_EQ(node->store().failure(), why);

    // From now on every write is refused at once with the same reason, even
    // once the disk works again: only a restart clears the state.
    fs->arm(fault::none);
    for (int i = 0; i < 5; ++i) {
      auto again = node->ingest(batch(++sent));
      ASSERT_FALSE(again);
      EXPECT_EQ(describe(again.error()), why);
    }
    auto made = node->create({{"acme/wh-2", "warehouse", enterprise}});
    EXPECT_EQ(code_of(made), errc::storage_failure) << describe(made);
    EXPECT_EQ(code_of(node->reparent(warehouse, plant)), errc::storage_failure);
    // Reads still answer.
    EXPECT_TRUE(node->get(warehouse));
  } // the node stops cleanly on a failed storage

  auto node = testing::start_node(config());
  ASSERT_TRUE(node);
  // Every acknowledged sample is there once. The batch whose write failed
  // was not acknowledged; after a failed fsync it may still have reached
  // the file (the OS had it), so it may be there too, once.
  uint32_t wh = 0, press = 0;
  for (auto& m : node->twins()) {
    if (m.id == warehouse)
      wh = m.number;
    if (m.id == machine)
      press = m.number;
  }
  ASSERT_NE(wh, 0u);
  ASSERT_NE(press, 0u);
  auto receipts = node->store().read_history({warehouse, wh}, "receipt/SKU-1", t0, t0 + 1000, 1000);
  auto readings = node->store().read_history({machine, press}, "temperature_c", t0, t0 + 1000, 1000);
  std::map<int64_t, int> seen;
  for (auto& p : receipts)
    ++seen[p.ts_ms];
  for (uint64_t k = 1; k <= acked_batches; ++k)
    EXPECT_EQ(seen[t0 + static_cast<int64_t>(k)], 1) << "acknowledged batch " << k;
  auto stored_batches = receipts.size();
  EXPECT_GE(stored_batches, acked_batches);
  EXPECT_LE(stored_batches, acked_batches + 1) << "batches refused after the failure were stored";
  if (GetParam() != fault::sync) {
    EXPECT_EQ(stored_batches, acked_batches) << "the failed write is there";
    EXPECT_EQ(readings.size(), acked_batches) << "the failed write is there";
  } else {
    // The batch's samples go to two twins, each committed by its own shard;
    // the committer may group them apart, so the write that reached the file
    // before the failed fsync can be either part. The batch was not
    // acknowledged: a retry is deduplicated per twin by (source, seq).
    EXPECT_GE(readings.size(), acked_batches);
    EXPECT_LE(readings.size(), acked_batches + 1) << "batches refused after the failure were stored";
  }

  // State and rollups agree with what is stored, to the unit.
  auto w = node->get(warehouse);
  ASSERT_TRUE(w);
  EXPECT_EQ(w->state.stock.at("SKU-1"), static_cast<int64_t>(4 * stored_batches));
  ASSERT_TRUE(testing::eventually([&] {
    auto top = node->get(enterprise);
    return top && top->state.own == testing::fold_of_children(*node, enterprise);
  }));
  // And the node takes writes again.
  auto r = node->ingest(batch(++sent));
  ASSERT_TRUE(r) << describe(r.error());
  EXPECT_TRUE(r->rejected.empty());
}

INSTANTIATE_TEST_SUITE_P(Faults, StorageFaults,
                         ::testing::Values(fault::write, fault::sync, fault::no_space),
                         [](const auto& info) -> std::string {
                           switch (info.param) {
                             case fault::write: return "FailedWrite";
                             case fault::sync: return "FailedFsync";
                             case fault::no_space: return "DiskFull";
                             default: return "Other";
                           }
                         });

TEST(StorageFaultsAtStart, FailedRenameStopsTheStartWithTheReasonAndLosesNothing) {
  testing::temp_dir dir{"storage-faults-rename"};
  auto fs = std::make_shared<testing::faulty_fs>();
  auto cfg = testing::test_config(dir.str());
  cfg.file_system = fs;
  {
    auto node = testing::start_node(cfg);
    ASSERT_TRUE(node);
    ASSERT_FALSE(node->create({{enterprise, "enterprise", ""}, {warehouse, "warehouse", enterprise}}));
    auto r = node->ingest({{warehouse, "receipt/SKU-1", twins::wall_ms() - 1000, 7, "", 0}});
    ASSERT_TRUE(r) << describe(r.error());
  }
  fs->arm(fault::rename); // opening installs a new MANIFEST by renaming CURRENT
  auto failed = runtime::node::start(cfg);
  ASSERT_FALSE(failed);
  auto why = describe(failed.error());
  EXPECT_NE(why.find("cannot open data directory " + dir.str()), std::string::npos) << why;
  EXPECT_NE(why.find("injected rename failure"), std::string::npos) << why;
  fs->arm(fault::none);
  auto node = testing::start_node(cfg);
  ASSERT_TRUE(node);
  auto w = node->get(warehouse);
  ASSERT_TRUE(w);
  EXPECT_EQ(w->state.stock.at("SKU-1"), 7);
}

} // namespace
} // namespace twinrt
