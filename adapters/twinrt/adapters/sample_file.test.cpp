#include "twinrt/adapters/sample_file.hpp"

#include <filesystem>
#include <fstream>
#include <random>

#include <gtest/gtest.h>

namespace twinrt::adapters {
namespace {

using kind = sample_line::kind;

TEST(SampleFile, CsvAndJsonLinesGiveTheSameSample) {
  auto a = parse_sample_line("acme/m1,power_kw,1700000000000,41.5", 0);
  auto b = parse_sample_line(R"({"twin": "acme/m1", "channel": "power_kw", "ts": 1700000000000, "value": 41.5})", 0);
  ASSERT_EQ(a.what, kind::sample) << a.error;
  ASSERT_EQ(b.what, kind::sample) << b.error;
  for (auto* l : {&a, &b}) {
    EXPECT_EQ(l->sample.twin, "acme/m1");
    EXPECT_EQ(l->sample.channel, "power_kw");
    EXPECT_EQ(l->sample.ts_ms, 1700000000000);
    EXPECT_EQ(l->sample.value, 41.5);
    EXPECT_FALSE(l->has_seq);
  }
}

TEST(SampleFile, SourceAndSeqAreCarried) {
  auto a = parse_sample_line("acme/m1,power_kw,5,1,plc-7,42\r", 0);
  ASSERT_EQ(a.what, kind::sample) << a.error;
  EXPECT_EQ(a.sample.source, "plc-7");
  EXPECT_EQ(a.sample.seq, 42u);
  EXPECT_TRUE(a.has_seq);
  auto b = parse_sample_line(R"({"twin":"t","channel":"c","value":1,"source":"s","seq":9})", 77);
  ASSERT_EQ(b.what, kind::sample) << b.error;
  EXPECT_EQ(b.sample.seq, 9u);
  EXPECT_EQ(b.sample.ts_ms, 77); // no ts: the time given
  EXPECT_FALSE(b.has_ts);
}

TEST(SampleFile, HeaderCommentsAndBlankLinesAreSkipped) {
  for (auto line : {"twin,channel,ts,value", "# note", "", "   ", "\r"})
    EXPECT_EQ(parse_sample_line(line, 0).what, kind::skipped) << line;
}

TEST(SampleFile, BadLinesSayWhatIsWrong) {
  struct probe {
    const char* line;
    const char* says;
  } probes[] = {
    {"acme/m1,power_kw,yesterday,1", "ts 'yesterday' is not a whole number"},
    {"acme/m1,power_kw,5,hot", "value 'hot' is not a number"},
    {"acme/m1,power_kw,5", "expected twin,channel,ts,value"},
    {"acme/m1,power_kw,5,1,s,-3", "seq '-3' is not a whole number"},
    {",power_kw,5,1", "twin and channel must not be empty"},
    {"acme/m1,power_kw,5,1x", "value '1x' is not a number"},
    {R"({"twin": "t", "channel": "c", "value": })", "invalid JSON"},
    {R"({"twin": "t", "channel": "c", "value": 1, "value": 2})", "key \"value\" appears twice"},
    {R"({"channel": "c", "value": 1})", "missing \"twin\""},
    {R"({"twin": "t", "channel": "c", "value": "1"})", "\"value\" must be a number"},
    {R"({"twin": "t", "channel": "c", "value": 1, "ts": 1.5})", "\"ts\" must be a whole number"},
    {R"({"twin": "t", "channel": "c", "value": 1, "seq": -1})", "\"seq\" must be a whole number"},
    {R"([1, 2])", "expected twin,channel"},
  };
  for (auto& p : probes) {
    auto l = parse_sample_line(p.line, 0);
    EXPECT_EQ(l.what, kind::bad) << p.line;
    EXPECT_NE(l.error.find(p.says), std::string::npos) << p.line << " -> " << l.error;
  }
}

TEST(SampleFile, ReaderResumesAtAnOffsetWithLineNumbers) {
  auto path = std::filesystem::temp_directory_path()
              / ("twinrt-sample-file-" + std::to_string(std::random_device{}()) + ".csv");
  {
    std::ofstream out(path);
    out << "twin,channel,ts,value\nt,c,1,1\nt,c,2,oops\nt,c,3,3"; // no final newline
  }
  sample_file_reader r(path.string());
  ASSERT_EQ(r.open(), "");
  sample_file_reader::line l;
  ASSERT_TRUE(r.next(l, 0));
  ASSERT_TRUE(r.next(l, 0));
  EXPECT_EQ(l.number, 2u);
  auto offset = l.end;
  sample_file_reader again(path.string());
  ASSERT_EQ(again.open(), "");
  ASSERT_EQ(again.seek(offset, 2), "");
  ASSERT_TRUE(again.next(l, 0));
  EXPECT_EQ(l.number, 3u);
  EXPECT_EQ(l.parsed.what, kind::bad);
  ASSERT_TRUE(again.next(l, 0));
  EXPECT_EQ(l.number, 4u);
  EXPECT_EQ(l.parsed.sample.ts_ms, 3);
  EXPECT_EQ(l.end, std::filesystem::file_size(path));
  EXPECT_FALSE(again.next(l, 0));
  EXPECT_NE(again.seek(1'000'000, 9).find("the file was changed"), std::string::npos);
  auto whole = read_sample_file(path.string(), 0);
  EXPECT_EQ(whole.samples.size(), 2u);
  EXPECT_EQ(whole.lines, (std::vector<uint64_t>{2, 4}));
  ASSERT_EQ(whole.errors.size(), 1u);
  EXPECT_EQ(whole.errors[0], path.string() + ":3: value 'oops' is not a number");
  std::filesystem::remove(path);
  EXPECT_NE(read_sample_file(path.string(), 0).errors.at(0).find("cannot read " + path.string()),
            std::string::npos);
}

} // namespace
} // namespace twinrt::adapters
