#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include "twinrt/twins/twin_state.hpp"

namespace twinrt::runtime {

/// A twin's identity and place in the tree, as stored.
struct twin_meta {
  std::string id;
  uint32_t number = 0;
  std::string kind;
  std::string parent;
};

/// One stored sample.
struct history_point {
  int64_t ts_ms = 0;
  double value = 0;
  uint32_t model_version = 0;
  std::string source;
  uint64_t seq = 0;
};

struct stored_model {
  std::string kind;
  uint32_t version = 0;
  std::string text;
};

struct storage_options {
  std::string path;
  bool sync_wal = true;
  uint64_t write_buffer_mb = 64;
  uint64_t block_cache_mb = 128;
};

/// Owns the RocksDB handle of one node and the key layout:
///   'M' id                           -> TwinMeta
///   'S' number(4, big-endian)        -> TwinState
///   'H' number channel 0 ts(8, BE) suffix(4) -> HistoryPoint (time-ordered per
///                                    channel; the suffix tells sources apart)
///   'D' kind 0 version(4, BE)        -> ModelText
/// Values are Cap'n Proto records (schemas/records.capnp).
///
/// Writes go through one committer thread that groups whatever is queued into
/// consecutive writes followed by one WAL sync (group commit); `done` runs on
/// that thread once the data is durable. Reads may come from any thread.
/// A failed write is fatal (the node stops): acknowledging data that is not
/// stored would break the durability promise.
class storage {
public:
  /// Opens or creates the database; nullopt-free: returns nullptr and sets
  /// `error` to a message naming the path and RocksDB's reason.
  static std::unique_ptr<storage> open(const storage_options& opts, std::string& error);

  ~storage();
  storage(const storage&) = delete;
  storage& operator=(const storage&) = delete;

  // -- encoding into a batch (pure) -----------------------------------------
  static void put_meta(rocksdb::WriteBatch& wb, const twin_meta& m);
  static void delete_meta(rocksdb::WriteBatch& wb, const std::string& id);
  /// Deletes a twin's state and its whole history.
  static void delete_twin_data(rocksdb::WriteBatch& wb, uint32_t number);
  static void put_state(rocksdb::WriteBatch& wb, uint32_t number,
                        const twins::twin_state& st);
  static void put_state_bytes(rocksdb::WriteBatch& wb, uint32_t number,
                              const std::string& bytes);
  static std::string encode_state(const twins::twin_state& st);
  static twins::twin_state decode_state(const std::string& bytes);
  static void put_history(rocksdb::WriteBatch& wb, uint32_t number,
                          const std::string& channel, int64_t ts_ms, double value,
                          uint32_t model_version, const std::string& source,
                          uint64_t seq);
  static void put_model(rocksdb::WriteBatch& wb, const stored_model& m);

  // -- writes ----------------------------------------------------------------
  /// Queues `wb` for the committer; `done` runs once it is durable.
  void commit(rocksdb::WriteBatch wb, std::function<void()> done);
  /// Queues and waits until durable.
  void commit_and_wait(rocksdb::WriteBatch wb);

  // -- reads -----------------------------------------------------------------
  std::vector<twin_meta> load_metas() const;
  std::optional<twins::twin_state> load_state(uint32_t number) const;
  /// Points of one channel with from_ms <= ts < to_ms, oldest first, at most
  /// `limit` of them.
  std::vector<history_point> read_history(uint32_t number, const std::string& channel,
                                          int64_t from_ms, int64_t to_ms,
                                          size_t limit) const;
  std::vector<stored_model> load_models() const;

  /// A RocksDB property (e.g. "rocksdb.estimate-pending-compaction-bytes");
  /// 0 when RocksDB does not know it.
  uint64_t int_property(const std::string& name) const;
  /// A numeric field of a RocksDB map property (e.g. "io_stalls.total_stop"
  /// of "rocksdb.cfstats"); 0 when absent.
  double map_property(const std::string& name, const std::string& key) const;
  /// WAL syncs and write groups done by the committer since open.
  uint64_t wal_syncs() const { return wal_syncs_.load(std::memory_order_relaxed); }
  uint64_t commit_groups() const { return commit_groups_.load(std::memory_order_relaxed); }
  rocksdb::DB& db() { return *db_; }

private:
  storage() = default;
  void run_committer();

  struct pending {
    rocksdb::WriteBatch batch;
    std::function<void()> done;
  };

  std::unique_ptr<rocksdb::DB> db_;
  bool sync_wal_ = true;
  std::mutex mtx_;
  std::condition_variable cv_;
  std::deque<pending> queue_;
  bool stopping_ = false;
  std::atomic<uint64_t> wal_syncs_{0}, commit_groups_{0};
  std::thread committer_;
};

} // namespace twinrt::runtime
