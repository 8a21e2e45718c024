#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <caf/expected.hpp>

#include "twinrt/runtime/event.hpp"
#include "twinrt/runtime/sharding.hpp"
#include "twinrt/twins/twin_state.hpp"

namespace rocksdb {
class FileSystem;
} // namespace rocksdb

namespace twinrt::runtime {

/// A twin's identity and place in the tree, as stored.
struct twin_meta {
  std::string id;
  uint32_t number = 0;
  std::string kind;
  std::string parent;
};

/// Names one twin's stored records: its id decides its virtual shard, its
/// number (unique on the node) names it inside the shard. Views: the id must
/// outlive the call it is passed to.
struct twin_ref {
  std::string_view id;
  uint32_t number = 0;
  twin_ref(std::string_view id, uint32_t number) : id(id), number(number) {}
  twin_ref(const twin_meta& m) : id(m.id), number(m.number) {} // NOLINT: implicit on purpose
};

/// One stored sample.
struct history_point {
  int64_t ts_ms = 0;
  double value = 0;
  uint32_t model_version = 0;
  std::string source;
  uint64_t seq = 0;
};

/// A sealed history chunk (twins/chunk.hpp) holds points of one window of
/// this length (2 h; windows are aligned in storage's key space, not on the
/// hour): whoever seals chunks cuts them at window ends (keys::chunk_window).
inline constexpr int64_t history_chunk_window_ms = 2 * 3600 * 1000;

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

/// What one virtual shard's key range holds (storage::shard_size).
struct shard_stats {
  uint64_t records = 0;
  uint64_t bytes = 0; // keys and values, as written (before compression)
};

/// One sample of a shard log record: what a batch accepted for one twin
/// channel, named by the twin's id (its number is the node's own).
struct log_sample {
  std::string twin;
  std::string channel;
  int64_t ts_ms = 0;
  double value = 0;
  uint32_t model_version = 0;
  std::string source;
  uint64_t seq = 0;

  bool operator==(const log_sample& o) const; // values compared bit by bit
};

/// One record of a virtual shard's log, decoded (storage::decode_log_record).
struct log_record {
  uint32_t shard = 0;
  /// Its place in the shard's log: 1, 2, 3, ... without a gap, in the order
  /// the records became durable, and never used twice (it continues after a
  /// restart and after a trim).
  uint64_t seq = 0;
  /// The samples of one batch for the shard's twins, in the order applied.
  std::vector<log_sample> samples;
};

/// What storage::read_log found.
struct log_page {
  /// Encoded records (decode_log_record reads one), sequences `from`,
  /// `from` + 1, ... in order, each checked against its checksum.
  std::vector<std::string> records;
  /// The sequence to read from next: `from` + records.size().
  uint64_t next = 0;
  /// Set when the read stopped before the durable end of the log and the
  /// byte bound: errc::bad_request when `from` is trimmed away or the shard
  /// is out of range; errc::corrupt_record when the record at `next` is
  /// corrupt or missing (refused: logged and counted, see storage). The
  /// message names the shard and the sequence.
  caf::error error;
};

/// Runs once a commit is over: `failure` is empty when the data is durable,
/// else why it is not ("storage_failed: WAL sync: IO error: ...").
using commit_done = std::function<void(const std::string& failure)>;

/// The node's durable data on RocksDB. Nothing outside storage sees RocksDB,
/// a key or an encoded record: callers write through a storage::batch of
/// typed operations and read typed values back. The key layout is in
/// README.md ("Storage layout") and storage/keys.hpp; values are Cap'n Proto
/// records (schemas/records.capnp), encoded in storage/records.cpp.
///
/// Every record of a twin (meta, state, history, alerts) and the shard's
/// log live in its virtual shard's key range, so one shard's data can be
/// read, copied or deleted as a unit (for_each_record, shard_size,
/// batch::delete_shard).
/// The layout has a version, stored with the data: open() migrates a
/// directory of an older layout (storage/migrate.cpp) and refuses one of a
/// newer layout than this build knows.
///
/// Writes go through one committer thread that groups whatever is queued
/// into consecutive writes followed by one WAL sync (group commit); `done`
/// runs on that thread once the data is durable. Reads may come from any
/// thread. A failed write or sync (a full disk, an I/O error) puts the
/// storage in a failed state for good: `done` runs with the reason for that
/// group and for every later commit, without writing, so nothing more is
/// acknowledged until the node is restarted once the fault is cleared
/// (RocksDB itself stops taking writes after such an error). failure() tells
/// the state.
///
/// A stored value that does not read back as its record (truncated, bit
/// flipped, RocksDB reports a checksum mismatch) is a corrupt record: the
/// reads refuse it and go on as if it were absent, log it once per key
/// ("twinrt: corrupt record refused: state of twin #7: stored TwinState:
/// ...; skipped") and count it in corrupt_records(). It stays on disk until
/// written again. The decoders never throw and never read outside the value.
class storage {
public:
  class batch;
  struct impl;

  /// Opens or creates the database, migrating an older layout first;
  /// returns nullptr and sets `error` to a message naming the path and
  /// RocksDB's reason (or naming the stored virtual shard count when it is
  /// unreadable, or the option when the data is new and opts.virtual_shards
  /// is out of range, or the stored layout version when a newer twinrt
  /// wrote the data).
  static std::unique_ptr<storage> open(const storage_options& opts, std::string& error);

  ~storage();
  storage(const storage&) = delete;
  storage& operator=(const storage&) = delete;

  // -- records (pure) ---------------------------------------------------------
  /// A twin state as stored: what a twin actor hands its shard to put in a
  /// batch (batch::put_encoded_state) without the shard decoding it.
  static std::string encode_state(const twins::twin_state& st);
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
  /// A shard log record as read_log returns it (storage/shard_log.cpp has
  /// the encoding); a checksum mismatch, a cut or an index out of its
  /// tables fails with errc::corrupt_record and the reason.
  static caf::expected<log_record> decode_log_record(std::string_view bytes);

  // -- writes ----------------------------------------------------------------
  /// An empty batch for this storage (it knows the virtual shard count).
  batch new_batch() const;
  /// Queues `b` for the committer; `done` runs once it is durable or failed.
  void commit(batch b, commit_done done);
  /// Same, and appends `events` to the event log in the same write: the
  /// committer numbers them (ids grow in commit order) and wakes
  /// wait_for_events once they are durable.
  void commit(batch b, std::vector<event> events, commit_done done);
  /// Queues and waits until durable; returns the failure, empty when durable.
  [[nodiscard]] std::string commit_and_wait(batch b);
  /// Writes `b` at once on the calling thread, past the committer, and syncs
  /// the WAL when `sync`; returns the failure, empty when written. For
  /// benchmarks and tools that own the storage alone.
  [[nodiscard]] std::string write_now(batch b, bool sync);

  /// Why the storage stopped taking writes ("storage_failed: write: IO
  /// error: No space left on device"); empty while it works.
  std::string failure() const;
  bool failed() const;

  // -- reads -----------------------------------------------------------------
  /// The number of virtual shards of this data (shard_directory.hpp), fixed
  /// when it was created: opts.virtual_shards for a directory that open()
  /// found empty; for data written before the count was kept, the default
  /// (default_virtual_shards), stored by the first open. Never 0.
  uint32_t virtual_shards() const { return virtual_shards_; }
  /// The virtual shard whose key range holds twin `id`'s records.
  uint32_t shard_of(std::string_view id) const;

  // A corrupt record is skipped by each read (see above).
  std::vector<twin_meta> load_metas() const;
  /// The metas of virtual shard `shard`'s twins: its part of the catalog.
  std::vector<twin_meta> load_metas(uint32_t shard) const;
  /// nullopt when no state is stored, or when it is corrupt.
  std::optional<twins::twin_state> load_state(twin_ref twin) const;
  /// Calls `f(number, state)` for every stored twin state, in key order; a
  /// corrupt one is refused as load_state refuses it (logged, counted) and
  /// passed as the error.
  void for_each_state(
    const std::function<void(uint32_t number, caf::expected<twins::twin_state>& state)>& f) const;
  /// Points of one channel with from_ms <= ts < to_ms, oldest first, at most
  /// `limit` of them: the per-sample points and those of its sealed chunks
  /// (batch::put_chunk), merged; points of one millisecond keep no order
  /// between the two. A corrupt chunk is refused whole (logged, counted).
  std::vector<history_point> read_history(twin_ref twin, const std::string& channel,
                                          int64_t from_ms, int64_t to_ms,
                                          size_t limit) const;
  std::vector<stored_model> load_models() const;

  /// An alert by id (stored with its twin: one point read per virtual shard).
  std::optional<alert_record> load_alert(uint64_t id) const;
  /// Every stored alert, oldest id first.
  std::vector<alert_record> load_alerts() const;
  /// The highest alert id stored; 0 when none.
  uint64_t last_alert_id() const;

  /// Durable events with id > `after`, oldest first, at most `limit`.
  event_page read_events(uint64_t after, size_t limit) const;
  /// The id of the last durable event (0: none yet).
  uint64_t durable_event_id() const;
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

  // -- the shard log ---------------------------------------------------------------
  // Each commit whose batch logged samples (batch::log_sample) writes one
  // record per virtual shard it touched, in the same write and WAL sync as
  // the batch's other records: the committer numbers them in commit order.
  // The log lives in its shard's key range (it is copied and deleted with
  // the shard; batch::delete_shard starts the shard's log again at 1).

  /// Durable records of `shard` from sequence `from` on (0 reads from the
  /// first kept), in order, as many as fit in `max_bytes` (at least one
  /// when there is one). Stops at a corrupt or missing record with the
  /// reason (log_page::error).
  log_page read_log(uint32_t shard, uint64_t from, size_t max_bytes) const;
  /// The sequence of `shard`'s last durable log record; 0 when it has none
  /// yet. Trimmed records count: the next one gets last_log_seq() + 1.
  uint64_t last_log_seq(uint32_t shard) const;
  /// The sequence `shard`'s log is trimmed through (batch::trim_log); 0
  /// when nothing was trimmed. read_log reads from the one after it.
  uint64_t log_trimmed_through(uint32_t shard) const;

  // -- one virtual shard's key range ----------------------------------------------
  /// Calls `f(key, value)` for every record of virtual shard `shard`, in key
  /// order: its log, the metas, states, history and alerts of its twins and
  /// nothing else. Keys and values are storage's own bytes (opaque to the
  /// caller): what a copy or a stream of the shard carries. Nothing for a
  /// shard out of range.
  void for_each_record(uint32_t shard,
                       const std::function<void(std::string_view key, std::string_view value)>& f)
    const;
  /// How many records virtual shard `shard` holds, and their size.
  shard_stats shard_size(uint32_t shard) const;

  /// A RocksDB property (e.g. "rocksdb.estimate-pending-compaction-bytes");
  /// 0 when RocksDB does not know it.
  uint64_t int_property(const std::string& name) const;
  /// A numeric field of a RocksDB map property (e.g. "io_stalls.total_stop"
  /// of "rocksdb.cfstats"); 0 when absent.
  double map_property(const std::string& name, const std::string& key) const;
  /// WAL syncs and write groups done by the committer since open.
  uint64_t wal_syncs() const;
  uint64_t commit_groups() const;
  /// Corrupt records refused since open, each key once.
  uint64_t corrupt_records() const;

  /// The inside (storage/impl.hpp); for storage's own files and tests.
  impl& internals() { return *impl_; }
  const impl& internals() const { return *impl_; }

private:
  storage();

  std::unique_ptr<impl> impl_;
  uint32_t virtual_shards_ = 0;
};

/// Typed writes, applied together by one commit (atomically: all or none).
/// Made by storage::new_batch(); move-only. Encodes as it goes, so the work
/// is done by the caller's thread, not the committer's.
class storage::batch {
public:
  /// An empty batch that can take no per-twin operation until a batch from
  /// new_batch() is moved into it.
  batch();
  ~batch();
  batch(batch&&) noexcept;
  batch& operator=(batch&&) noexcept;

  void put_meta(const twin_meta& m);
  /// Deletes a twin's meta, state and whole history (points and chunks).
  void delete_twin(twin_ref twin);
  void put_state(twin_ref twin, const twins::twin_state& st);
  /// A state encoded by storage::encode_state.
  void put_encoded_state(twin_ref twin, std::string_view bytes);
  void put_history(twin_ref twin, const std::string& channel, int64_t ts_ms, double value,
                   uint32_t model_version, const std::string& source, uint64_t seq);
  /// Adds a sample to the log record of the twin's virtual shard that this
  /// batch's commit writes (see storage, "the shard log").
  void log_sample(twin_ref twin, const std::string& channel, int64_t ts_ms, double value,
                  uint32_t model_version, const std::string& source, uint64_t seq);
  /// Deletes `shard`'s log records up to sequence `through` (one range
  /// deletion) and keeps `through` as the log's trim point. A `through`
  /// past the last record trims to the last record; one at or below the
  /// trim point changes nothing.
  void trim_log(uint32_t shard, uint64_t through);
  /// Stores a sealed history chunk of one channel (twins::chunk_encoder::
  /// seal); read_history reads its points. Returns why it is refused, with
  /// nothing added: bytes that are no chunk (the codec's reason), or points
  /// in two windows (history_chunk_window_ms). Empty when added. The same
  /// chunk put twice is stored once.
  [[nodiscard]] std::string put_chunk(twin_ref twin, const std::string& channel,
                                      std::string_view chunk);
  void put_model(const stored_model& m);
  /// Stored with the records of its twin (a.twin).
  void put_alert(const alert_record& a);
  void put_cursor(const std::string& sink, uint64_t event_id);
  /// Deletes virtual shard `shard`'s whole key range (one range deletion):
  /// every record of its twins and its log (whose sequences start again at
  /// 1). The node-wide records stay.
  void delete_shard(uint32_t shard);

  /// Operations in the batch.
  size_t count() const;
  /// Bytes of the keys and values its operations write (what a layout
  /// costs before RocksDB's own compression; no framing counted).
  size_t payload_bytes() const;
  /// No operation and nothing for the shard log.
  bool empty() const;

  struct impl;
  impl& internals() { return *impl_; }

private:
  friend class storage;
  explicit batch(uint32_t virtual_shards);

  std::unique_ptr<impl> impl_;
};

} // namespace twinrt::runtime
