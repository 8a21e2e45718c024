#include "twinrt/runtime/audit_log.hpp"

#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

#include <gtest/gtest.h>

namespace twinrt::runtime {

namespace {

namespace fs = std::filesystem;

class AuditLog : public ::testing::Test {
protected:
  void SetUp() override {
    auto base = fs::temp_directory_path();
    for (int i = 0;; ++i) {
      dir_ = base / ("twinrt-audit-test-" + std::to_string(::getpid()) + "-" + std::to_string(i));
      if (fs::create_directories(dir_))
        break;
    }
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::unique_ptr<audit_log> open(size_t max_bytes = 64u << 20) {
    auto log = audit_log::open(dir_, max_bytes);
    EXPECT_TRUE(log) << (log ? "" : describe(log.error()));
    return log ? std::move(*log) : nullptr;
  }

  static audit_entry entry(std::string token, std::string action, std::string target,
                           int64_t ts_ms = 0) {
    audit_entry e;
    e.token = std::move(token);
    e.peer = "127.0.0.1:40000";
    e.action = std::move(action);
    e.target = std::move(target);
    e.outcome = "ok";
    e.ts_ms = ts_ms;
    return e;
  }

  fs::path dir_;
};

TEST_F(AuditLog, EntriesReadBackInOrderAndSurviveAReopen) {
  {
    auto log = open();
    log->append(entry("ops", "twin.create", "acme/plant-9"));
    auto e = entry("ops", "twin.reparent", "acme/plant-9");
    e.detail = "parent globex";
    log->append(e);
    log->append(entry("ingestor", "ingest", "acme/plant-9/m1"));
    ASSERT_TRUE(log->flush());
    auto all = log->read({});
    ASSERT_EQ(all.size(), 3u);
    EXPECT_EQ(all[0].seq, 1u);
    EXPECT_EQ(all[1].detail, "parent globex");
    EXPECT_EQ(all[2].seq, 3u);
    EXPECT_GT(all[0].ts_ms, 0) << "a zero time is stamped with the wall clock";
  }
  auto log = open();
  log->append(entry("ops", "twin.delete", "acme/plant-9"));
  auto all = log->read({});
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[3].seq, 4u) << "seq carries on after a restart";
  EXPECT_EQ(all[3].action, "twin.delete");
}

TEST_F(AuditLog, ReadFiltersByTimeAndTokenAndKeepsTheNewest) {
  auto log = open();
  for (int i = 0; i < 10; ++i)
    log->append(entry(i % 2 ? "ops" : "ingestor", "ingest", "m" + std::to_string(i), 1000 + i));
  audit_filter f;
  f.token = "ops";
  auto ops = log->read(f);
  ASSERT_EQ(ops.size(), 5u);
  for (auto& e : ops)
    EXPECT_EQ(e.token, "ops");
  f = {};
  f.since_ms = 1007;
  EXPECT_EQ(log->read(f).size(), 3u);
  f = {};
  f.limit = 2;
  auto newest = log->read(f);
  ASSERT_EQ(newest.size(), 2u);
  EXPECT_EQ(newest[0].target, "m8");
  EXPECT_EQ(newest[1].target, "m9");
}

TEST_F(AuditLog, StaysWithinItsBoundKeepingTheNewest) {
  const size_t max_bytes = 8192;
  auto log = open(max_bytes);
  for (int i = 0; i < 2000; ++i)
    log->append(entry("ops", "ingest", "acme/plant-1/line-2/machine-" + std::to_string(i)));
  ASSERT_TRUE(log->flush());
  size_t bytes = 0;
  for (auto& f : fs::directory_iterator(dir_))
    bytes += f.file_size();
  EXPECT_LE(bytes, max_bytes);
  auto all = log->read({});
  ASSERT_FALSE(all.empty());
  EXPECT_EQ(all.back().seq, 2000u);
  EXPECT_GT(all.front().seq, 1000u) << "the oldest entries were dropped";
  for (size_t i = 1; i < all.size(); ++i)
    EXPECT_EQ(all[i].seq, all[i - 1].seq + 1) << "no gap among the entries kept";
}

TEST_F(AuditLog, ALineCutShortByACrashIsSkipped) {
  {
    auto log = open();
    log->append(entry("ops", "twin.create", "a"));
    ASSERT_TRUE(log->flush());
  }
  {
    std::ofstream out(dir_ / "audit.log", std::ios::app);
    out << R"({"seq":2,"ts_ms":5,"token":"ops","pe)"; // no newline: the crash
  }
  auto log = open();
  log->append(entry("ops", "twin.delete", "a"));
  auto all = log->read({});
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].action, "twin.create");
  EXPECT_EQ(all[1].action, "twin.delete") << "the next entry is not glued to the cut one";
  EXPECT_EQ(all[1].seq, 2u);
}

TEST_F(AuditLog, AnyBytesInATargetAreKeptReadable) {
  auto log = open();
  log->append(entry("ops", "twin.create", std::string("bad\xff\xfe utf8 \"quoted\"\n", 20)));
  auto all = log->read({});
  ASSERT_EQ(all.size(), 1u);
  EXPECT_NE(all[0].target.find("utf8 \"quoted\""), std::string::npos);
}

TEST_F(AuditLog, ADirectoryThatCannotBeCreatedIsRefusedByName) {
  std::ofstream(dir_ / "file") << "x";
  auto log = audit_log::open(dir_ / "file" / "audit");
  ASSERT_FALSE(log);
  EXPECT_EQ(code_of(log.error()), errc::storage_failure);
  EXPECT_NE(describe(log.error()).find((dir_ / "file" / "audit").string()), std::string::npos)
    << describe(log.error());
}

TEST(AuditLine, RoundTripsAndRefusesWhatIsNotAnEntry) {
  audit_entry e{7, 1764000000000, "ops", "10.0.0.1:5", "alert.ack", "12", "note", "ok"};
  EXPECT_EQ(from_json_line(to_json_line(e)), e);
  EXPECT_FALSE(from_json_line(""));
  EXPECT_FALSE(from_json_line("{}"));
  EXPECT_FALSE(from_json_line("[1,2]"));
  EXPECT_FALSE(from_json_line(R"({"seq":-1,"ts_ms":0,"token":"","peer":"","action":"","target":"","detail":"","outcome":""})"));
}

} // namespace

} // namespace twinrt::runtime
