// The group commit: one thread takes whatever batches are queued, writes
// them one after another and syncs the WAL once for all of them.

#include <cstdio>

#include "twinrt/runtime/storage/impl.hpp"

namespace twinrt::runtime {

std::string storage::impl::fail(const char* what, const rocksdb::Status& s) {
  std::lock_guard<std::mutex> g(failure_mtx);
  if (failure.empty()) {
    failure = std::string("storage_failed: ") + what + ": " + s.ToString();
    std::fprintf(stderr, "twinrt: %s; nothing more is acknowledged until a restart\n",
                 failure.c_str());
    failed.store(true, std::memory_order_release);
  }
  return failure;
}

std::string storage::impl::failure_now() const {
  std::lock_guard<std::mutex> g(failure_mtx);
  return failure;
}

std::string storage::failure() const {
  return impl_->failure_now();
}

bool storage::failed() const {
  return impl_->failed.load(std::memory_order_acquire);
}

uint64_t storage::wal_syncs() const {
  return impl_->wal_syncs.load(std::memory_order_relaxed);
}

uint64_t storage::commit_groups() const {
  return impl_->commit_groups.load(std::memory_order_relaxed);
}

void storage::impl::run_committer() {
  std::deque<pending> work;
  for (;;) {
    {
      std::unique_lock<std::mutex> g(mtx);
      cv.wait(g, [&] { return stopping || !queue.empty(); });
      if (queue.empty() && stopping)
        return;
      work.swap(queue);
    }
    rocksdb::WriteOptions wo;
    wo.sync = false;
    std::string why = failure_now(); // once failed, nothing is written
    auto first_event = last_event_id;
    for (auto& p : work) {
      if (!why.empty())
        break;
      append_events(p.batch, p.events);
      append_log(p.batch, p.log);
      auto s = db->Write(wo, &p.batch);
      if (!s.ok())
        why = fail("write", s);
    }
    if (why.empty() && sync_wal) {
      auto s = db->SyncWAL();
      if (!s.ok())
        why = fail("WAL sync", s);
      else
        wal_syncs.fetch_add(1, std::memory_order_relaxed);
    }
    if (!why.empty()) {
      last_event_id = first_event; // none of the group's events is durable
      log_touched.clear();         // nor its log records (nothing is written any more)
      for (auto& p : work)
        if (p.done)
          p.done(why);
      work.clear();
      continue;
    }
    commit_groups.fetch_add(1, std::memory_order_relaxed);
    publish_events();
    publish_log();
    static const std::string durable;
    for (auto& p : work)
      if (p.done)
        p.done(durable);
    work.clear();
  }
}

void storage::impl::stop_committer() {
  {
    std::lock_guard<std::mutex> g(mtx);
    stopping = true;
  }
  cv.notify_all();
  if (committer.joinable())
    committer.join();
}

void storage::commit(batch b, commit_done done) {
  commit(std::move(b), {}, std::move(done));
}

void storage::commit(batch b, std::vector<event> events, commit_done done) {
  {
    std::lock_guard<std::mutex> g(impl_->mtx);
    impl_->queue.push_back({std::move(b.internals().wb), std::move(done), std::move(events),
                            b.internals().take_log()});
  }
  impl_->cv.notify_one();
}

std::string storage::commit_and_wait(batch b) {
  std::mutex m;
  std::condition_variable cv;
  bool ready = false;
  std::string failure;
  commit(std::move(b), [&](const std::string& why) {
    std::lock_guard<std::mutex> g(m);
    failure = why;
    ready = true;
    cv.notify_all();
  });
  std::unique_lock<std::mutex> g(m);
  cv.wait(g, [&] { return ready; });
  return failure;
}

std::string storage::write_now(batch b, bool sync) {
  auto log = b.internals().take_log();
  impl_->append_log(b.internals().wb, log);
  auto s = impl_->db->Write(rocksdb::WriteOptions(), &b.internals().wb);
  if (s.ok() && sync)
    s = impl_->db->SyncWAL();
  if (!s.ok()) {
    impl_->log_touched.clear();
    return "storage_failed: " + s.ToString();
  }
  impl_->publish_log();
  return {};
}

} // namespace twinrt::runtime
