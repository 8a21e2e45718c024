// A data directory written before the storage layout was versioned
// (tests/fixtures/layout-v1.tar.gz) opens with today's code: it is migrated
// to the current layout on the first open, a migration stopped midway
// resumes, and nothing is lost or changed: the node's dump (twins, states,
// rollups, every history sample, alerts, the stored model) is the one taken
// when the fixture was made.

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include "fixtures/layout_dump.hpp"
#include "support.hpp"
#include "twinrt/runtime/storage/impl.hpp"
#include "twinrt/runtime/storage/keys.hpp"
#include "twinrt/runtime/storage/migrate.hpp"

namespace {

using namespace twinrt;

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Unpacks the fixture into `dir`: dir/data and dir/layout-v1.dump.
void unpack(const twinrt::testing::temp_dir& dir) {
  auto cmd = "tar -xzf '" TWINRT_SOURCE_DIR "/tests/fixtures/layout-v1.tar.gz' -C '" + dir.str()
             + "'";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

// The keys at the top of the key space that start with `tag`.
size_t keys_under(const std::string& data, char tag) {
  rocksdb::DB* raw = nullptr;
  rocksdb::Options o;
  EXPECT_TRUE(rocksdb::DB::OpenForReadOnly(o, data, &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  size_t n = 0;
  std::string prefix(1, tag);
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next())
    ++n;
  return n;
}

std::string dump_of(const std::string& data) {
  auto n = runtime::node::start(fixtures::quiet_config(data));
  if (!n) {
    ADD_FAILURE() << runtime::describe(n.error());
    return {};
  }
  return fixtures::dump(**n);
}

TEST(StorageMigration, LayoutOneIsMigratedOnFirstOpenWithNothingLostAndAgainIsANoOp) {
  twinrt::testing::temp_dir dir("migration");
  unpack(dir);
  auto data = (dir.path() / "data").string();
  auto expected = read_file((dir.path() / "layout-v1.dump").string());
  ASSERT_NE(expected.find("alert "), std::string::npos) << "the fixture has alerts";
  ASSERT_NE(expected.find("history "), std::string::npos) << "and history";
  ASSERT_GT(keys_under(data, 'H'), 0u) << "the fixture is in layout 1";

  ::testing::internal::CaptureStderr();
  auto first = dump_of(data);
  auto log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(first, expected);
  EXPECT_NE(log.find("storage layout 1 -> 2"), std::string::npos) << log;
  for (char tag : {'M', 'S', 'H', 'A'})
    EXPECT_EQ(keys_under(data, tag), 0u) << "layout-1 keys under '" << tag << "' are left";

  ::testing::internal::CaptureStderr();
  auto second = dump_of(data);
  log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(second, expected);
  EXPECT_EQ(log.find("storage layout"), std::string::npos) << "migrated once: " << log;
}

TEST(StorageMigration, AMigrationStoppedMidwayResumesOnTheNextOpen) {
  twinrt::testing::temp_dir dir("migration-stopped");
  unpack(dir);
  auto data = (dir.path() / "data").string();
  auto expected = read_file((dir.path() / "layout-v1.dump").string());
  auto before = keys_under(data, 'H');
  {
    // Killed after three chunks of five records.
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), data, &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    std::string error;
    EXPECT_FALSE(runtime::layout::settle(*db, runtime::default_virtual_shards, data, error,
                                         {5, 3}));
    EXPECT_NE(error.find("the next start resumes it"), std::string::npos) << error;
  }
  EXPECT_EQ(keys_under(data, 'V'), 15u) << "three chunks of five records moved";
  EXPECT_GT(keys_under(data, 'H'), 0u) << "the rest not yet";
  EXPECT_GT(before, 0u);
  EXPECT_EQ(dump_of(data), expected);
  EXPECT_EQ(keys_under(data, 'H'), 0u);
  EXPECT_EQ(dump_of(data), expected);
}

TEST(StorageMigration, ADirectoryOfANewerLayoutIsRefusedWithTheReason) {
  twinrt::testing::temp_dir dir("migration-newer");
  std::string error;
  {
    auto db = runtime::storage::open({dir.str(), false, 4, 4, nullptr}, error);
    ASSERT_TRUE(db) << error;
    std::string v;
    runtime::keys::append_be32(v, 3);
    ASSERT_TRUE(runtime::raw_db(*db)
                  .Put(rocksdb::WriteOptions(), runtime::keys::layout_version(), v)
                  .ok());
  }
  auto db = runtime::storage::open({dir.str(), false, 4, 4, nullptr}, error);
  EXPECT_FALSE(db);
  EXPECT_EQ(error, "data directory " + dir.str()
                     + " has storage layout 3, written by a newer twinrt; this one reads "
                       "layouts 1..2 (start it with that newer twinrt)");
  auto n = runtime::node::start(fixtures::quiet_config(dir.str()));
  ASSERT_FALSE(n);
  EXPECT_NE(runtime::describe(n.error()).find("has storage layout 3"), std::string::npos);
}

} // namespace
