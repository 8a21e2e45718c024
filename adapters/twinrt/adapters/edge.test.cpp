#include "twinrt/adapters/edge.hpp"

#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <thread>

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include "twinrt/runtime/errc.hpp"

namespace twinrt::adapters::edge {
namespace {

namespace fs = std::filesystem;
using rule = runtime::node_config::edge_channel_rule;

twins::sample at(std::string twin, std::string channel, int64_t ts, double v) {
  return {std::move(twin), std::move(channel), ts, v, "", 0};
}

std::vector<double> passed(sample_filter& f, const std::string& twin, const std::string& channel,
                           const std::vector<std::pair<int64_t, double>>& points) {
  std::vector<double> out;
  for (auto& [ts, v] : points)
    if (f.pass(at(twin, channel, ts, v)) != sample_filter::verdict::drop)
      out.push_back(v);
  return out;
}

TEST(EdgeFilter, AbsoluteDeadbandForwardsOnlyChangesBeyondIt) {
  sample_filter f({rule{"*", "temperature_c", 0.5, 0, 0}});
  EXPECT_EQ(passed(f, "a/m1", "temperature_c",
                   {{1, 20.0}, {2, 20.4}, {3, 20.5}, {4, 20.6}, {5, 20.2}, {6, 20.0}, {7, 21.2}}),
            (std::vector<double>{20.0, 20.6, 20.0, 21.2}));
}

TEST(EdgeFilter, PercentDeadbandIsRelativeToTheLastForwardedValue) {
  sample_filter f({rule{"*", "vib*", 0, 10, 0}});
  EXPECT_EQ(passed(f, "a/m1", "vibration_mm_s", {{1, 10.0}, {2, 10.9}, {3, 11.1}, {4, 12.0}, {5, 12.3}}),
            (std::vector<double>{10.0, 11.1, 12.3}));
}

TEST(EdgeFilter, MinIntervalDownsamplesByTimestamps) {
  sample_filter f({rule{"*", "power_kw", 0, 0, 1000}});
  EXPECT_EQ(passed(f, "a/m1", "power_kw",
                   {{0, 1}, {400, 2}, {999, 3}, {1000, 4}, {1500, 5}, {2100, 6}, {2200, 7}}),
            (std::vector<double>{1, 4, 6}));
}

TEST(EdgeFilter, ChannelsWithoutARuleAndOtherTwinsPassWhole) {
  sample_filter f({rule{"acme/line-1/*", "temperature_c", 5, 0, 0}});
  EXPECT_EQ(passed(f, "acme/line-1/m1", "temperature_c", {{1, 1}, {2, 2}, {3, 3}}),
            (std::vector<double>{1}));
  EXPECT_EQ(passed(f, "acme/line-2/m1", "temperature_c", {{1, 1}, {2, 2}, {3, 3}}),
            (std::vector<double>{1, 2, 3}));
  EXPECT_EQ(passed(f, "acme/line-1/m1", "power_kw", {{1, 1}, {2, 1}, {3, 1}}),
            (std::vector<double>{1, 1, 1}));
}

TEST(EdgeFilter, FirstMatchingRuleWinsAndChannelsAreIndependent) {
  sample_filter f({rule{"*/m1", "*", 0, 0, 0}, rule{"*", "*", 100, 0, 0}});
  EXPECT_EQ(passed(f, "a/m1", "x", {{1, 1}, {2, 2}}), (std::vector<double>{1, 2}));
  EXPECT_EQ(passed(f, "a/m2", "x", {{1, 1}, {2, 2}}), (std::vector<double>{1}));
  EXPECT_EQ(passed(f, "a/m2", "y", {{1, 1}, {2, 2}}), (std::vector<double>{1}));
}

TEST(EdgeFilter, SaysWhenTheReferenceMoves) {
  using v = sample_filter::verdict;
  sample_filter f({rule{"*", "x", 1, 0, 0}});
  EXPECT_EQ(f.pass(at("a", "x", 1, 5)), v::new_reference);
  EXPECT_EQ(f.pass(at("a", "x", 2, 5.5)), v::drop);
  EXPECT_EQ(f.pass(at("a", "x", 0, 9)), v::forward); // older: a backfill
  EXPECT_EQ(f.pass(at("a", "x", 3, 7)), v::new_reference);
  EXPECT_EQ(f.pass(at("a", "y", 3, 7)), v::forward); // no rule
}

TEST(EdgeFilter, ARestoredReferenceFiltersAsAnUninterruptedRun) {
  sample_filter f({rule{"*", "x", 1, 0, 0}});
  f.restore("a", "x", 10, 100);
  EXPECT_EQ(passed(f, "a", "x", {{101, 10.5}, {102, 11.5}}), (std::vector<double>{11.5}));
}

TEST(EdgeFilter, AnOlderSampleIsForwardedAndDoesNotMoveTheReference) {
  sample_filter f({rule{"*", "*", 1, 0, 0}});
  EXPECT_EQ(passed(f, "a/m1", "x", {{10, 5}, {5, 5}, {11, 5.5}, {12, 6.5}}),
            (std::vector<double>{5, 5, 6.5}));
}

class EdgeBuffer : public ::testing::Test {
protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path()
           / ("twinrt-edge-buffer-" + std::to_string(std::random_device{}()));
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::unique_ptr<sample_buffer> open(uint64_t budget) {
    std::string error;
    auto b = sample_buffer::open(dir_.string(), budget, error);
    EXPECT_TRUE(b) << error;
    return b;
  }
  static std::vector<twins::sample> samples(int from, int n) {
    std::vector<twins::sample> out;
    for (int i = from; i < from + n; ++i)
      out.push_back(at("acme/plant-1/line-1/m1", "power_kw", 1000 + i, i));
    return out;
  }
  fs::path dir_;
};

TEST_F(EdgeBuffer, KeepsSamplesInOrderAcrossAReopen) {
  {
    auto b = open(1 << 20);
    ASSERT_EQ(b->append(samples(0, 5), {{"k", "7"}}), "");
    ASSERT_EQ(b->append(samples(5, 5), {}), "");
  }
  auto b = open(1 << 20);
  auto got = b->oldest(0, 100);
  ASSERT_EQ(got.size(), 10u);
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].seq, got[0].seq + i);
    EXPECT_EQ(got[i].sample.value, static_cast<double>(i));
    EXPECT_EQ(got[i].sample.ts_ms, 1000 + static_cast<int64_t>(i));
    EXPECT_EQ(got[i].sample.twin, "acme/plant-1/line-1/m1");
    EXPECT_EQ(got[i].sample.channel, "power_kw");
  }
  EXPECT_EQ(b->marks().at("k"), "7");
  EXPECT_EQ(b->queued(), 10u);
}

TEST_F(EdgeBuffer, SeqNeverGoesBackAfterEverythingWasForwarded) {
  uint64_t first = 0;
  {
    auto b = open(1 << 20);
    ASSERT_EQ(b->append(samples(0, 3), {}), "");
    first = b->oldest(0, 1).at(0).seq;
    ASSERT_EQ(b->remove_through(first + 2), "");
    EXPECT_EQ(b->queued(), 0u);
    EXPECT_EQ(b->queued_bytes(), 0u);
  }
  auto b = open(1 << 20);
  EXPECT_TRUE(b->oldest(0, 10).empty());
  ASSERT_EQ(b->append(samples(3, 2), {}), "");
  auto got = b->oldest(0, 10);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].seq, first + 3);
  EXPECT_EQ(got[1].seq, first + 4);
}

TEST_F(EdgeBuffer, ANewBufferStartsAboveAWipedOne) {
  uint64_t last = 0;
  {
    auto b = open(1 << 20);
    ASSERT_EQ(b->append(samples(0, 1000), {}), "");
    last = b->oldest(0, 1000).back().seq;
  }
  fs::remove_all(dir_); // the buffer directory is lost; the central node keeps the old seqs
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  auto b = open(1 << 20);
  ASSERT_EQ(b->append(samples(0, 1), {}), "");
  EXPECT_GT(b->oldest(0, 1).at(0).seq, last);
}

TEST_F(EdgeBuffer, RemoveThroughDeletesOnlyTheAcknowledged) {
  auto b = open(1 << 20);
  ASSERT_EQ(b->append(samples(0, 10), {}), "");
  auto bytes = b->queued_bytes();
  auto first = b->oldest(0, 1).at(0).seq;
  ASSERT_EQ(b->remove_through(first + 3), "");
  EXPECT_EQ(b->queued(), 6u);
  EXPECT_EQ(b->queued_bytes(), bytes * 6 / 10);
  auto got = b->oldest(0, 100);
  ASSERT_EQ(got.size(), 6u);
  EXPECT_EQ(got.front().seq, first + 4);
  EXPECT_EQ(b->oldest(first + 6, 100).size(), 3u);
}

TEST_F(EdgeBuffer, OverTheBudgetTheOldestAreDroppedAndCounted) {
  uint64_t one = 0;
  {
    auto probe = open(1 << 20);
    ASSERT_EQ(probe->append(samples(0, 1), {}), "");
    one = probe->queued_bytes();
  }
  fs::remove_all(dir_);
  {
    auto b = open(one * 10);
    ASSERT_EQ(b->append(samples(0, 8), {}), "");
    EXPECT_EQ(b->dropped(), 0u);
    ASSERT_EQ(b->append(samples(8, 5), {}), ""); // 13 records, room for 10
    EXPECT_EQ(b->queued(), 10u);
    EXPECT_EQ(b->dropped(), 3u);
    EXPECT_LE(b->queued_bytes(), one * 10);
    ASSERT_EQ(b->append(samples(13, 25), {}), ""); // more than the whole budget at once
    EXPECT_EQ(b->queued(), 10u);
    EXPECT_EQ(b->dropped(), 28u);
  }
  auto b = open(one * 10);
  EXPECT_EQ(b->dropped(), 28u); // the count survives a restart
  auto got = b->oldest(0, 100);
  ASSERT_EQ(got.size(), 10u);
  EXPECT_EQ(got.front().sample.value, 28); // the newest ten are kept
  EXPECT_EQ(got.back().sample.value, 37);
  EXPECT_EQ(got.back().seq, got.front().seq + 9);
}

TEST_F(EdgeBuffer, CorruptRecordComesBackMarkedAndIsRemovedWithTheOthers) {
  uint64_t first = 0;
  {
    auto b = open(1 << 20);
    ASSERT_EQ(b->append(samples(0, 3), {}), "");
    first = b->oldest(0, 1).at(0).seq;
  }
  {
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), dir_.string(), &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    std::string key(1, 'q');
    for (int i = 7; i >= 0; --i)
      key.push_back(static_cast<char>(((first + 1) >> (i * 8)) & 0xff));
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), key, "xx").ok());
  }
  auto b = open(1 << 20);
  auto got = b->oldest(0, 100);
  ASSERT_EQ(got.size(), 3u) << "the corrupt record is not silently left behind";
  EXPECT_TRUE(got[0].corrupt.empty());
  EXPECT_EQ(got[1].corrupt, "buffered sample of 2 bytes: cut short in a length");
  EXPECT_EQ(got[2].sample.value, 2);
  ASSERT_EQ(b->remove_through(got.back().seq), "");
  EXPECT_TRUE(b->oldest(0, 100).empty());
  EXPECT_EQ(b->queued(), 0u);
}

TEST(EdgeRecord, DecodeTakesExactlyOneRecord) {
  auto good = encode_buffered(at("acme/p/l/m", "power_kw", -5, 1.5));
  auto back = decode_buffered(good);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->twin, "acme/p/l/m");
  EXPECT_EQ(back->channel, "power_kw");
  EXPECT_EQ(back->ts_ms, -5);
  EXPECT_EQ(back->value, 1.5);
  EXPECT_FALSE(decode_buffered(good + "x"));
  EXPECT_FALSE(decode_buffered(good.substr(0, good.size() - 1)));
  EXPECT_FALSE(decode_buffered(""));
  auto huge = good;
  huge[0] = huge[1] = huge[2] = huge[3] = '\xff'; // a twin of 4 GB
  auto r = decode_buffered(huge);
  ASSERT_FALSE(r);
  EXPECT_NE(runtime::describe(r.error()).find("runs past the end"), std::string::npos);
}

TEST_F(EdgeBuffer, AnUnusableDirectoryIsRefusedWithItsName) {
  std::string error;
  auto b = sample_buffer::open("/proc/twinrt-no-such-dir/buffer", 1 << 20, error);
  EXPECT_FALSE(b);
  EXPECT_NE(error.find("/proc/twinrt-no-such-dir/buffer"), std::string::npos) << error;
}

} // namespace
} // namespace twinrt::adapters::edge

namespace twinrt::adapters::edge {
namespace {

class EdgeConfig : public ::testing::Test {
protected:
  void TearDown() override { std::filesystem::remove(path_); }
  std::optional<std::string> load(const std::string& text) {
    path_ = std::filesystem::temp_directory_path()
            / ("twinrt-edge-" + std::to_string(std::random_device{}()) + ".toml");
    std::ofstream(path_) << text;
    return runtime::load_config_file(path_.string(), cfg_);
  }
  std::filesystem::path path_;
  runtime::node_config cfg_;
};

TEST_F(EdgeConfig, ReadsTheEdgeSectionAndItsRules) {
  auto err = load(R"(
[edge]
id = "edge-7"
central = "10.0.0.5:7800"
token = "w"
buffer_dir = "/var/lib/edge"
disk_budget_mb = 64
forward_batch = 250
[[edge.channels]]
twin = "acme/*"
channel = "temperature_c"
deadband = 0.5
[[edge.channels]]
channel = "power_kw"
deadband_percent = 2
min_interval_ms = 1000
)");
  ASSERT_FALSE(err) << *err;
  auto& e = cfg_.edge;
  EXPECT_TRUE(e.enabled);
  EXPECT_EQ(e.id, "edge-7");
  EXPECT_EQ(e.central, "10.0.0.5:7800");
  EXPECT_EQ(e.token, "w");
  EXPECT_EQ(e.buffer_dir, "/var/lib/edge");
  EXPECT_EQ(e.disk_budget_mb, 64u);
  EXPECT_EQ(e.forward_batch, 250u);
  ASSERT_EQ(e.channels.size(), 2u);
  EXPECT_EQ(e.channels[0].twin, "acme/*");
  EXPECT_EQ(e.channels[0].deadband, 0.5);
  EXPECT_EQ(e.channels[1].twin, "*");
  EXPECT_EQ(e.channels[1].deadband_percent, 2);
  EXPECT_EQ(e.channels[1].min_interval_ms, 1000);
}

TEST_F(EdgeConfig, RefusesWhatItCannotUseNamingTheLine) {
  struct probe {
    const char* text;
    const char* says;
  } probes[] = {
    {"[edge]\ncentral = \"a:1\"\nbogus = 1\n", ":3: unknown key 'bogus' in [edge]"},
    {"[edge]\nforward_batch = 0\n", "forward_batch and disk_budget_mb of at least 1"},
    {"[edge]\n[[edge.channels]]\ndeadband = -1\n", ":3: 'edge.channels.deadband' must be a number >= 0"},
    {"[edge]\n[[edge.channels]]\ndeadband_percent = \"5\"\n", "'edge.channels.deadband_percent' must be a number"},
    {"[edge]\n[[edge.channels]]\nmin_interval_ms = 1.5\n", "'edge.channels.min_interval_ms' must be a whole number"},
    {"[edge]\n[[edge.channels]]\ncolour = \"red\"\n", ":3: unknown key 'colour' in [[edge.channels]]"},
    {"[edge]\n[[edge.channels]]\nchannel = \"\"\n", "'edge.channels.channel' must be a pattern string"},
    {"[edge]\nchannels = 3\n", "'edge.channels' must be an array of tables"},
  };
  for (auto& p : probes) {
    cfg_ = {};
    auto err = load(p.text);
    ASSERT_TRUE(err) << p.text;
    EXPECT_NE(err->find(p.says), std::string::npos) << p.text << " -> " << *err;
    EXPECT_NE(err->find(path_.string()), std::string::npos) << *err;
  }
}

TEST_F(EdgeConfig, AnEdgeWithoutBrokerRoutesOrCentralDoesNotStart) {
  ASSERT_FALSE(load("[edge]\ncentral = \"127.0.0.1:1\"\n"));
  std::string error;
  EXPECT_FALSE(edge_node::start(cfg_, error));
  EXPECT_NE(error.find("needs an [mqtt] section"), std::string::npos) << error;
  cfg_ = {};
  ASSERT_FALSE(load("[mqtt]\n[[mqtt.routes]]\ntopic = \"a/{m}\"\ntwin = \"x/{m}\"\n[edge]\n"));
  EXPECT_FALSE(edge_node::start(cfg_, error));
  EXPECT_NE(error.find("central = \"HOST:PORT\""), std::string::npos) << error;
  cfg_ = {};
  ASSERT_FALSE(load("[mqtt]\n[[mqtt.routes]]\ntopic = \"a/{m}\"\ntwin = \"x/{n}\"\n[edge]\n"
                    "central = \"127.0.0.1:1\"\n"));
  EXPECT_FALSE(edge_node::start(cfg_, error));
  EXPECT_NE(error.find("x/{n}"), std::string::npos) << error;
}

} // namespace
} // namespace twinrt::adapters::edge
