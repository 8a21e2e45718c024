// Sealed history chunks in a real RocksDB on disk: stored, read beside the
// per-sample points, refused when they are no chunk, deleted with their twin.

#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include <unistd.h>

#include <gtest/gtest.h>

#include "twinrt/runtime/storage/impl.hpp"
#include "twinrt/runtime/storage/keys.hpp"
#include "twinrt/twins/chunk.hpp"

namespace twinrt::runtime {
namespace {

constexpr int64_t min_ts = std::numeric_limits<int64_t>::min();
constexpr int64_t max_ts = std::numeric_limits<int64_t>::max();
constexpr int64_t hour = 3'600'000;

class HistoryChunks : public ::testing::Test {
protected:
  void SetUp() override {
    auto base = std::filesystem::temp_directory_path();
    for (int i = 0;; ++i) {
      dir_ = base / ("twinrt-chunks-test-" + std::to_string(::getpid()) + "-" + std::to_string(i));
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

  void reopen() {
    db_.reset();
    storage_options opts;
    opts.path = dir_.string();
    opts.sync_wal = false;
    opts.write_buffer_mb = 4;
    opts.block_cache_mb = 4;
    std::string error;
    db_ = storage::open(opts, error);
    ASSERT_NE(db_, nullptr) << error;
  }

  // A chunk of `points` (ts, value), sealed.
  static std::string chunk(const std::vector<std::pair<int64_t, double>>& points,
                           const std::string& source = "", uint64_t first_seq = 0) {
    twins::chunk_encoder e;
    uint64_t seq = first_seq;
    for (auto& [ts, v] : points)
      EXPECT_FALSE(e.append(ts, v, 2, source, first_seq ? seq++ : 0));
    return e.seal();
  }

  void put_chunk(const std::string& bytes, const std::string& channel = "power_kw") {
    auto wb = db_->new_batch();
    ASSERT_EQ(wb.put_chunk(twin_, channel, bytes), "");
    ASSERT_EQ(db_->commit_and_wait(std::move(wb)), "");
  }

  void put_points(const std::vector<std::pair<int64_t, double>>& points) {
    auto wb = db_->new_batch();
    for (auto& [ts, v] : points)
      wb.put_history(twin_, "power_kw", ts, v, 1, "", 0);
    ASSERT_EQ(db_->commit_and_wait(std::move(wb)), "");
  }

  std::vector<int64_t> times(int64_t from = min_ts, int64_t to = max_ts, size_t limit = 1000) {
    std::vector<int64_t> out;
    for (auto& p : db_->read_history(twin_, "power_kw", from, to, limit))
      out.push_back(p.ts_ms);
    return out;
  }

  std::filesystem::path dir_;
  std::unique_ptr<storage> db_;
  std::string id_ = "acme/line-1/m1";
  twin_ref twin_{id_, 7};
};

TEST_F(HistoryChunks, ChunksAndPointsReadAsOneHistoryOldestFirst) {
  put_points({{1000, 1}, {5000, 5}, {20'000, 20}});
  put_chunk(chunk({{2000, 2}, {3000, 3}, {4000, 4}}));
  put_chunk(chunk({{10'000, 10}, {11'000, 11}}));
  EXPECT_EQ(times(), (std::vector<int64_t>{1000, 2000, 3000, 4000, 5000, 10'000, 11'000, 20'000}));
  EXPECT_EQ(times(3000, 10'001), (std::vector<int64_t>{3000, 4000, 5000, 10'000}));
  EXPECT_EQ(times(min_ts, max_ts, 3), (std::vector<int64_t>{1000, 2000, 3000}));
  EXPECT_TRUE(times(4001, 5000).empty());
  reopen();
  EXPECT_EQ(times().size(), 8u);
  // Another channel, and another twin, see none of it.
  EXPECT_TRUE(db_->read_history(twin_, "power", min_ts, max_ts, 100).empty());
  EXPECT_TRUE(db_->read_history({id_, 8}, "power_kw", min_ts, max_ts, 100).empty());
}

TEST_F(HistoryChunks, AChunksPointsKeepValueModelVersionSourceAndSeq) {
  put_chunk(chunk({{1000, 1.25}, {2000, -7.5}}, "plc-1", 41));
  auto points = db_->read_history(twin_, "power_kw", min_ts, max_ts, 10);
  ASSERT_EQ(points.size(), 2u);
  EXPECT_EQ(points[1].ts_ms, 2000);
  EXPECT_EQ(points[1].value, -7.5);
  EXPECT_EQ(points[1].model_version, 2u);
  EXPECT_EQ(points[1].source, "plc-1");
  EXPECT_EQ(points[1].seq, 42u);
}

TEST_F(HistoryChunks, ManyWindowsReadInOrderUpToTheLimitAndAtTheEndsOfTime) {
  std::vector<int64_t> want;
  for (int64_t w = 0; w < 10; ++w) {
    put_chunk(chunk({{w * 2 * hour + 1, 1}, {w * 2 * hour + 2, 2}}));
    want.push_back(w * 2 * hour + 1);
    want.push_back(w * 2 * hour + 2);
  }
  std::sort(want.begin(), want.end());
  // Written windows are aligned in key space, not on the hour: whatever
  // window a chunk fell into, the read finds it.
  EXPECT_EQ(times(), want);
  EXPECT_EQ(times(min_ts, max_ts, 5), std::vector<int64_t>(want.begin(), want.begin() + 5));
  EXPECT_EQ(times(want[7], want[12]), std::vector<int64_t>(want.begin() + 7, want.begin() + 12));
  put_chunk(chunk({{min_ts, 0}, {min_ts + 1, 0}}));
  put_chunk(chunk({{max_ts - 1, 0}, {max_ts, 0}}));
  auto all = times();
  ASSERT_EQ(all.size(), want.size() + 3) << "max_ts itself is past an exclusive to";
  EXPECT_EQ(all.front(), min_ts);
  EXPECT_EQ(all.back(), max_ts - 1) << "to is exclusive";
}

TEST_F(HistoryChunks, WhatIsNoChunkOrSpansTwoWindowsIsRefusedAndNothingIsAdded) {
  auto wb = db_->new_batch();
  auto good = chunk({{1000, 1}, {2000, 2}});
  auto bad = good;
  bad[bad.size() / 2] ^= 0x04;
  EXPECT_NE(wb.put_chunk(twin_, "power_kw", bad).find("CRC-32 mismatch"), std::string::npos);
  EXPECT_NE(wb.put_chunk(twin_, "power_kw", "").find("history chunk"), std::string::npos);
  // A window boundary lies between two points 2 h apart.
  auto wide = chunk({{0, 1}, {history_chunk_window_ms, 2}});
  EXPECT_NE(wb.put_chunk(twin_, "power_kw", wide).find("lie in two windows"), std::string::npos);
  EXPECT_TRUE(wb.empty());
}

TEST_F(HistoryChunks, TheSameChunkPutTwiceIsStoredOnce) {
  auto c = chunk({{1000, 1}, {2000, 2}});
  put_chunk(c);
  put_chunk(c);
  EXPECT_EQ(times(), (std::vector<int64_t>{1000, 2000}));
  put_chunk(chunk({{1000, 1.5}})); // another chunk of the same millisecond: kept beside it
  EXPECT_EQ(times(), (std::vector<int64_t>{1000, 1000, 2000}));
}

TEST_F(HistoryChunks, ACorruptStoredChunkIsSkippedCountedAndTheOthersRead) {
  put_chunk(chunk({{1000, 1}}));
  put_chunk(chunk({{2000, 2}}));
  auto good = chunk({{2000, 2}});
  auto crc = keys::read_be32(good.data() + good.size() - 4);
  auto key = keys::chunk(db_->shard_of(id_), 7, "power_kw", 2000, crc);
  auto flipped = good;
  flipped[3] ^= 0x01;
  ASSERT_TRUE(raw_db(*db_).Put(rocksdb::WriteOptions(), key, flipped).ok());
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(times(), (std::vector<int64_t>{1000}));
  auto log = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(log.find("corrupt record refused: history chunk of twin #7 channel power_kw from "
                     "2000 ms: stored history chunk: CRC-32 mismatch"),
            std::string::npos)
    << log;
  EXPECT_EQ(db_->corrupt_records(), 1u);
}

TEST_F(HistoryChunks, DeletingTheTwinOrItsShardDeletesItsChunks) {
  put_chunk(chunk({{1000, 1}}));
  twin_ref other{id_, 8};
  auto wb = db_->new_batch();
  ASSERT_EQ(wb.put_chunk(other, "power_kw", chunk({{1000, 1}})), "");
  ASSERT_EQ(db_->commit_and_wait(std::move(wb)), "");
  auto drop = db_->new_batch();
  drop.delete_twin(twin_);
  ASSERT_EQ(db_->commit_and_wait(std::move(drop)), "");
  EXPECT_TRUE(times().empty());
  EXPECT_EQ(db_->read_history(other, "power_kw", min_ts, max_ts, 10).size(), 1u);
  auto shard = db_->new_batch();
  shard.delete_shard(db_->shard_of(id_));
  ASSERT_EQ(db_->commit_and_wait(std::move(shard)), "");
  EXPECT_TRUE(db_->read_history(other, "power_kw", min_ts, max_ts, 10).empty());
}

} // namespace
} // namespace twinrt::runtime
