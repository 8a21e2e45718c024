// A stored record that does not read back must not stop a node (README
// "Storage", "When a stored record is corrupt"). Between two runs a twin's
// state is overwritten in the real RocksDB with bytes that are no TwinState;
// the node starts, names the twin in its log, counts the record in
// twinrt_storage_corrupt_records_total, and every other twin works. The
// corrupt twin starts from an empty state, keeps its history, and takes
// samples again; its parent's rollup is the fold of its children throughout.

#include <memory>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include "support.hpp"
#include "twinrt/runtime/metrics.hpp"
#include "twinrt/runtime/storage/impl.hpp"
#include "twinrt/runtime/storage/keys.hpp"

namespace {

using namespace twinrt;
using twinrt::testing::eventually;

const std::string line = "acme/plant-1/line-1";
const std::string press1 = line + "/press-1";
const std::string press2 = line + "/press-2";

std::vector<runtime::twin_spec> tree() {
  return {{"acme", "enterprise", ""},
          {"acme/plant-1", "plant", "acme"},
          {line, "line", "acme/plant-1"},
          {press1, "machine", line},
          {press2, "machine", line}};
}

std::optional<double> power_of(runtime::node& n, const std::string& id) {
  auto v = n.get(id);
  if (!v)
    return std::nullopt;
  auto& ch = v->state.channels;
  auto i = ch.find("power_kw");
  return i == ch.end() ? std::nullopt : std::optional<double>(i->second.value);
}

std::optional<double> line_power(runtime::node& n) {
  auto v = n.get(line);
  if (!v)
    return std::nullopt;
  auto i = v->state.own.sums.find("power_kw");
  return i == v->state.own.sums.end() ? std::nullopt : std::optional<double>(i->second);
}

bool accepted(runtime::node& n, const std::string& twin, int64_t ts, double kw) {
  auto r = n.ingest_waiting({{twin, "power_kw", ts, kw, "", 0}});
  return r && r->accepted == 1 && r->rejected.empty();
}

std::string metrics_text(runtime::node& n) {
  runtime::node_collector c(n, 100);
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, c.Collect());
  return out.str();
}

TEST(CorruptRecords, NodeStartsWithACorruptTwinStateAndTheOtherTwinsWork) {
  twinrt::testing::temp_dir dir("corrupt-records");
  auto cfg = twinrt::testing::test_config(dir.str());
  const int64_t t0 = twins::wall_ms() - 60'000;
  uint32_t number = 0;
  {
    auto n = twinrt::testing::start_node(cfg);
    ASSERT_TRUE(n);
    ASSERT_FALSE(n->create(tree()));
    ASSERT_TRUE(accepted(*n, press1, t0, 10));
    ASSERT_TRUE(accepted(*n, press2, t0, 20));
    ASSERT_TRUE(eventually([&] { return line_power(*n) == 30.0; }, std::chrono::seconds(60)));
    for (auto& m : n->twins())
      if (m.id == press1)
        number = m.number;
  }
  ASSERT_NE(number, 0u);
  {
    std::string error;
    auto store = runtime::storage::open({dir.str(), false, 8, 8, nullptr}, error);
    ASSERT_TRUE(store) << error;
    auto& db = runtime::raw_db(*store);
    auto key = runtime::keys::state(store->shard_of(press1), number);
    std::string old;
    ASSERT_TRUE(db.Get(rocksdb::ReadOptions(), key, &old).ok()) << "no state under " << number;
    ASSERT_TRUE(db.Put(rocksdb::WriteOptions(), key, "this is not a TwinState record").ok());
  }

  ::testing::internal::CaptureStderr();
  auto n = twinrt::testing::start_node(cfg);
  auto log = ::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(n) << log;
  EXPECT_NE(log.find("twinrt: corrupt record refused: state of twin #" + std::to_string(number)
                     + ": stored TwinState: "),
            std::string::npos)
    << log;
  EXPECT_NE(log.find("twinrt: " + press1 + ": its stored state is corrupt"), std::string::npos)
    << log;
  EXPECT_EQ(n->store().corrupt_records(), 1u);
  EXPECT_NE(metrics_text(*n).find("\ntwinrt_storage_corrupt_records_total 1\n"),
            std::string::npos);

  // The other twins are as they were, and take samples.
  EXPECT_EQ(power_of(*n, press2), 20.0);
  ASSERT_TRUE(accepted(*n, press2, t0 + 1000, 25));
  // The corrupt one starts empty, with its history kept, and takes samples too.
  auto empty = n->get(press1);
  ASSERT_TRUE(empty) << runtime::describe(empty.error());
  EXPECT_TRUE(empty->state.channels.empty());
  EXPECT_EQ(n->store().read_history({press1, number}, "power_kw", t0, t0 + 1, 10).size(), 1u);
  ASSERT_TRUE(accepted(*n, press1, t0 + 1000, 5));
  EXPECT_TRUE(eventually([&] { return line_power(*n) == 30.0; }, std::chrono::seconds(60)))
    << "the line folds 25 + 5";
  auto fold = twinrt::testing::fold_of_children(*n, line);
  EXPECT_EQ(fold.sums["power_kw"], 30.0);
  EXPECT_EQ(n->store().corrupt_records(), 1u) << "counted once, however often it is read";

  // Its new state was written over the corrupt one: the next start is clean.
  n.reset();
  ::testing::internal::CaptureStderr();
  n = twinrt::testing::start_node(cfg);
  log = ::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(n) << log;
  EXPECT_EQ(n->store().corrupt_records(), 0u) << log;
  EXPECT_EQ(power_of(*n, press1), 5.0);
}

} // namespace
