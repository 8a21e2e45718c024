#pragma once

// The audit trail: who changed what, when and from where, in a bounded
// durable log beside the node's data.

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <caf/expected.hpp>

#include "twinrt/runtime/errc.hpp"

namespace twinrt::runtime {

/// One recorded call.
struct audit_entry {
  uint64_t seq = 0;   // assigned by the log: grows by one per entry, across restarts
  int64_t ts_ms = 0;  // wall clock when recorded
  std::string token;  // who: the token's name
  std::string peer;   // from where: "127.0.0.1:51234"
  std::string action; // "ingest", "twin.create", "twin.delete", "twin.reparent", "models.load", "alert.ack"
  std::string target; // a twin id, an alert id, model names
  std::string detail; // what: "accepted 120, rejected 2", "parent acme/plant-2", a note
  std::string outcome; // "ok", or the error the caller got ("conflict: twin exists")

  bool operator==(const audit_entry& o) const {
    return seq == o.seq && ts_ms == o.ts_ms && token == o.token && peer == o.peer
        && action == o.action && target == o.target && detail == o.detail && outcome == o.outcome;
  }
};

/// Which entries to read.
struct audit_filter {
  int64_t since_ms = 0; // entries recorded at or after this time
  std::string token;    // "" = every token
  size_t limit = 1000;  // the newest `limit` of those that match
};

/// An append-only log of JSON lines in two files, `audit.log` and the
/// previous `audit.log.1`: when `audit.log` passes half of `max_bytes` it
/// becomes `audit.log.1` (the older one is dropped), so the log holds between
/// max_bytes / 2 and max_bytes of the newest entries.
///
/// append() returns at once; a writer thread writes what was appended and
/// fsyncs it, many entries per fsync; flush() waits until every entry
/// appended before it is on disk. Appends beyond `max_pending` entries not
/// yet written wait (the log's memory is bounded). A line cut short by a
/// crash is skipped on reading. Thread-safe.
class audit_log {
public:
  /// Opens (or creates) the log in `dir`; reads the newest entry's seq to
  /// carry on after it. Fails with errc::storage_failure naming the file.
  static caf::expected<std::unique_ptr<audit_log>>
  open(const std::filesystem::path& dir, size_t max_bytes = 64u << 20, size_t max_pending = 10'000);

  ~audit_log();
  audit_log(const audit_log&) = delete;
  audit_log& operator=(const audit_log&) = delete;

  /// Records `e`, stamping seq and, when 0, ts_ms. Once a write failed,
  /// entries are dropped (and counted in dropped()): the log stays bounded.
  void append(audit_entry e);

  /// Waits until everything appended so far is durable; false when a write
  /// or fsync failed (the failure is in error()).
  bool flush();

  /// The entries that match, oldest first (what is still in memory included).
  std::vector<audit_entry> read(const audit_filter& f);

  /// The first write or fsync failure, or "".
  std::string error() const;

  /// Entries appended since open, and of those dropped after a failure.
  uint64_t appended() const;
  uint64_t dropped() const;

private:
  audit_log(std::filesystem::path dir, size_t max_bytes, size_t max_pending, uint64_t next_seq);
  void run();
  bool write_out(std::deque<std::string>& lines); // writer thread only

  const std::filesystem::path dir_;
  const size_t max_bytes_;
  const size_t max_pending_;
  std::mutex files_mtx_; // the writer writing or rotating; read() reading
  mutable std::mutex mtx_;
  std::condition_variable wake_;    // the writer: work, or stop
  std::condition_variable written_; // appenders and flushers: progress
  std::deque<std::string> pending_; // encoded lines not yet handed to the writer
  uint64_t next_seq_;
  uint64_t appended_ = 0;
  uint64_t dropped_ = 0;
  uint64_t queued_upto_ = 0;  // seq of the newest entry handed in
  uint64_t durable_upto_ = 0; // seq of the newest entry fsynced
  std::string error_;
  bool stop_ = false;
  int fd_ = -1;
  size_t file_bytes_ = 0;
  std::thread writer_;
};

/// The entry as one JSON line (no newline), and back; nullopt for a line
/// that is not an entry (cut short, or not ours).
std::string to_json_line(const audit_entry& e);
std::optional<audit_entry> from_json_line(const std::string& line);

} // namespace twinrt::runtime
