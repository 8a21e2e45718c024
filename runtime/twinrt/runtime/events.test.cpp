#include "twinrt/runtime/events.hpp"

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>

#include <unistd.h>

#include <gtest/gtest.h>

#include "twinrt/runtime/storage/impl.hpp"
#include "twinrt/runtime/storage/keys.hpp"

namespace twinrt::runtime {
namespace {

using namespace std::chrono_literals;

// A sink of our own interface that keeps what it was given and can be told
// to refuse the next deliveries (as a receiver that is down would).
class recording_sink : public event_sink {
public:
  bool deliver(const std::vector<event>& events, std::string& error) override {
    std::lock_guard<std::mutex> g(mtx);
    ++calls;
    if (refuse_next > 0) {
      --refuse_next;
      error = "receiver down";
      return false;
    }
    for (auto& e : events)
      got.push_back(e);
    cv.notify_all();
    return true;
  }
  // Waits until `n` events arrived; the deadline is for a broken build only.
  bool wait_for(size_t n) {
    std::unique_lock<std::mutex> g(mtx);
    return cv.wait_for(g, 120s, [&] { return got.size() >= n; });
  }
  std::mutex mtx;
  std::condition_variable cv;
  std::vector<event> got;
  int refuse_next = 0;
  int calls = 0;
};

class EventLog : public ::testing::Test {
protected:
  void SetUp() override {
    auto base = std::filesystem::temp_directory_path();
    for (int i = 0;; ++i) {
      dir_ = base / ("twinrt-events-test-" + std::to_string(::getpid()) + "-" + std::to_string(i));
      if (std::filesystem::create_directories(dir_))
        break;
    }
    open();
  }
  void TearDown() override {
    db.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  void open() {
    db.reset();
    std::string error;
    db = storage::open({dir_.string(), false, 8, 8, nullptr, default_virtual_shards}, error);
    ASSERT_TRUE(db) << error;
  }
  static event ev(const std::string& twin, const std::string& type,
                  twins::severity sev = twins::severity::warning) {
    event e;
    e.type = type;
    e.twin = twin;
    e.kind = "machine";
    e.sev = sev;
    e.ts_ms = 1000;
    e.details = "{\"n\":1}";
    return e;
  }
  void log(std::vector<event> events) {
    std::mutex m;
    std::condition_variable cv;
    bool done = false;
    db->commit(db->new_batch(), std::move(events), [&](const std::string&) {
      std::lock_guard<std::mutex> g(m);
      done = true;
      cv.notify_all();
    });
    std::unique_lock<std::mutex> g(m);
    cv.wait(g, [&] { return done; });
  }

  std::filesystem::path dir_;
  std::unique_ptr<storage> db;
};

TEST_F(EventLog, CommitNumbersEventsInOrderAndIdsContinueAfterReopen) {
  log({ev("a/1", "alert.raised"), ev("a/2", "alert.raised")});
  log({ev("a/1", "alert.cleared")});
  auto got = db->read_events(0, 100).events;
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].id, 1u);
  EXPECT_EQ(got[1].id, 2u);
  EXPECT_EQ(got[2].id, 3u);
  EXPECT_EQ(got[2].type, "alert.cleared");
  EXPECT_EQ(got[0].details, "{\"n\":1}");
  EXPECT_EQ(db->read_events(2, 100).events.size(), 1u);
  open();
  EXPECT_EQ(db->durable_event_id(), 3u);
  log({ev("a/3", "health.changed")});
  got = db->read_events(0, 100).events;
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got[3].id, 4u);
}

TEST_F(EventLog, AlertsAndCursorsAreStored) {
  alert_record a;
  a.id = 7;
  a.twin = "a/1";
  a.rule = "hot";
  a.sev = twins::severity::critical;
  a.state = twins::alert_phase::acknowledged;
  a.acked_by = "ops";
  a.note = "on it";
  auto wb = db->new_batch();
  wb.put_alert(a);
  wb.put_cursor("maint", 42);
  ASSERT_EQ(db->commit_and_wait(std::move(wb)), "");
  open();
  auto back = db->load_alert(7);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->acked_by, "ops");
  EXPECT_EQ(back->state, twins::alert_phase::acknowledged);
  EXPECT_EQ(back->sev, twins::severity::critical);
  EXPECT_FALSE(db->load_alert(8));
  EXPECT_EQ(db->last_alert_id(), 7u);
  EXPECT_EQ(db->load_cursor("maint"), 42u);
  EXPECT_EQ(db->load_cursor("other"), 0u);
}

TEST(EventFilter, MatchesKindSubtreeSeverityAndTypePrefix) {
  event e;
  e.type = "prediction.raised";
  e.twin = "acme/plant-1/line-2/m-7";
  e.kind = "machine";
  e.sev = twins::severity::warning;
  EXPECT_TRUE(event_filter{}.matches(e));
  EXPECT_TRUE((event_filter{{"machine"}, "acme/plant-1", twins::severity::warning, {"prediction"}}
                 .matches(e)));
  EXPECT_FALSE((event_filter{{"line"}, "", twins::severity::info, {}}.matches(e)));
  EXPECT_FALSE((event_filter{{}, "acme/plant-2", twins::severity::info, {}}.matches(e)));
  EXPECT_FALSE((event_filter{{}, "acme/plant", twins::severity::info, {}}.matches(e)));
  EXPECT_FALSE((event_filter{{}, "", twins::severity::critical, {}}.matches(e)));
  EXPECT_FALSE((event_filter{{}, "", twins::severity::info, {"alert"}}.matches(e)));
  EXPECT_FALSE((event_filter{{}, "", twins::severity::info, {"pred"}}.matches(e)));
  EXPECT_TRUE((event_filter{{}, "", twins::severity::info, {"prediction.raised"}}.matches(e)));
}

TEST_F(EventLog, ADownSinkRetriesWithoutHoldingUpAnotherAndResumesFromItsCursor) {
  auto fast = std::make_unique<recording_sink>();
  auto down = std::make_unique<recording_sink>();
  auto* f = fast.get();
  auto* d = down.get();
  d->refuse_next = 3;
  {
    event_router router(*db, 0);
    router.add_sink({"fast", 2, 10, 40}, std::move(fast), {event_filter{}});
    router.add_sink({"down", 2, 10, 40}, std::move(down),
                    {event_filter{{}, "", twins::severity::info, {"alert"}}});
    for (int i = 0; i < 5; ++i)
      log({ev("a/" + std::to_string(i % 2), i % 2 ? "alert.raised" : "health.changed")});
    router.start();
    ASSERT_TRUE(f->wait_for(5));
    ASSERT_TRUE(d->wait_for(2)); // only the alerts: ids 2 and 4
    std::lock_guard<std::mutex> g(d->mtx);
    EXPECT_EQ(d->calls, 4); // three refusals, then one batch of both
    ASSERT_EQ(d->got.size(), 2u);
    EXPECT_EQ(d->got[0].id, 2u);
    EXPECT_EQ(d->got[1].id, 4u);
    std::lock_guard<std::mutex> g2(f->mtx);
    for (size_t i = 0; i < f->got.size(); ++i)
      EXPECT_EQ(f->got[i].id, i + 1);
    auto st = router.status();
    ASSERT_EQ(st.size(), 2u);
    EXPECT_EQ(st[1].failures, 3u);
    EXPECT_EQ(st[1].last_error, "receiver down");
  }
  // A new router (a restart) carries on after each cursor.
  EXPECT_EQ(db->load_cursor("fast"), 5u);
  log({ev("a/9", "alert.cleared")});
  auto again = std::make_unique<recording_sink>();
  auto* a = again.get();
  event_router router(*db, 0);
  router.add_sink({"fast", 2, 10, 40}, std::move(again), {event_filter{}});
  router.start();
  ASSERT_TRUE(a->wait_for(1));
  // The first delivery starts after the cursor, with event 6 (a router that
  // started before the cursor would have sent an earlier event first).
  std::lock_guard<std::mutex> g(a->mtx);
  ASSERT_EQ(a->got.size(), 1u);
  EXPECT_EQ(a->got[0].id, 6u);
}

TEST_F(EventLog, TrimKeepsWhatASinkHasNotConfirmedAndTheLastEvent) {
  for (int i = 0; i < 6; ++i)
    log({ev("a/1", "alert.raised")});
  db->trim_events(4); // as the router does once every cursor is past 3
  auto none = db->new_batch();
  ASSERT_EQ(db->commit_and_wait(std::move(none)), ""); // the trim went through the committer
  auto left = db->read_events(0, 100).events;
  ASSERT_EQ(left.size(), 3u);
  EXPECT_EQ(left[0].id, 4u);
  open();
  log({ev("a/1", "alert.cleared")});
  EXPECT_EQ(db->read_events(0, 100).events.back().id, 7u);
}

TEST_F(EventLog, CorruptEventsAreSkippedAndTheCursorPassesThem) {
  for (int i = 0; i < 4; ++i)
    log({ev("a/1", "alert.raised")});
  // Events 2 and 4 (the last) go bad on disk.
  for (uint64_t id : {2, 4})
    ASSERT_TRUE(raw_db(*db).Put(rocksdb::WriteOptions(), keys::event(id), "bad").ok());
  auto page = db->read_events(0, 100);
  ASSERT_EQ(page.events.size(), 2u);
  EXPECT_EQ(page.events[0].id, 1u);
  EXPECT_EQ(page.events[1].id, 3u);
  EXPECT_EQ(page.last_id, 4u) << "the next read starts past the corrupt last event";
  EXPECT_EQ(db->corrupt_records(), 2u);
  auto sink = std::make_unique<recording_sink>();
  auto* got = sink.get();
  event_router router(*db, 0);
  router.add_sink({"s", 2, 10, 40}, std::move(sink), {event_filter{}});
  router.start();
  ASSERT_TRUE(got->wait_for(2));
  auto deadline = std::chrono::steady_clock::now() + 60s;
  while (db->load_cursor("s") != 4 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(20ms);
  EXPECT_EQ(db->load_cursor("s"), 4u) << "a corrupt event does not hold the sink back";
  std::lock_guard<std::mutex> g(got->mtx);
  EXPECT_EQ(got->got.size(), 2u);
}

} // namespace
} // namespace twinrt::runtime
