#include "twinrt/runtime/storage.hpp"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <mutex>
#include <ostream>
#include <string>
#include <tuple>
#include <vector>

#include <unistd.h>

#include <set>

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <gtest/gtest.h>

#include "records.capnp.h"
#include "twinrt/runtime/errc.hpp"
#include "twinrt/runtime/storage/impl.hpp"
#include "twinrt/runtime/storage/keys.hpp"

namespace twinrt::twins {

void PrintTo(health_status s, std::ostream* os) { *os << to_string(s); }

void PrintTo(const channel_value& v, std::ostream* os) {
  *os << "{value " << v.value << ", ts_ms " << v.ts_ms << "}";
}

} // namespace twinrt::twins

namespace twinrt::runtime {

void PrintTo(const history_point& p, std::ostream* os) {
  *os << "{ts " << p.ts_ms << ", value " << p.value << ", model v" << p.model_version
      << ", source '" << p.source << "', seq " << p.seq << "}";
}

namespace {

constexpr int64_t min_ts = std::numeric_limits<int64_t>::min();
constexpr int64_t max_ts = std::numeric_limits<int64_t>::max();

// Twin `number` under a made-up id (the id decides the virtual shard).
twin_ref twin(uint32_t number) {
  static std::map<uint32_t, std::string> ids; // stable: the refs view them
  auto& id = ids[number];
  if (id.empty())
    id = "acme/twin-" + std::to_string(number);
  return {id, number};
}

std::vector<int64_t> times_of(const std::vector<history_point>& points) {
  std::vector<int64_t> out;
  for (auto& p : points)
    out.push_back(p.ts_ms);
  return out;
}

std::vector<double> values_of(const std::vector<history_point>& points) {
  std::vector<double> out;
  for (auto& p : points)
    out.push_back(p.value);
  return out;
}

// A twin state with every field set to something other than its default, so
// that a field the codec forgets shows up as a difference.
twins::twin_state full_state() {
  twins::twin_state st;
  st.version = 4'000'000'123ull;
  st.model_version = 7;
  st.channels["vibration_mm_s"] = {3.25, 1'700'000'000'123};
  st.channels["temperature_c"] = {-12.5, -86'400'001};
  st.channels["receipt/SKU-1"] = {40, 1'700'000'000'500};
  st.sources[{"vibration_mm_s", "plc-1"}] = 18'000'000'000'000'000'000ull;
  st.sources[{"receipt/SKU-1", "wms"}] = 3;
  st.energy_kwh = 1234.5;
  st.energy_today_kwh = 17.25;
  st.energy_day = 19'675;
  st.last_power_kw = 88.5;
  st.last_power_ms = 1'700'000'000'400;
  st.last_counter_kwh = 99'999.75;
  st.stock["SKU-1"] = 40;
  st.stock["SKU-2"] = -3; // picked before it was received
  st.stock["SKU-3"] = 4'000'000'000'000;
  st.status = twins::health_status::alarm;
  st.score = 0;
  st.last_data_ms = 1'700'000'000'999;
  st.created_ms = 1'600'000'000'001;
  st.own.sums["power_kw"] = 88.5;
  st.own.sums["stock/SKU-1"] = 40;
  st.own.sums["count/running"] = 1;
  st.own.counts = {5, 4, 3, 2};
  st.own.score_sum = 875;
  st.own.score_count = 14;
  st.own.worst_id = "acme/plant-1/line-2/press-7";
  st.own.worst_status = twins::health_status::stale;
  return st;
}

class Storage : public ::testing::Test {
protected:
  void SetUp() override {
    auto base = std::filesystem::temp_directory_path();
    for (int i = 0;; ++i) {
      dir_ = base / ("twinrt-storage-test-" + std::to_string(::getpid()) + "-"
                     + std::to_string(i));
      if (std::filesystem::create_directories(dir_))
        break;
    }
    reopen();
  }

  void TearDown() override {
    db_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  void reopen(uint32_t virtual_shards = default_virtual_shards) {
    db_.reset();
    std::string error;
    db_ = storage::open(options(virtual_shards), error);
    ASSERT_NE(db_, nullptr) << error;
  }

  storage_options options(uint32_t virtual_shards) const {
    storage_options opts;
    opts.path = dir_.string();
    opts.sync_wal = false;
    opts.write_buffer_mb = 4;
    opts.block_cache_mb = 4;
    opts.virtual_shards = virtual_shards;
    return opts;
  }

  // An empty data directory again.
  void wipe() {
    db_.reset();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }

  void put_points(uint32_t number, const std::string& channel,
                  const std::vector<std::pair<int64_t, double>>& points) {
    auto wb = db_->new_batch();
    for (auto& [ts, v] : points)
      wb.put_history(twin(number), channel, ts, v, 1, "", 0);
    ASSERT_EQ(db_->commit_and_wait(std::move(wb)), "");
  }

  // Writes a raw record, as a bit flip or an older build would leave it.
  void put_raw(const std::string& key, const std::string& value) {
    ASSERT_TRUE(raw_db(*db_).Put(rocksdb::WriteOptions(), key, value).ok());
  }

  std::vector<history_point> all(uint32_t number, const std::string& channel) {
    return db_->read_history(twin(number), channel, min_ts, max_ts, 1'000'000);
  }

  std::filesystem::path dir_;
  std::unique_ptr<storage> db_;
};

// -- twin state ---------------------------------------------------------------

TEST(StateCodec, FullStateRoundTripsUnchanged) {
  auto st = full_state();
  auto back = *storage::decode_state(storage::encode_state(st));
  // Field by field first, so a failure names the field; then the whole.
  EXPECT_EQ(back.version, st.version);
  EXPECT_EQ(back.model_version, st.model_version);
  EXPECT_EQ(back.channels, st.channels);
  EXPECT_EQ(back.sources, st.sources);
  EXPECT_EQ(back.energy_kwh, st.energy_kwh);
  EXPECT_EQ(back.energy_today_kwh, st.energy_today_kwh);
  EXPECT_EQ(back.energy_day, st.energy_day);
  EXPECT_EQ(back.last_power_kw, st.last_power_kw);
  EXPECT_EQ(back.last_power_ms, st.last_power_ms);
  EXPECT_EQ(back.last_counter_kwh, st.last_counter_kwh);
  EXPECT_EQ(back.stock, st.stock);
  EXPECT_EQ(back.status, st.status);
  EXPECT_EQ(back.score, st.score);
  EXPECT_EQ(back.last_data_ms, st.last_data_ms);
  EXPECT_EQ(back.created_ms, st.created_ms);
  EXPECT_EQ(back.own.sums, st.own.sums);
  EXPECT_EQ(back.own.counts, st.own.counts);
  EXPECT_EQ(back.own.score_sum, st.own.score_sum);
  EXPECT_EQ(back.own.score_count, st.own.score_count);
  EXPECT_EQ(back.own.worst_id, st.own.worst_id);
  EXPECT_EQ(back.own.worst_status, st.own.worst_status);
  EXPECT_TRUE(back == st);
}

TEST(StateCodec, EmptyStateRoundTripsUnchanged) {
  twins::twin_state st;
  EXPECT_TRUE(*storage::decode_state(storage::encode_state(st)) == st);
}

// A state as stored before lastDataMs held the newest sample time: then it
// was the wall clock of the last arrival (or of the creation).
std::string state_with_arrival_time(int64_t last_arrival_ms,
                                    const std::vector<std::pair<std::string, int64_t>>& channels) {
  capnp::MallocMessageBuilder msg;
  auto b = msg.initRoot<records::TwinState>();
  b.setVersion(3);
  auto list = b.initChannels(static_cast<unsigned>(channels.size()));
  for (unsigned i = 0; i < channels.size(); ++i) {
    list[i].setName(channels[i].first);
    list[i].setValue(1);
    list[i].setTimestampMs(channels[i].second);
  }
  b.setLastDataMs(last_arrival_ms);
  auto bytes = capnp::messageToFlatArray(msg);
  return std::string(reinterpret_cast<const char*>(bytes.asBytes().begin()),
                     bytes.asBytes().size());
}

TEST(StateCodec, OlderStateReadsTheNewestChannelTimeAsItsLastData) {
  // Backfilled samples three days old, stored as they arrived an hour ago.
  constexpr int64_t arrived = 1'700'000'000'000, hour = 3'600'000;
  auto back = *storage::decode_state(state_with_arrival_time(
    arrived, {{"power_kw", arrived - 72 * hour}, {"vibration_mm_s", arrived - 73 * hour}}));
  EXPECT_EQ(back.last_data_ms, arrived - 72 * hour);
  EXPECT_EQ(twins::data_since_ms(back), arrived - 72 * hour);
  // Written again, it keeps that meaning.
  auto again = *storage::decode_state(storage::encode_state(back));
  EXPECT_EQ(again.last_data_ms, arrived - 72 * hour);
  EXPECT_TRUE(again == back);
}

TEST(StateCodec, OlderStateWithoutDataKeepsItsCreationTime) {
  constexpr int64_t created = 1'700'000'000'000;
  auto back = *storage::decode_state(state_with_arrival_time(created, {}));
  EXPECT_EQ(back.last_data_ms, 0);
  EXPECT_EQ(back.created_ms, created);
  EXPECT_EQ(twins::data_since_ms(back), created);
}

TEST(StateCodec, EveryStatusRoundTrips) {
  for (auto s : {twins::health_status::ok, twins::health_status::warning,
                 twins::health_status::alarm, twins::health_status::stale}) {
    twins::twin_state st;
    st.status = s;
    st.own.worst_status = s;
    auto back = *storage::decode_state(storage::encode_state(st));
    EXPECT_EQ(back.status, s) << twins::to_string(s);
    EXPECT_EQ(back.own.worst_status, s) << twins::to_string(s);
  }
}

TEST_F(Storage, StoredStateReadsBackAfterReopen) {
  auto wb = db_->new_batch();
  wb.put_state(twin(9), full_state());
  ASSERT_EQ(db_->commit_and_wait(std::move(wb)), "");
  reopen();
  auto back = db_->load_state(twin(9));
  ASSERT_TRUE(back.has_value());
  EXPECT_TRUE(*back == full_state());
  EXPECT_FALSE(db_->load_state(twin(10)).has_value());
}

// -- history --------------------------------------------------------------------

TEST_F(Storage, HistoryReadsBackOldestFirstAcrossNegativeTimestamps) {
  // Written out of order; keys must sort by signed time, not by raw bits.
  put_points(1, "power_kw",
             {{1000, 5}, {-1, 3}, {0, 4}, {-86'400'000, 2}, {max_ts - 1, 7},
              {min_ts, 1}, {1'700'000'000'000, 6}});
  auto points = all(1, "power_kw");
  EXPECT_EQ(times_of(points), (std::vector<int64_t>{min_ts, -86'400'000, -1, 0, 1000,
                                                    1'700'000'000'000, max_ts - 1}));
  EXPECT_EQ(values_of(points), (std::vector<double>{1, 2, 3, 4, 5, 6, 7}));
}

TEST_F(Storage, HistoryRangeIncludesFromAndExcludesTo) {
  put_points(1, "power_kw", {{-20, 1}, {-10, 2}, {0, 3}, {10, 4}, {20, 5}});
  EXPECT_EQ(times_of(db_->read_history(twin(1), "power_kw", -10, 10, 100)),
            (std::vector<int64_t>{-10, 0}));
  EXPECT_EQ(times_of(db_->read_history(twin(1), "power_kw", -11, 11, 100)),
            (std::vector<int64_t>{-10, 0, 10}));
  EXPECT_EQ(times_of(db_->read_history(twin(1), "power_kw", 20, 21, 100)),
            (std::vector<int64_t>{20}));
  EXPECT_TRUE(db_->read_history(twin(1), "power_kw", 10, 10, 100).empty());
  EXPECT_TRUE(db_->read_history(twin(1), "power_kw", 11, 20, 100).empty());
  EXPECT_TRUE(db_->read_history(twin(1), "power_kw", 20, -20, 100).empty());
}

TEST_F(Storage, HistoryLimitKeepsTheOldestPoints) {
  put_points(1, "power_kw", {{30, 4}, {-30, 1}, {10, 3}, {-10, 2}});
  EXPECT_EQ(times_of(db_->read_history(twin(1), "power_kw", min_ts, max_ts, 2)),
            (std::vector<int64_t>{-30, -10}));
  EXPECT_EQ(times_of(db_->read_history(twin(1), "power_kw", -10, max_ts, 1)),
            (std::vector<int64_t>{-10}));
  EXPECT_TRUE(db_->read_history(twin(1), "power_kw", min_ts, max_ts, 0).empty());
}

TEST_F(Storage, HistoryPointKeepsValueModelVersionSourceAndSeq) {
  auto wb = db_->new_batch();
  wb.put_history(twin(3), "vibration_mm_s", -5, 2.5, 4, "plc-7", 99);
  wb.put_history(twin(3), "vibration_mm_s", 5, 1.0 / 3.0, 5, "", 0);
  ASSERT_EQ(db_->commit_and_wait(std::move(wb)), "");
  auto points = all(3, "vibration_mm_s");
  ASSERT_EQ(points.size(), 2u);
  EXPECT_EQ(points[0].ts_ms, -5);
  EXPECT_EQ(points[0].value, 2.5);
  EXPECT_EQ(points[0].model_version, 4u);
  EXPECT_EQ(points[0].source, "plc-7");
  EXPECT_EQ(points[0].seq, 99u);
  EXPECT_EQ(points[1].ts_ms, 5);
  EXPECT_EQ(points[1].value, 1.0 / 3.0);
  EXPECT_EQ(points[1].model_version, 5u);
  EXPECT_EQ(points[1].source, "");
  EXPECT_EQ(points[1].seq, 0u);
}

// Regression: the key held only the timestamp, so a second source reporting
// the same channel in the same millisecond overwrote the first.
TEST_F(Storage, TwoSourcesInTheSameMillisecondAreBothKeptAndARedeliveryIsNot) {
  auto wb = db_->new_batch();
  wb.put_history(twin(3), "power_kw", 1000, 10, 1, "meter-a", 7);
  wb.put_history(twin(3), "power_kw", 1000, 20, 1, "meter-b", 7);
  wb.put_history(twin(3), "power_kw", 1000, 10, 1, "meter-a", 7); // again
  ASSERT_EQ(db_->commit_and_wait(std::move(wb)), "");
  auto points = all(3, "power_kw");
  ASSERT_EQ(points.size(), 2u);
  std::multiset<std::string> sources{points[0].source, points[1].source};
  EXPECT_EQ(sources, (std::multiset<std::string>{"meter-a", "meter-b"}));
}

TEST_F(Storage, HistoryDoesNotMixChannelsThatArePrefixesOfEachOther) {
  put_points(1, "power", {{-5, 1}, {5, 2}});
  put_points(1, "power_kw", {{-6, 10}, {0, 20}, {6, 30}});
  put_points(1, "powe", {{0, 100}});
  put_points(1, "receipt/SKU-1", {{0, 1000}});
  put_points(1, "receipt/SKU-10", {{1, 2000}});
  EXPECT_EQ(values_of(all(1, "power")), (std::vector<double>{1, 2}));
  EXPECT_EQ(values_of(all(1, "power_kw")), (std::vector<double>{10, 20, 30}));
  EXPECT_EQ(values_of(all(1, "powe")), (std::vector<double>{100}));
  EXPECT_EQ(values_of(all(1, "receipt/SKU-1")), (std::vector<double>{1000}));
  EXPECT_EQ(values_of(all(1, "receipt/SKU-10")), (std::vector<double>{2000}));
  EXPECT_TRUE(all(1, "pow").empty());
  EXPECT_TRUE(all(1, "power_k").empty());
  EXPECT_TRUE(all(1, "receipt").empty());
}

TEST_F(Storage, HistoryDoesNotMixTwins) {
  // 1 and 256 differ in one byte of the big-endian number; 0x01000000 starts
  // with the byte that ends 1.
  put_points(1, "power_kw", {{0, 1}, {10, 2}});
  put_points(2, "power_kw", {{5, 3}});
  put_points(256, "power_kw", {{7, 4}});
  put_points(0x0100'0000, "power_kw", {{9, 5}});
  EXPECT_EQ(values_of(all(1, "power_kw")), (std::vector<double>{1, 2}));
  EXPECT_EQ(values_of(all(2, "power_kw")), (std::vector<double>{3}));
  EXPECT_EQ(values_of(all(256, "power_kw")), (std::vector<double>{4}));
  EXPECT_EQ(values_of(all(0x0100'0000, "power_kw")), (std::vector<double>{5}));
  EXPECT_TRUE(all(3, "power_kw").empty());
}

TEST_F(Storage, HistoryReadsBackAfterReopen) {
  put_points(4, "temperature_c", {{-1, 1.5}, {1, 2.5}});
  reopen();
  EXPECT_EQ(values_of(all(4, "temperature_c")), (std::vector<double>{1.5, 2.5}));
}

// -- metas and models -------------------------------------------------------------

bool same_meta(const twin_meta& a, const twin_meta& b) {
  return std::tie(a.id, a.number, a.kind, a.parent) == std::tie(b.id, b.number, b.kind, b.parent);
}

std::vector<twin_meta> sorted(std::vector<twin_meta> v) {
  std::sort(v.begin(), v.end(), [](auto& a, auto& b) { return a.id < b.id; });
  return v;
}

TEST_F(Storage, MetasWrittenReadBackAfterReopen) {
  std::vector<twin_meta> metas{
    {"acme", 1, "enterprise", ""},
    {"acme/plant-1", 2, "plant", "acme"},
    {"acme/plant-1/line-1", 3, "line", "acme/plant-1"},
    {"acme/plant-1/line-1/press-7", 300, "machine", "acme/plant-1/line-1"},
    {"acme/wh-1", 70'000, "warehouse", "acme"},
  };
  auto wb = db_->new_batch();
  for (auto& m : metas)
    wb.put_meta(m);
  // Other records in the same database must not read back as metas.
  wb.put_state(twin(1), full_state());
  wb.put_history(twin(1), "power_kw", 0, 1, 1, "", 0);
  wb.put_model({"machine", 1, "kind = \"machine\"\nversion = 1\n"});
  ASSERT_EQ(db_->commit_and_wait(std::move(wb)), "");
  reopen();
  auto back = sorted(db_->load_metas());
  ASSERT_EQ(back.size(), metas.size());
  for (size_t i = 0; i < metas.size(); ++i)
    EXPECT_TRUE(same_meta(back[i], metas[i])) << "meta " << metas[i].id;
}

TEST_F(Storage, MetaOverwrittenAndDeleted) {
  auto wb = db_->new_batch();
  wb.put_meta({"acme/line-1/m1", 5, "machine", "acme/line-1"});
  wb.put_meta({"acme/line-1/m10", 6, "machine", "acme/line-1"});
  ASSERT_EQ(db_->commit_and_wait(std::move(wb)), "");
  auto wb2 = db_->new_batch();
  wb2.put_meta({"acme/line-1/m10", 6, "machine", "acme/line-2"});
  wb2.delete_twin({"acme/line-1/m1", 5});
  ASSERT_EQ(db_->commit_and_wait(std::move(wb2)), "");
  auto back = db_->load_metas();
  ASSERT_EQ(back.size(), 1u);
  EXPECT_TRUE(same_meta(back[0], {"acme/line-1/m10", 6, "machine", "acme/line-2"}));
}

TEST_F(Storage, ModelsWrittenReadBackAfterReopen) {
  std::vector<stored_model> models{
    {"line", 1, "kind = \"line\"\nversion = 1\n"},
    {"line_b", 1, "kind = \"line_b\"\nversion = 1\n"},
    {"machine", 1, "kind = \"machine\"\nversion = 1\n# v1\n"},
    {"machine", 2, "kind = \"machine\"\nversion = 2\n# v2\n"},
    {"machine", 256, "kind = \"machine\"\nversion = 256\n# v256\n"},
  };
  auto wb = db_->new_batch();
  for (auto it = models.rbegin(); it != models.rend(); ++it)
    wb.put_model(*it);
  wb.put_meta({"acme", 1, "enterprise", ""});
  ASSERT_EQ(db_->commit_and_wait(std::move(wb)), "");
  reopen();
  auto back = db_->load_models();
  ASSERT_EQ(back.size(), models.size());
  // Stored by kind, then by version in numeric order (big-endian keys).
  for (size_t i = 0; i < models.size(); ++i) {
    EXPECT_EQ(back[i].kind, models[i].kind) << i;
    EXPECT_EQ(back[i].version, models[i].version) << i;
    EXPECT_EQ(back[i].text, models[i].text) << i;
  }
}

TEST_F(Storage, SameModelVersionWrittenTwiceIsStoredOnce) {
  auto wb = db_->new_batch();
  wb.put_model({"machine", 3, "first"});
  wb.put_model({"machine", 3, "second"});
  ASSERT_EQ(db_->commit_and_wait(std::move(wb)), "");
  auto back = db_->load_models();
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].text, "second");
}

TEST_F(Storage, CommitRunsDoneOnceDataIsReadable) {
  std::mutex m;
  std::condition_variable cv;
  bool done = false;
  bool visible_in_done = false;
  auto wb = db_->new_batch();
  wb.put_history(twin(8), "power_kw", 42, 1.5, 1, "", 0);
  db_->commit(std::move(wb), [&](const std::string&) {
    std::lock_guard<std::mutex> g(m);
    visible_in_done = db_->read_history(twin(8), "power_kw", 42, 43, 10).size() == 1;
    done = true;
    cv.notify_all();
  });
  std::unique_lock<std::mutex> g(m);
  ASSERT_TRUE(cv.wait_for(g, std::chrono::seconds(120), [&] { return done; })); // a broken build
  EXPECT_TRUE(visible_in_done);
}

// -- virtual shards -------------------------------------------------------------

TEST_F(Storage, NewDataGetsTheDefaultVirtualShardCount) {
  EXPECT_EQ(db_->virtual_shards(), 256u);
}

TEST_F(Storage, VirtualShardCountIsFixedWhenTheDataIsCreated) {
  wipe();
  reopen(64);
  EXPECT_EQ(db_->virtual_shards(), 64u);
  reopen(256);
  EXPECT_EQ(db_->virtual_shards(), 64u) << "the configured count applies to new data only";
  reopen(1000);
  EXPECT_EQ(db_->virtual_shards(), 64u);
}

TEST_F(Storage, DataWrittenBeforeTheCountWasKeptGetsTheDefault) {
  auto wb = db_->new_batch();
  wb.put_meta({"acme", 1, "enterprise", ""});
  ASSERT_EQ(db_->commit_and_wait(std::move(wb)), "");
  // As an older build left it: twins, but no count.
  ASSERT_TRUE(raw_db(*db_).Delete(rocksdb::WriteOptions(), keys::virtual_shards()).ok());
  reopen(64);
  EXPECT_EQ(db_->virtual_shards(), 256u);
  reopen(64);
  EXPECT_EQ(db_->virtual_shards(), 256u) << "stored by the first open";
}

TEST_F(Storage, NewDataWithAVirtualShardCountOutOfRangeIsRefused) {
  for (uint32_t n : {0u, 65537u}) {
    wipe();
    std::string error;
    auto db = storage::open(options(n), error);
    EXPECT_EQ(db, nullptr) << n;
    EXPECT_NE(error.find("virtual_shards = " + std::to_string(n) + " is outside 1..65536"),
              std::string::npos)
      << error;
  }
}

TEST_F(Storage, AnUnreadableStoredVirtualShardCountIsRefusedNamingTheDirectory) {
  ASSERT_TRUE(raw_db(*db_).Put(rocksdb::WriteOptions(), keys::virtual_shards(), "xyz").ok());
  db_.reset();
  std::string error;
  auto db = storage::open(options(256), error);
  EXPECT_EQ(db, nullptr);
  EXPECT_EQ(error, "data directory " + dir_.string()
                     + ": the stored number of virtual shards is 3 bytes long, not 1..65536");
}

// -- corrupt records --------------------------------------------------------------

// The ways a stored value goes bad: every one must come back as an error.
std::vector<std::pair<std::string, std::string>> corruptions_of(const std::string& good) {
  std::vector<std::pair<std::string, std::string>> out{
    {"empty", ""},
    {"not whole words", good.substr(0, good.size() - 3)},
    {"truncated by a word", good.substr(0, good.size() - 8)},
    {"only the segment table", good.substr(0, 8)},
    {"a word too many", good + std::string(8, '\0')},
    {"text", "not a capnp record at all, just text!!!"},
  };
  // A segment table that claims more words than there are.
  auto huge = good;
  huge[4] = '\xff', huge[5] = '\xff', huge[6] = '\xff', huge[7] = '\x0f';
  out.emplace_back("segment size beyond the value", huge);
  // 0xff over the root pointer: a far pointer to a segment that is not there.
  auto far = good;
  for (int i = 8; i < 16; ++i)
    far[static_cast<size_t>(i)] = '\xff';
  out.emplace_back("root pointer out of bounds", far);
  return out;
}

TEST(StateCodec, CorruptStateIsRefusedWithItsReasonNotThrown) {
  auto good = storage::encode_state(full_state());
  ASSERT_TRUE(storage::decode_state(good));
  for (auto& [what, bytes] : corruptions_of(good)) {
    auto st = storage::decode_state(bytes);
    ASSERT_FALSE(st) << what;
    EXPECT_EQ(code_of(st.error()), errc::corrupt_record) << what;
    EXPECT_EQ(describe(st.error()).rfind("stored TwinState: ", 0), 0u)
      << what << ": " << describe(st.error());
  }
}

TEST(StateCodec, StockThatIsNoWholeNumberOfUnitsIsCorrupt) {
  for (double units : {std::numeric_limits<double>::quiet_NaN(), 1e300, -1e19, 2.5}) {
    capnp::MallocMessageBuilder msg;
    auto stock = msg.initRoot<records::TwinState>().initStock(1);
    stock[0].setKey("SKU-1");
    stock[0].setValue(units);
    auto words = capnp::messageToFlatArray(msg);
    auto st = storage::decode_state(std::string(
      reinterpret_cast<const char*>(words.asBytes().begin()), words.asBytes().size()));
    ASSERT_FALSE(st) << units;
    EXPECT_NE(describe(st.error()).find("stock of SKU-1"), std::string::npos)
      << describe(st.error());
  }
}

TEST(RecordCodecs, EveryDecoderRefusesGarbage) {
  const std::string garbage = "\x01\x00\x00\x00\x02\x00\x00\x00garbage!garbage!";
  EXPECT_EQ(code_of(storage::decode_meta(garbage).error()), errc::corrupt_record);
  EXPECT_EQ(code_of(storage::decode_history_point(garbage).error()), errc::corrupt_record);
  EXPECT_EQ(code_of(storage::decode_model(garbage).error()), errc::corrupt_record);
  EXPECT_EQ(code_of(storage::decode_alert(garbage).error()), errc::corrupt_record);
  EXPECT_EQ(code_of(storage::decode_event(garbage).error()), errc::corrupt_record);
}

TEST_F(Storage, CorruptStateReadsAsAbsentAndIsCountedOnce) {
  auto wb = db_->new_batch();
  wb.put_state(twin(9), full_state());
  // One segment of five words, of which one is there.
  wb.put_encoded_state(twin(10), std::string("\0\0\0\0\5\0\0\0broken!!", 16));
  ASSERT_EQ(db_->commit_and_wait(std::move(wb)), "");
  EXPECT_FALSE(db_->load_state(twin(10)).has_value());
  EXPECT_FALSE(db_->load_state(twin(10)).has_value());
  EXPECT_EQ(db_->corrupt_records(), 1u) << "each key is counted once";
  ASSERT_TRUE(db_->load_state(twin(9)).has_value()) << "a good neighbour still reads";
  std::map<uint32_t, bool> read;
  db_->for_each_state([&](uint32_t number, caf::expected<twins::twin_state>& st) {
    read[number] = static_cast<bool>(st);
  });
  EXPECT_EQ(read, (std::map<uint32_t, bool>{{9, true}, {10, false}}));
  EXPECT_EQ(db_->corrupt_records(), 1u) << "the same key";
}

TEST_F(Storage, CorruptHistoryPointIsSkippedAndTheOthersRead) {
  put_points(1, "power_kw", {{10, 1}, {20, 2}, {30, 3}});
  // Overwrite the middle point's value, keeping its key.
  auto middle = keys::history(db_->shard_of(twin(1).id), 1, "power_kw", 20, "", 0);
  put_raw(middle, "garbage");
  EXPECT_EQ(times_of(all(1, "power_kw")), (std::vector<int64_t>{10, 30}));
  EXPECT_EQ(db_->corrupt_records(), 1u);
}

TEST_F(Storage, CorruptMetaModelAndAlertAreSkipped) {
  auto wb = db_->new_batch();
  wb.put_meta({"a/good", 1, "machine", ""});
  wb.put_model({"machine", 1, "text"});
  alert_record a;
  a.id = 1;
  a.twin = "a/good";
  wb.put_alert(a);
  ASSERT_EQ(db_->commit_and_wait(std::move(wb)), "");
  put_raw(keys::meta(db_->shard_of("a/bad"), "a/bad"), "xxxxxxxx");
  put_raw(keys::model("line", 1), std::string(16, '\xff'));
  put_raw(keys::alert(db_->shard_of("a/good"), 2), "");
  auto metas = db_->load_metas();
  ASSERT_EQ(metas.size(), 1u);
  EXPECT_EQ(metas[0].id, "a/good");
  ASSERT_EQ(db_->load_models().size(), 1u);
  EXPECT_EQ(db_->load_alerts().size(), 1u);
  EXPECT_FALSE(db_->load_alert(2).has_value());
  EXPECT_TRUE(db_->load_alert(1).has_value());
  EXPECT_EQ(db_->corrupt_records(), 3u);
}

TEST_F(Storage, CorruptCursorIsRefusedAsNone) {
  put_raw(keys::cursor("slow"), "123"); // a cursor is 8 bytes
  EXPECT_EQ(db_->load_cursor("slow"), 0u);
  EXPECT_EQ(db_->corrupt_records(), 1u);
}

TEST(StorageOpen, UnopenablePathIsRefusedNamingThePath) {
  auto base = std::filesystem::temp_directory_path()
              / ("twinrt-storage-file-" + std::to_string(::getpid()));
  { std::ofstream(base.string()) << "not a directory"; }
  std::string error;
  storage_options opts;
  opts.path = (base / "db").string();
  auto db = storage::open(opts, error);
  EXPECT_EQ(db, nullptr);
  EXPECT_NE(error.find(opts.path), std::string::npos) << error;
  std::filesystem::remove(base);
}


// -- virtual shard ranges ----------------------------------------------------------

// Twin ids whose virtual shards differ, with their shards.
struct two_twins {
  std::string a, b;
  uint32_t sa = 0, sb = 0;
};

two_twins in_two_shards(const storage& db) {
  two_twins t{"acme/line-1/m1", "", db.shard_of("acme/line-1/m1"), 0};
  for (int i = 2;; ++i) {
    t.b = "acme/line-1/m" + std::to_string(i);
    t.sb = db.shard_of(t.b);
    if (t.sb != t.sa)
      return t;
  }
}

// Writes meta, state, three history points and an alert of each twin.
void write_twin(storage& db, const std::string& id, uint32_t number, uint64_t alert_id) {
  auto wb = db.new_batch();
  twin_meta m{id, number, "machine", "acme/line-1"};
  wb.put_meta(m);
  wb.put_state(m, full_state());
  for (int64_t ts : {10, 20, 30})
    wb.put_history(m, "power_kw", ts, 1.5, 1, "plc", static_cast<uint64_t>(ts));
  alert_record a;
  a.id = alert_id;
  a.twin = id;
  a.rule = "overheat";
  wb.put_alert(a);
  ASSERT_EQ(db.commit_and_wait(std::move(wb)), "");
}

TEST_F(Storage, AShardsRecordsAreOneRangeToIterateCountAndDelete) {
  auto t = in_two_shards(*db_);
  write_twin(*db_, t.a, 1, 1);
  write_twin(*db_, t.b, 2, 2);
  auto model = db_->new_batch();
  model.put_model({"machine", 1, "text"});
  ASSERT_EQ(db_->commit_and_wait(std::move(model)), "");

  size_t n = 0;
  db_->for_each_record(t.sa, [&](std::string_view, std::string_view) { ++n; });
  EXPECT_EQ(n, 6u) << "meta, state, three points, an alert: the twin's records and no other";
  auto size = db_->shard_size(t.sa);
  EXPECT_EQ(size.records, 6u);
  EXPECT_GT(size.bytes, 0u);
  EXPECT_EQ(db_->shard_size(t.sb).records, 6u);
  EXPECT_EQ(db_->load_metas(t.sa).size(), 1u);
  EXPECT_EQ(db_->load_metas(t.sa).front().id, t.a);

  auto drop = db_->new_batch();
  drop.delete_shard(t.sa);
  ASSERT_EQ(db_->commit_and_wait(std::move(drop)), "");
  EXPECT_EQ(db_->shard_size(t.sa).records, 0u);
  EXPECT_TRUE(db_->load_metas(t.sa).empty());
  EXPECT_FALSE(db_->load_state({t.a, 1}).has_value());
  EXPECT_TRUE(db_->read_history({t.a, 1}, "power_kw", min_ts, max_ts, 100).empty());
  EXPECT_FALSE(db_->load_alert(1).has_value());
  // The other shard and the node-wide records stay.
  EXPECT_EQ(db_->shard_size(t.sb).records, 6u);
  EXPECT_TRUE(db_->load_state({t.b, 2}).has_value());
  EXPECT_EQ(db_->read_history({t.b, 2}, "power_kw", min_ts, max_ts, 100).size(), 3u);
  ASSERT_TRUE(db_->load_alert(2).has_value());
  EXPECT_EQ(db_->load_alert(2)->twin, t.b);
  EXPECT_EQ(db_->load_models().size(), 1u);
  ASSERT_EQ(db_->load_metas().size(), 1u);
  EXPECT_EQ(db_->load_metas().front().id, t.b);
}

TEST_F(Storage, TheLastShardsRangeEndsAndAShardOutOfRangeHasNothing) {
  wipe();
  reopen(4);
  std::string id;
  for (int i = 0; db_->shard_of(id = "t" + std::to_string(i)) != 3; ++i) {
  }
  write_twin(*db_, id, 7, 9);
  EXPECT_EQ(db_->shard_size(3).records, 6u);
  EXPECT_EQ(db_->shard_size(4).records, 0u);
  auto drop = db_->new_batch();
  drop.delete_shard(3);
  ASSERT_EQ(db_->commit_and_wait(std::move(drop)), "");
  EXPECT_EQ(db_->shard_size(3).records, 0u);
  EXPECT_TRUE(db_->load_metas().empty());
}

TEST_F(Storage, AlertsOfManyShardsLoadOldestFirst) {
  auto t = in_two_shards(*db_);
  write_twin(*db_, t.a, 1, 5);
  write_twin(*db_, t.b, 2, 3);
  write_twin(*db_, t.a, 1, 4);
  std::vector<uint64_t> ids;
  for (auto& a : db_->load_alerts())
    ids.push_back(a.id);
  EXPECT_EQ(ids, (std::vector<uint64_t>{3, 4, 5}));
  EXPECT_EQ(db_->last_alert_id(), 5u);
}

TEST_F(Storage, NewDataIsStoredInTheCurrentLayout) {
  std::string v;
  ASSERT_TRUE(raw_db(*db_).Get(rocksdb::ReadOptions(), keys::layout_version(), &v).ok());
  ASSERT_EQ(v.size(), 4u);
  EXPECT_EQ(keys::read_be32(v.data()), keys::current_layout);
}

} // namespace
} // namespace twinrt::runtime
