#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_set>
#include <vector>

#include <caf/expected.hpp>

#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <rocksdb/write_batch.h>

#include "twinrt/runtime/event.hpp"
#include "twinrt/runtime/sharding.hpp"
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
  std::shared_ptr<rocksdb::FileSystem> file_system; // null: the real one (tests inject faults)
  /// Stored when the data is created (an empty directory), fixed after:
  /// see storage::virtual_shards(). 1 .. max_virtual_shards.
  uint32_t virtual_shards = default_virtual_shards;
};

/// What storage::read_events found.
struct event_page {
  std::vector<event> events;
  /// The id of the last event read, corrupt ones included: the next read
  /// starts after it. `after` when there was none.
  uint64_t last_id = 0;
};

/// Runs once a commit is over: `failure` is empty when the data is durable,
/// else why it is not ("storage_failed: WAL sync: IO error: ...").
using commit_done = std::function<void(const std::string& failure)>;

/// Owns the RocksDB handle of one node and the key layout:
///   'M' id                           -> TwinMeta
///   'S' number(4, big-endian)        -> TwinState
///   'H' number channel 0 ts(8, BE) suffix(4) -> HistoryPoint (time-ordered per
///                                    channel; the suffix tells sources apart)
///   'D' kind 0 version(4, BE)        -> ModelText
///   'A' alert id(8, BE)              -> Alert
///   'E' event id(8, BE)              -> Event (the log the event router reads)
///   'C' sink name                    -> the sink's cursor: last event id delivered (8, BE)
///   'P' "virtual_shards"             -> the number of virtual shards (4, BE), fixed at creation
/// Values are Cap'n Proto records (schemas/records.capnp).
///
/// Writes go through one committer thread that groups whatever is queued into
/// consecutive writes followed by one WAL sync (group commit); `done` runs on
/// that thread once the data is durable. Reads may come from any thread.
/// A failed write or sync (a full disk, an I/O error) puts the storage in a
/// failed state for good: `done` runs with the reason for that group and for
/// every later commit, without writing, so nothing more is acknowledged until
/// the node is restarted once the fault is cleared (RocksDB itself stops
/// taking writes after such an error). failure() tells the state.
///
/// A stored value that does not read back as its record (truncated, bit
/// flipped, RocksDB reports a checksum mismatch) is a corrupt record: the
/// reads refuse it and go on as if it were absent, log it once per key
/// ("twinrt: corrupt record refused: state of twin #7: stored TwinState:
/// ...; skipped") and count it in corrupt_records(). It stays on disk until
/// written again. The decoders never throw and never read outside the value.
class storage {
public:
  /// Opens or creates the database; nullopt-free: returns nullptr and sets
  /// `error` to a message naming the path and RocksDB's reason (or naming
  /// the stored virtual shard count when it is unreadable, or the option
  /// when the data is new and opts.virtual_shards is out of range).
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
  static void put_history(rocksdb::WriteBatch& wb, uint32_t number,
                          const std::string& channel, int64_t ts_ms, double value,
                          uint32_t model_version, const std::string& source,
                          uint64_t seq);
  static void put_model(rocksdb::WriteBatch& wb, const stored_model& m);
  static void put_alert(rocksdb::WriteBatch& wb, const alert_record& a);
  static void put_cursor(rocksdb::WriteBatch& wb, const std::string& sink, uint64_t event_id);

  // -- decoding (pure) ---------------------------------------------------------
  /// Each reads one stored value back; a value that is not exactly one
  /// well-formed record of its type fails with errc::corrupt_record and what
  /// is wrong ("stored TwinState: Message ends prematurely in first segment.").
  static caf::expected<twins::twin_state> decode_state(std::string_view bytes);
  static caf::expected<twin_meta> decode_meta(std::string_view bytes);
  /// The point's time is in its key, not its value: ts_ms is 0.
  static caf::expected<history_point> decode_history_point(std::string_view bytes);
  static caf::expected<stored_model> decode_model(std::string_view bytes);
  static caf::expected<alert_record> decode_alert(std::string_view bytes);
  static caf::expected<event> decode_event(std::string_view bytes);

  // -- writes ----------------------------------------------------------------
  /// Queues `wb` for the committer; `done` runs once it is durable or failed.
  void commit(rocksdb::WriteBatch wb, commit_done done);
  /// Same, and appends `events` to the event log in the same write: the
  /// committer numbers them (ids grow in commit order) and wakes
  /// wait_for_events once they are durable.
  void commit(rocksdb::WriteBatch wb, std::vector<event> events, commit_done done);
  /// Queues and waits until durable; returns the failure, empty when durable.
  [[nodiscard]] std::string commit_and_wait(rocksdb::WriteBatch wb);

  /// Why the storage stopped taking writes ("storage_failed: write: IO
  /// error: No space left on device"); empty while it works.
  std::string failure() const;
  bool failed() const { return failed_.load(std::memory_order_acquire); }

  // -- reads -----------------------------------------------------------------
  /// The number of virtual shards of this data (shard_directory.hpp), fixed
  /// when it was created: opts.virtual_shards for a directory that open()
  /// found empty; for data written before the count was kept, the default
  /// (default_virtual_shards), stored by the first open. Never 0.
  uint32_t virtual_shards() const { return virtual_shards_; }

  // A corrupt record is skipped by each read (see above).
  std::vector<twin_meta> load_metas() const;
  /// nullopt when no state is stored, or when it is corrupt.
  std::optional<twins::twin_state> load_state(uint32_t number) const;
  /// decode_state for a value read under twin `number`'s state key by a
  /// caller that iterates the states itself: a corrupt value is refused as
  /// load_state refuses it (logged, counted), and returned as the error.
  caf::expected<twins::twin_state> checked_state(uint32_t number, std::string_view bytes) const;
  /// Points of one channel with from_ms <= ts < to_ms, oldest first, at most
  /// `limit` of them.
  std::vector<history_point> read_history(uint32_t number, const std::string& channel,
                                          int64_t from_ms, int64_t to_ms,
                                          size_t limit) const;
  std::vector<stored_model> load_models() const;

  std::optional<alert_record> load_alert(uint64_t id) const;
  /// Every stored alert, oldest id first.
  std::vector<alert_record> load_alerts() const;
  /// The highest alert id stored; 0 when none.
  uint64_t last_alert_id() const;

  /// Durable events with id > `after`, oldest first, at most `limit`.
  event_page read_events(uint64_t after, size_t limit) const;
  /// The id of the last durable event (0: none yet).
  uint64_t durable_event_id() const { return durable_event_id_.load(); }
  /// Waits until an event with id > `after` is durable, or `timeout` passed,
  /// or stop_waiters() was called. Returns true when there is one.
  bool wait_for_events(uint64_t after, std::chrono::milliseconds timeout) const;
  /// Wakes every wait_for_events (the node is stopping).
  void stop_waiters();
  /// A sink's cursor: the last event id it confirmed; 0 when it has none
  /// (or a corrupt one).
  uint64_t load_cursor(const std::string& sink) const;
  /// Deletes events with id < `below` (every sink is past them).
  void trim_events(uint64_t below);

  /// A RocksDB property (e.g. "rocksdb.estimate-pending-compaction-bytes");
  /// 0 when RocksDB does not know it.
  uint64_t int_property(const std::string& name) const;
  /// A numeric field of a RocksDB map property (e.g. "io_stalls.total_stop"
  /// of "rocksdb.cfstats"); 0 when absent.
  double map_property(const std::string& name, const std::string& key) const;
  /// WAL syncs and write groups done by the committer since open.
  uint64_t wal_syncs() const { return wal_syncs_.load(std::memory_order_relaxed); }
  uint64_t commit_groups() const { return commit_groups_.load(std::memory_order_relaxed); }
  /// Corrupt records refused since open, each key once.
  uint64_t corrupt_records() const;
  rocksdb::DB& db() { return *db_; }

private:
  storage() = default;
  void run_committer();

  struct pending {
    rocksdb::WriteBatch batch;
    commit_done done;
    std::vector<event> events;
  };

  // Enters the failed state (committer thread); returns the reason.
  std::string fail(const char* what, const rocksdb::Status& s);
  // Logs and counts the corrupt record under `key`, once per key.
  void refuse(std::string_view key, const caf::error& why) const;

  std::unique_ptr<rocksdb::DB> db_;
  bool sync_wal_ = true;
  uint32_t virtual_shards_ = 0;
  std::mutex mtx_;
  std::condition_variable cv_;
  std::deque<pending> queue_;
  bool stopping_ = false;
  std::atomic<uint64_t> wal_syncs_{0}, commit_groups_{0};
  mutable std::atomic<uint64_t> corrupt_records_{0};
  mutable std::mutex corrupt_mtx_;
  mutable std::unordered_set<std::string> corrupt_keys_; // under corrupt_mtx_
  std::atomic<bool> failed_{false};
  mutable std::mutex failure_mtx_;
  std::string failure_; // under failure_mtx_
  std::unique_ptr<rocksdb::Env> env_; // wraps options.file_system; outlives db_
  uint64_t last_event_id_ = 0; // committer thread only
  std::atomic<uint64_t> durable_event_id_{0};
  mutable std::mutex events_mtx_;
  mutable std::condition_variable events_cv_;
  bool waiters_stopped_ = false;
  std::thread committer_;
};

} // namespace twinrt::runtime
