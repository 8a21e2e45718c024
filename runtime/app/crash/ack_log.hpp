#pragma once

// The crash loop's own record of what a node acknowledged. The checker
// appends a record and fsyncs it before it counts the acknowledgement, and
// reads what it expects of the node after a crash back from this file alone:
// never from the node's data directory, which is what is under test.
//
// One record per line, fields separated by one space (twin ids, channels,
// kinds and sources have no spaces):
//
//   twin ID KIND PARENT                   a twin created ("-" for no parent)
//   batch SOURCE N (TWIN CHANNEL TS VALUE SEQ) x N
//   reparent ID PARENT
//   model KIND VERSION
//
// A last line without its newline (the checker died while writing it) is
// ignored.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace twinrt::crash_loop {

/// A value, or why there is none.
template <class T>
struct result {
  std::optional<T> value;
  std::string error;

  static result fail(std::string why) { return {std::nullopt, std::move(why)}; }
  explicit operator bool() const { return value.has_value(); }
  T& operator*() { return *value; }
  const T& operator*() const { return *value; }
  T* operator->() { return &*value; }
};

struct sample {
  std::string twin;
  std::string channel;
  int64_t ts_ms = 0;
  double value = 0;
  std::string source;
  uint64_t seq = 0;
};
using batch = std::vector<sample>;

struct point {
  int64_t ts_ms = 0;
  double value = 0;
};

/// What the log says the node holds.
struct expectations {
  struct twin_entry {
    std::string kind;
    std::string parent; // after every acknowledged reparent
  };
  std::map<std::string, twin_entry> twins;
  /// (twin, channel) -> every acknowledged sample, in the order sent.
  std::map<std::pair<std::string, std::string>, std::vector<point>> history;
  std::map<std::string, uint32_t> model_versions; // kind -> newest acknowledged version
  batch last_batch;                               // the last acknowledged batch
  uint64_t batches = 0;
  uint64_t samples = 0;
};

/// The log file, open for appending. Owned by the checker's one thread.
class ack_log {
public:
  /// Opens `path`, creating it when missing. Fails with the path and the
  /// system's reason.
  static result<std::unique_ptr<ack_log>> open(const std::string& path);
  ~ack_log();
  ack_log(const ack_log&) = delete;
  ack_log& operator=(const ack_log&) = delete;

  /// Each appends one record and fsyncs it; returns "" once it is durable,
  /// else the reason (the record may or may not be in the file then).
  std::string append_twin(const std::string& id, const std::string& kind,
                          const std::string& parent);
  std::string append_batch(const batch& b);
  std::string append_reparent(const std::string& id, const std::string& parent);
  std::string append_model(const std::string& kind, uint32_t version);

  const std::string& path() const { return path_; }

  /// Reads a log file back. Fails on a record it cannot parse, naming the
  /// line.
  static result<expectations> read(const std::string& path);

private:
  ack_log(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  std::string append(const std::string& line);

  std::string path_;
  int fd_ = -1;
};

} // namespace twinrt::crash_loop
