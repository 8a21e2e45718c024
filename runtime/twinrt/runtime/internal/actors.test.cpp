// The shard and twin actors under CAF's deterministic test coordinator: the
// test decides when each actor runs, when a delayed message (a twin's flush)
// fires and when storage makes a write durable, so that the orders that are
// rare on a real scheduler happen here every time.

#define CAF_TEST_NO_MAIN
#include <caf/test/dsl.hpp>
#include <caf/test/unit_test_impl.hpp>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <unistd.h>

#include <rocksdb/file_system.h>

#include <gtest/gtest.h>

#include "twinrt/runtime/actor_interfaces.hpp"
#include "twinrt/runtime/internal/actors.hpp"
#include "twinrt/runtime/internal/context.hpp"
#include "twinrt/schemas/builtin_models.hpp"

namespace twinrt::runtime::internal {
namespace {

// A file system whose write-ahead log stops taking appends while held: a
// write handed to the committer is then neither durable nor readable, as
// in the moment before RocksDB's group commit returns.
class held_wal final : public rocksdb::FileSystemWrapper {
public:
  held_wal() : FileSystemWrapper(rocksdb::FileSystem::Default()) {}
  const char* Name() const override { return "held_wal"; }

  void hold() {
    std::lock_guard<std::mutex> g(mtx_);
    held_ = true;
  }
  void release() {
    std::lock_guard<std::mutex> g(mtx_);
    held_ = false;
    cv_.notify_all();
  }
  void wait_while_held() {
    std::unique_lock<std::mutex> g(mtx_);
    cv_.wait(g, [&] { return !held_; });
  }

  rocksdb::IOStatus NewWritableFile(const std::string& name, const rocksdb::FileOptions& opts,
                                    std::unique_ptr<rocksdb::FSWritableFile>* out,
                                    rocksdb::IODebugContext* dbg) override {
    auto s = target()->NewWritableFile(name, opts, out, dbg);
    if (s.ok() && name.size() > 4 && name.compare(name.size() - 4, 4, ".log") == 0)
      *out = std::make_unique<file>(std::move(*out), *this);
    return s;
  }

private:
  class file final : public rocksdb::FSWritableFileOwnerWrapper {
  public:
    file(std::unique_ptr<rocksdb::FSWritableFile> f, held_wal& fs)
      : FSWritableFileOwnerWrapper(std::move(f)), fs_(fs) {}
    rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& opts,
                             rocksdb::IODebugContext* dbg) override {
      fs_.wait_while_held();
      return FSWritableFileOwnerWrapper::Append(data, opts, dbg);
    }
    rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& opts,
                             const rocksdb::DataVerificationInfo& info,
                             rocksdb::IODebugContext* dbg) override {
      fs_.wait_while_held();
      return FSWritableFileOwnerWrapper::Append(data, opts, info, dbg);
    }

  private:
    held_wal& fs_;
  };

  std::mutex mtx_;
  std::condition_variable cv_;
  bool held_ = false;
};

struct test_config : caf::actor_system_config {
  test_config() { runtime::add_message_types(*this); }
};

// One shard actor (and the twins it spawns) over real storage in a fresh
// directory, run by the test coordinator. Storage's committer is the one
// other thread: it only runs while the test waits for it (settle()), so
// the coordinator is never entered from two threads.
class ShardActor : public ::testing::Test, public test_coordinator_fixture<test_config> {
protected:
  ShardActor() {
    dir_ = std::filesystem::temp_directory_path()
           / ("twinrt-actors-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
    std::filesystem::create_directories(dir_);
    ctx = std::make_shared<node_context>();
    ctx->cfg.shards = 1;
    ctx->cfg.wall_clock = clock_; // time moves only when a test says so
    ctx->probe = &probe_;
    probe_.set_shard_count(1);
    std::string error;
    ctx->db = storage::open({dir_.string(), true, 8, 8, fs_, 16}, error);
    if (!ctx->db)
      throw std::runtime_error(error);
    std::vector<std::pair<std::string, std::string>> texts;
    for (auto& b : schemas::builtin_models())
      texts.emplace_back(b.file_name, b.text);
    for (auto& m : twins::load_model_texts(texts).models)
      ctx->models.put(m);
    shard = spawn_shard(sys, ctx, 0);
    ctx->shards = {shard};
    ctx->directory = make_local_directory(ctx->db->virtual_shards(), ctx->shards);
    fs_->hold(); // from here on, writes wait for settle()
  }

  ~ShardActor() override {
    settle();
    fs_->release(); // storage writes as it closes
    caf::anon_send_exit(shard, caf::exit_reason::user_shutdown);
    deliver();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  static int& counter() {
    static int n = 0;
    return n;
  }

  // Lets every write handed to the committer so far become durable, and
  // returns once the committer has told the shard (a message now waiting
  // in its mailbox). The scheduler is not touched meanwhile.
  void settle() {
    fs_->release();
    auto failure = ctx->db->commit_and_wait(storage::batch());
    EXPECT_EQ(failure, "");
    fs_->hold();
  }

  twin_meta add_twin(const std::string& id, const std::string& kind, const std::string& parent) {
    twin_meta m{id, ctx->cat.next_number(), kind, parent};
    ctx->cat.insert(m);
    return m;
  }

  apply_request batch_for(const std::string& id, const std::string& channel, double value) {
    auto now = clock_->now_ms();
    return apply_request{sample_batch({{id, channel, now, value, "", 0}}), {0}, now};
  }

  // Whether an answer waits for the test (a receive without one would wait
  // forever: nothing runs while the test waits).
  bool answer_waiting() {
    if (self->mailbox().empty()) {
      ADD_FAILURE() << "no answer came";
      return false;
    }
    return true;
  }

  // The view of `id` as a get through the shard answers it now.
  twin_view view_of(const std::string& id) {
    auto answer = self->request(shard, caf::infinite, get_atom::value, id);
    deliver();
    twin_view out;
    bool answered = false;
    if (answer_waiting())
      answer.receive([&](twin_view& v) { out = std::move(v), answered = true; },
                   [&](caf::error& e) { ADD_FAILURE() << "get " << id << ": " << describe(e); });
    EXPECT_TRUE(answered);
    return out;
  }

  // Runs every message waiting (but no timer: a shard's sweep sets a new
  // one each time, so the fixture's run() would never end).
  void deliver() { sched.run(); }

  // Fires the pending timers (a twin's flush, the shard's sweep) and runs
  // what they cause.
  void flush_all() {
    trigger_timeouts();
    deliver();
  }

  std::shared_ptr<held_wal> fs_ = std::make_shared<held_wal>();
  std::shared_ptr<twins::manual_clock> clock_ = std::make_shared<twins::manual_clock>(twins::wall_ms());
  std::filesystem::path dir_;
  runtime_probe probe_;
  std::shared_ptr<node_context> ctx;
  shard_actor shard;
};

double channel_value(const twin_view& v, const std::string& channel) {
  auto i = v.state.channels.find(channel);
  return i == v.state.channels.end() ? -1 : i->second.value;
}

TEST_F(ShardActor, PassivationDuringAGroupCommitKeepsTheStateThatIsNotDurableYet) {
  add_twin("acme/m1", "machine", "");
  auto ack = self->request(shard, caf::infinite, ingest_atom::value,
                           batch_for("acme/m1", "power_kw", 42));
  deliver();
  flush_all(); // nothing keeps the twin in memory now but its write
  EXPECT_TRUE(self->mailbox().empty()) << "acknowledged before the write was durable";
  // The write is with the committer, held: the twin passivates meanwhile.
  caf::anon_send(shard, passivate_atom::value);
  deliver();
  EXPECT_EQ(probe_.shard(0).active_twins.load(), 0u) << "the twin did not passivate";
  EXPECT_FALSE(ctx->db->load_state({"acme/m1", ctx->cat.find("acme/m1")->number}))
    << "the write reached storage: nothing was in flight";
  // Asked again before the commit returns: the twin comes back with the
  // state it passivated with, not with what storage holds.
  EXPECT_EQ(channel_value(view_of("acme/m1"), "power_kw"), 42);
  settle();
  deliver();
  bool acked = false;
  if (answer_waiting())
    ack.receive([&](twins::ingest_result& r) { acked = r.accepted == 1; },
              [&](caf::error& e) { ADD_FAILURE() << describe(e); });
  EXPECT_TRUE(acked);
}

TEST_F(ShardActor, ReactivationWhileAWriteIsInFlightBuildsOnThatWrite) {
  auto m = add_twin("acme/m1", "machine", "");
  auto first = self->request(shard, caf::infinite, ingest_atom::value,
                             batch_for("acme/m1", "power_kw", 42));
  deliver();
  flush_all();
  caf::anon_send(shard, passivate_atom::value);
  deliver();
  ASSERT_EQ(probe_.shard(0).active_twins.load(), 0u);
  // A second batch re-activates the twin while the first is still held.
  auto second = self->request(shard, caf::infinite, ingest_atom::value,
                              batch_for("acme/m1", "temperature_c", 61));
  deliver();
  settle();
  deliver();
  settle(); // the second batch's commit
  deliver();
  int acked = 0;
  for (auto* h : {&first, &second})
    if (answer_waiting())
      h->receive([&](twins::ingest_result& r) { acked += r.accepted == 1; },
               [&](caf::error& e) { ADD_FAILURE() << describe(e); });
  EXPECT_EQ(acked, 2);
  auto stored = ctx->db->load_state({m.id, m.number});
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->channels.count("power_kw"), 1u) << "the second write lost the first";
  EXPECT_EQ(stored->channels.count("temperature_c"), 1u);
}

TEST_F(ShardActor, AContributionForAPassivatedParentActivatesItAndIsFolded) {
  add_twin("acme/line-1", "line", "");
  EXPECT_EQ(view_of("acme/line-1").state.own.sums.count("power_kw"), 0u);
  caf::anon_send(shard, passivate_atom::value); // no children yet: it may go
  deliver();
  ASSERT_EQ(probe_.shard(0).active_twins.load(), 0u) << "the parent did not passivate";
  add_twin("acme/line-1/m1", "machine", "acme/line-1");
  twins::contribution c;
  c.sums["power_kw"] = 42;
  c.counts[0] = 1;
  caf::anon_send(shard, contrib_atom::value,
                 contrib_msg{"acme/line-1", "acme/line-1/m1", 1, c, clock_->now_ms()});
  deliver();
  EXPECT_EQ(probe_.shard(0).active_twins.load(), 1u) << "the contribution did not activate it";
  flush_all();
  auto v = view_of("acme/line-1");
  ASSERT_EQ(v.state.own.sums.count("power_kw"), 1u) << "the contribution was lost";
  EXPECT_EQ(v.state.own.sums.at("power_kw"), 42);
}

TEST_F(ShardActor, ABatchForATwinDeletedWhileItWaitedIsStillAcknowledged) {
  add_twin("acme/m1", "machine", "");
  add_twin("acme/m2", "machine", "");
  auto now = clock_->now_ms();
  auto first = self->request(shard, caf::infinite, ingest_atom::value,
                             batch_for("acme/m2", "power_kw", 3));
  sched.prioritize(shard);
  sched.run_once(); // the first batch runs: the next one waits behind it
  apply_request req{sample_batch({{"acme/m1", "power_kw", now, 5, "", 0},
                                  {"acme/m2", "power_kw", now, 7, "", 0}}),
                    {0, 1},
                    now};
  auto second = self->request(shard, caf::infinite, ingest_atom::value, req);
  sched.prioritize(shard);
  sched.run_once();
  // acme/m1 is deleted (as node::remove does it) while the batch waits.
  ctx->cat.erase("acme/m1");
  caf::anon_send(shard, delete_atom::value, std::string("acme/m1"), std::string("machine"));
  deliver();
  settle();
  deliver();
  if (answer_waiting())
    first.receive([](twins::ingest_result&) {}, [](caf::error&) {});
  twins::ingest_result r;
  if (answer_waiting())
    second.receive([&](twins::ingest_result& x) { r = std::move(x); },
                   [&](caf::error& e) { ADD_FAILURE() << "the batch was refused: " << describe(e); });
  EXPECT_EQ(r.accepted, 1u);
  ASSERT_EQ(r.rejected.size(), 1u);
  EXPECT_EQ(r.rejected[0].index, 0u);
  EXPECT_EQ(r.rejected[0].reason, twins::reject_reason::unknown_twin);
  EXPECT_EQ(r.rejected[0].message, "sample 0 for acme/m1: no twin acme/m1");
}

} // namespace
} // namespace twinrt::runtime::internal
