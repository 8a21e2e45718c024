#pragma once

// The inside of storage (storage.hpp): the RocksDB handle, the committer's
// queue and the corrupt-record bookkeeping. Only storage's own files and
// tests include this; nothing else sees RocksDB.

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/write_batch.h>

#include "twinrt/runtime/storage.hpp"
#include "twinrt/runtime/storage/shard_log.hpp"

namespace twinrt::runtime {

struct storage::batch::impl {
  rocksdb::WriteBatch wb;
  uint32_t virtual_shards = 0;
  std::unordered_map<uint32_t, shard_log::builder> log; // by virtual shard
  shard_log::pending log_ops;                           // restarts and trims
  // What the commit asks of the shard log: the bodies built, `log_ops`.
  shard_log::pending take_log();
};

struct storage::impl {
  struct pending {
    rocksdb::WriteBatch batch;
    commit_done done;
    std::vector<event> events;
    shard_log::pending log;
  };

  std::unique_ptr<rocksdb::Env> env; // wraps options.file_system; outlives db
  std::unique_ptr<rocksdb::DB> db;
  bool sync_wal = true;
  uint32_t virtual_shards = 0;

  // -- committer (storage/committer.cpp) ---------------------------------------
  std::mutex mtx;
  std::condition_variable cv;
  std::deque<pending> queue; // under mtx
  bool stopping = false;     // under mtx
  std::atomic<uint64_t> wal_syncs{0}, commit_groups{0};
  std::atomic<bool> failed{false};
  mutable std::mutex failure_mtx;
  std::string failure; // under failure_mtx
  std::thread committer;
  void run_committer();
  void stop_committer();
  // Enters the failed state (committer thread); returns the reason.
  std::string fail(const char* what, const rocksdb::Status& s);
  std::string failure_now() const;

  // -- event log (storage/event_log.cpp) ---------------------------------------
  uint64_t last_event_id = 0; // committer thread only
  std::atomic<uint64_t> durable_event_id{0};
  mutable std::mutex events_mtx;
  mutable std::condition_variable events_cv;
  bool waiters_stopped = false; // under events_mtx
  // Numbers `events` and puts them into `wb` (committer thread).
  void append_events(rocksdb::WriteBatch& wb, std::vector<event>& events);
  // Wakes wait_for_events once last_event_id is durable (committer thread).
  void publish_events();

  // -- shard log (storage/shard_log.cpp) ---------------------------------------
  // Per virtual shard: the last sequence given and the trim point (committer
  // thread only; write_now's caller owns the storage alone), and both as
  // durable, for readers on any thread.
  std::vector<uint64_t> log_last, log_trimmed;
  std::unique_ptr<std::atomic<uint64_t>[]> log_durable, log_trimmed_durable;
  std::vector<uint32_t> log_touched; // shards the group changed, to publish
  // Reads every shard's last sequence and trim point (open).
  void load_log();
  // Numbers the records of `log` and puts them and its trims into `wb`.
  void append_log(rocksdb::WriteBatch& wb, shard_log::pending& log);
  // Makes what append_log did visible to readers once it is durable.
  void publish_log();

  // -- corrupt records ------------------------------------------------------------
  mutable std::atomic<uint64_t> corrupt_records{0};
  mutable std::mutex corrupt_mtx;
  mutable std::unordered_set<std::string> corrupt_keys; // under corrupt_mtx
  // Logs and counts the corrupt record under `key`, once per key.
  void refuse(std::string_view key, const caf::error& why) const;
  // Reads `key`; nullopt when absent, or corrupt per RocksDB (refused as
  // `type`). Any other read failure is fatal.
  std::optional<std::string> get(const std::string& key, const char* type) const;
};

namespace internal {
// The points of a channel's sealed chunks in [from_ms, to_ms), unordered,
// at least `limit` of the oldest when there are (storage/chunks.cpp).
std::vector<history_point> read_chunk_points(const storage::impl& in, uint32_t shard,
                                             uint32_t number, const std::string& channel,
                                             int64_t from_ms, int64_t to_ms, size_t limit);
} // namespace internal

/// RocksDB's bytes as a view.
inline std::string_view view(const rocksdb::Slice& s) {
  return {s.data(), s.size()};
}

/// The RocksDB under a storage: for tests that plant raw records.
inline rocksdb::DB& raw_db(storage& s) {
  return *s.internals().db;
}

} // namespace twinrt::runtime
