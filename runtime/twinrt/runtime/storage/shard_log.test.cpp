// The shard log on a real RocksDB on disk: numbering across restarts, the
// records' contents, per-shard isolation, trimming, and corrupt records.

#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include <unistd.h>

#include <gtest/gtest.h>

#include "twinrt/runtime/errc.hpp"
#include "twinrt/runtime/storage/impl.hpp"
#include "twinrt/runtime/storage/keys.hpp"
#include "twinrt/runtime/storage/shard_log.hpp"

namespace twinrt::runtime {

void PrintTo(const log_sample& s, std::ostream* os) {
  *os << "{" << s.twin << "." << s.channel << " ts " << s.ts_ms << " value " << s.value << " v"
      << s.model_version << " source '" << s.source << "' seq " << s.seq << "}";
}

namespace {

class ShardLog : public ::testing::Test {
protected:
  void SetUp() override {
    auto base = std::filesystem::temp_directory_path();
    for (int i = 0;; ++i) {
      dir_ = base / ("twinrt-shard-log-test-" + std::to_string(::getpid()) + "-"
                     + std::to_string(i));
      if (std::filesystem::create_directories(dir_))
        break;
    }
    reopen();
    // Two twins in one shard, a third in another.
    a1_ = "acme/m1";
    sa_ = db_->shard_of(a1_);
    for (int i = 2; a2_.empty() || b_.empty(); ++i) {
      auto id = "acme/m" + std::to_string(i);
      if (db_->shard_of(id) == sa_ && a2_.empty())
        a2_ = id;
      else if (db_->shard_of(id) != sa_ && b_.empty())
        b_ = id;
    }
    sb_ = db_->shard_of(b_);
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
    opts.sync_wal = true;
    opts.write_buffer_mb = 4;
    opts.block_cache_mb = 4;
    std::string error;
    db_ = storage::open(opts, error);
    ASSERT_NE(db_, nullptr) << error;
  }

  // Commits `samples` as one batch (history and log, as a shard does).
  void commit(const std::vector<log_sample>& samples) {
    auto wb = db_->new_batch();
    for (auto& s : samples) {
      twin_ref twin{s.twin, number(s.twin)};
      wb.put_history(twin, s.channel, s.ts_ms, s.value, s.model_version, s.source, s.seq);
      wb.log_sample(twin, s.channel, s.ts_ms, s.value, s.model_version, s.source, s.seq);
    }
    ASSERT_EQ(db_->commit_and_wait(std::move(wb)), "");
  }

  void trim(uint32_t shard, uint64_t through) {
    auto wb = db_->new_batch();
    wb.trim_log(shard, through);
    ASSERT_EQ(db_->commit_and_wait(std::move(wb)), "");
  }

  uint32_t number(const std::string& id) {
    return numbers_.emplace(id, static_cast<uint32_t>(numbers_.size() + 1)).first->second;
  }

  // Every record of `shard` from `from`, decoded; fails the test on an error.
  std::vector<log_record> read_all(uint32_t shard, uint64_t from = 0) {
    auto page = db_->read_log(shard, from, std::numeric_limits<size_t>::max());
    EXPECT_FALSE(page.error) << describe(page.error);
    std::vector<log_record> out;
    for (auto& bytes : page.records) {
      auto r = storage::decode_log_record(bytes);
      EXPECT_TRUE(r) << describe(r.error());
      if (r)
        out.push_back(std::move(*r));
    }
    return out;
  }

  std::vector<uint64_t> seqs(uint32_t shard, uint64_t from = 0) {
    std::vector<uint64_t> out;
    for (auto& r : read_all(shard, from))
      out.push_back(r.seq);
    return out;
  }

  log_sample sample(const std::string& twin, int64_t ts, double value = 1.5) {
    return {twin, "power_kw", ts, value, 1, "", 0};
  }

  std::filesystem::path dir_;
  std::unique_ptr<storage> db_;
  std::map<std::string, uint32_t> numbers_;
  std::string a1_, a2_, b_;
  uint32_t sa_ = 0, sb_ = 0;
};

TEST_F(ShardLog, SequencesStartAtOneAndContinueAfterARestart) {
  EXPECT_EQ(db_->last_log_seq(sa_), 0u);
  EXPECT_TRUE(read_all(sa_).empty());
  for (int64_t ts : {1, 2, 3})
    commit({sample(a1_, ts)});
  EXPECT_EQ(db_->last_log_seq(sa_), 3u);
  reopen();
  EXPECT_EQ(db_->last_log_seq(sa_), 3u);
  commit({sample(a1_, 4)});
  commit({sample(a2_, 5)});
  EXPECT_EQ(seqs(sa_), (std::vector<uint64_t>{1, 2, 3, 4, 5}));
  EXPECT_EQ(seqs(sa_, 4), (std::vector<uint64_t>{4, 5}));
  for (auto& r : read_all(sa_))
    EXPECT_EQ(r.shard, sa_);
}

TEST_F(ShardLog, ARecordDecodesToExactlyTheBatchsSamplesInOrder) {
  constexpr auto inf = std::numeric_limits<double>::infinity();
  std::vector<log_sample> batch = {
    {a1_, "power_kw", 1'700'000'000'000, 12.5, 3, "plc-1", 17},
    {a1_, "temperature_c", 1'700'000'000'000, -0.0, 3, "plc-1", 18},
    {a1_, "power_kw", 1'699'999'999'000, 1e-300, 3, "", 0}, // back in time
    {a1_, "receipt/SKU-1", std::numeric_limits<int64_t>::min(), inf, 3, "wms", ~uint64_t{0}},
    {a2_, "power_kw", std::numeric_limits<int64_t>::max(), -inf, 7, "plc-1", 1},
    {a2_, "power_kw", 0, std::numeric_limits<double>::quiet_NaN(), 7, "", 5},
    {a1_, "power_kw", -5, 1.7976931348623157e308, 4, "plc-2", 2}, // a new model version
  };
  commit(batch);
  auto records = read_all(sa_);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].shard, sa_);
  EXPECT_EQ(records[0].seq, 1u);
  EXPECT_EQ(records[0].samples, batch);
}

TEST_F(ShardLog, EachVirtualShardHasItsOwnRecordsAndSequence) {
  commit({sample(a1_, 1), sample(b_, 2), sample(a2_, 3), sample(b_, 4)});
  commit({sample(a1_, 5)});
  auto a = read_all(sa_);
  auto b = read_all(sb_);
  ASSERT_EQ(a.size(), 2u);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(a[0].samples, (std::vector<log_sample>{sample(a1_, 1), sample(a2_, 3)}));
  EXPECT_EQ(a[1].samples, (std::vector<log_sample>{sample(a1_, 5)}));
  EXPECT_EQ(b[0].seq, 1u);
  EXPECT_EQ(b[0].samples, (std::vector<log_sample>{sample(b_, 2), sample(b_, 4)}));
  EXPECT_EQ(db_->last_log_seq(sa_), 2u);
  EXPECT_EQ(db_->last_log_seq(sb_), 1u);

  // The log is part of its shard's range: it goes with the shard, and the
  // shard's log starts again at 1; the other shard's is untouched.
  size_t log_keys = 0;
  db_->for_each_record(sa_, [&](std::string_view k, std::string_view) {
    uint64_t seq = 0;
    log_keys += keys::log_seq_of(k, sa_, seq);
  });
  EXPECT_EQ(log_keys, 2u);
  auto drop = db_->new_batch();
  drop.delete_shard(sa_);
  ASSERT_EQ(db_->commit_and_wait(std::move(drop)), "");
  EXPECT_EQ(db_->last_log_seq(sa_), 0u);
  EXPECT_TRUE(read_all(sa_).empty());
  commit({sample(a1_, 6)});
  EXPECT_EQ(seqs(sa_), (std::vector<uint64_t>{1}));
  EXPECT_EQ(seqs(sb_), (std::vector<uint64_t>{1}));
  reopen();
  EXPECT_EQ(db_->last_log_seq(sa_), 1u);
}

TEST_F(ShardLog, AReadStopsAtTheByteBoundButReturnsAtLeastOneRecord) {
  for (int64_t ts = 1; ts <= 4; ++ts)
    commit({sample(a1_, ts), sample(a1_, ts + 100)});
  auto one = db_->read_log(sa_, 0, 1);
  EXPECT_FALSE(one.error);
  ASSERT_EQ(one.records.size(), 1u);
  EXPECT_EQ(one.next, 2u);
  auto size = one.records[0].size();
  auto two = db_->read_log(sa_, 2, 2 * size + 1);
  EXPECT_EQ(two.records.size(), 2u);
  EXPECT_EQ(two.next, 4u);
  auto rest = db_->read_log(sa_, two.next, 1 << 20);
  EXPECT_EQ(rest.records.size(), 1u);
  EXPECT_EQ(rest.next, 5u);
  auto none = db_->read_log(sa_, rest.next, 1 << 20);
  EXPECT_TRUE(none.records.empty());
  EXPECT_FALSE(none.error);
  EXPECT_EQ(none.next, 5u);
  auto out_of_range = db_->read_log(db_->virtual_shards(), 0, 1 << 20);
  EXPECT_EQ(code_of(out_of_range.error), errc::bad_request);
}

TEST_F(ShardLog, TrimDeletesRecordsUpToTheSequenceAndNumberingGoesOn) {
  for (int64_t ts = 1; ts <= 5; ++ts)
    commit({sample(a1_, ts)});
  commit({sample(b_, 1)});
  trim(sa_, 3);
  EXPECT_EQ(db_->log_trimmed_through(sa_), 3u);
  EXPECT_EQ(seqs(sa_), (std::vector<uint64_t>{4, 5}));
  EXPECT_EQ(seqs(sb_), (std::vector<uint64_t>{1})) << "another shard's log is not trimmed";
  auto gone = db_->read_log(sa_, 2, 1 << 20);
  EXPECT_EQ(code_of(gone.error), errc::bad_request);
  EXPECT_EQ(describe(gone.error), "shard log of virtual shard " + std::to_string(sa_)
                                    + " is trimmed through 3: record 2 is gone (read from 4 on, "
                                      "or copy the shard)");
  EXPECT_TRUE(gone.records.empty());
  {
    // The records are gone from disk, not just skipped.
    std::unique_ptr<rocksdb::Iterator> it(raw_db(*db_).NewIterator(rocksdb::ReadOptions()));
    it->Seek(keys::log_record(sa_, 0));
    ASSERT_TRUE(it->Valid());
    EXPECT_EQ(view(it->key()), keys::log_record(sa_, 4));
  }

  trim(sa_, 2); // below the trim point: nothing
  EXPECT_EQ(db_->log_trimmed_through(sa_), 3u);
  trim(sa_, 1000); // past the end: through the last record
  EXPECT_EQ(db_->log_trimmed_through(sa_), 5u);
  EXPECT_TRUE(read_all(sa_).empty());
  reopen();
  EXPECT_EQ(db_->last_log_seq(sa_), 5u) << "a trimmed sequence is never given again";
  EXPECT_EQ(db_->log_trimmed_through(sa_), 5u);
  commit({sample(a1_, 6)});
  EXPECT_EQ(seqs(sa_), (std::vector<uint64_t>{6}));
}

TEST_F(ShardLog, ACorruptRecordIsRefusedWithItsReasonAndTheReadStopsBeforeIt) {
  for (int64_t ts = 1; ts <= 3; ++ts)
    commit({sample(a1_, ts)});
  auto key = keys::log_record(sa_, 2);
  std::string value;
  ASSERT_TRUE(raw_db(*db_).Get(rocksdb::ReadOptions(), key, &value).ok());
  value[value.size() / 2] ^= 0x10;
  ASSERT_TRUE(raw_db(*db_).Put(rocksdb::WriteOptions(), key, value).ok());

  auto page = db_->read_log(sa_, 1, 1 << 20);
  ASSERT_EQ(page.records.size(), 1u) << "record 1 reads, record 2 does not";
  EXPECT_EQ(page.next, 2u);
  EXPECT_EQ(code_of(page.error), errc::corrupt_record);
  auto why = describe(page.error);
  EXPECT_NE(why.find("log record 2 of virtual shard " + std::to_string(sa_)), std::string::npos)
    << why;
  EXPECT_NE(why.find("CRC-32 mismatch"), std::string::npos) << why;
  EXPECT_EQ(db_->corrupt_records(), 1u);
  auto decoded = storage::decode_log_record(value);
  EXPECT_EQ(code_of(decoded.error()), errc::corrupt_record);

  // A record in the middle that is gone is refused too.
  ASSERT_TRUE(raw_db(*db_).Delete(rocksdb::WriteOptions(), key).ok());
  page = db_->read_log(sa_, 1, 1 << 20);
  EXPECT_EQ(page.records.size(), 1u);
  why = describe(page.error);
  EXPECT_NE(why.find("log record 2 of virtual shard " + std::to_string(sa_) + ": stored shard "
                     "log record: missing"),
            std::string::npos)
    << why;
  EXPECT_EQ(seqs(sa_, 3), (std::vector<uint64_t>{3})) << "the records after it still read";
}

TEST_F(ShardLog, ARecordUnderAnotherRecordsKeyIsRefused) {
  commit({sample(a1_, 1)});
  commit({sample(a1_, 2)});
  std::string first;
  ASSERT_TRUE(raw_db(*db_).Get(rocksdb::ReadOptions(), keys::log_record(sa_, 1), &first).ok());
  ASSERT_TRUE(raw_db(*db_).Put(rocksdb::WriteOptions(), keys::log_record(sa_, 2), first).ok());
  auto page = db_->read_log(sa_, 2, 1 << 20);
  EXPECT_TRUE(page.records.empty());
  EXPECT_NE(describe(page.error).find("it says it is record 1 of virtual shard"),
            std::string::npos)
    << describe(page.error);
}

// -- the codec alone ----------------------------------------------------------------

std::string encoded(const std::vector<log_sample>& samples, uint32_t shard = 3,
                    uint64_t seq = 9) {
  shard_log::builder b;
  for (auto& s : samples)
    b.add(s.twin, s.model_version, s.channel, s.ts_ms, s.value, s.source, s.seq);
  auto body = b.body();
  auto head = shard_log::header(shard, seq);
  return head + body + shard_log::trailer(head, body);
}

TEST(ShardLogCodec, EveryCutAndEveryBitFlipIsRefusedNeverMisread) {
  auto bytes = encoded({{"acme/m1", "power_kw", 1000, 2.5, 1, "plc", 4},
                        {"acme/m2", "temp_c", 1001, -3, 2, "", 0}});
  ASSERT_TRUE(storage::decode_log_record(bytes));
  for (size_t n = 0; n < bytes.size(); ++n) {
    auto r = storage::decode_log_record(bytes.substr(0, n));
    EXPECT_EQ(code_of(r.error()), errc::corrupt_record) << n << " bytes";
  }
  for (size_t bit = 0; bit < bytes.size() * 8; ++bit) {
    auto flipped = bytes;
    flipped[bit / 8] ^= static_cast<char>(1 << (bit % 8));
    auto r = storage::decode_log_record(flipped);
    EXPECT_EQ(code_of(r.error()), errc::corrupt_record) << "bit " << bit;
  }
}

TEST(ShardLogCodec, ABodyThatLiesBehindAGoodChecksumIsRefusedWithTheReason) {
  // A body naming a twin its table does not have, framed with a right CRC.
  std::string body;
  body += '\1';                 // one twin
  body += "\3abc";              // id
  body += '\1';                 // model version
  body += '\1';                 // one channel
  body += "\1p";                // name
  body += '\0';                 // no source
  body += '\1';                 // one sample
  body += std::string("\5\0\0\0\2", 5) + std::string(8, '\0'); // twin 5
  auto head = shard_log::header(1, 1);
  auto r = storage::decode_log_record(head + body + shard_log::trailer(head, body));
  ASSERT_FALSE(r);
  EXPECT_EQ(describe(r.error()), "stored shard log record: sample 0 names twin 5, channel 0, "
                                 "source 0 of tables of 1, 1, 0");
  // A count of samples more than the bytes hold.
  body[10] = '\x7f';
  r = storage::decode_log_record(head + body + shard_log::trailer(head, body));
  ASSERT_FALSE(r);
  EXPECT_EQ(describe(r.error()), "stored shard log record: cut short or malformed at samples");
  // An unknown format.
  auto other = shard_log::header(1, 1);
  other[0] = 2;
  r = storage::decode_log_record(other + body + shard_log::trailer(other, body));
  EXPECT_NE(describe(r.error()).find("format 2, this build reads 1"), std::string::npos);
}

} // namespace
} // namespace twinrt::runtime
