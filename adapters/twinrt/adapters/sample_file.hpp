#pragma once

// Sample files: one sample per line, as JSON objects or CSV. Used by
// `twinctl ingest` and `twinrt replay`.
//
//   {"twin": "acme/plant-1/line-2/press-7", "channel": "power_kw", "ts": 1700000000000, "value": 41.5}
//   twin,channel,ts,value[,source,seq]
//
// "ts" is milliseconds since the Unix epoch; "source" and "seq" are optional.
// Blank lines, lines starting with '#' and a CSV header line (first field
// "twin") are skipped. Lines may end in "\r\n".

#include <cstdint>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "twinrt/twins/sample.hpp"

namespace twinrt::adapters {

/// What one line of a sample file holds.
struct sample_line {
  enum class kind : uint8_t { sample, skipped, bad };
  kind what = kind::skipped;
  twins::sample sample;  // when what == sample
  bool has_ts = false;   // the line gave a timestamp
  bool has_seq = false;  // the line gave a sequence number
  std::string error;     // when what == bad: the reason, without file or line
};

/// Parses one line. A JSON line without "ts" gets `now_ms`.
sample_line parse_sample_line(std::string_view line, int64_t now_ms);

/// Reads a sample file line by line, from the start or from a position an
/// earlier reader reported, knowing each line's number and where it ends.
/// Owned by one thread.
class sample_file_reader {
public:
  struct line {
    uint64_t number = 0; // 1-based line number in the file
    uint64_t end = 0;    // byte offset just past this line
    sample_line parsed;
  };

  explicit sample_file_reader(std::string path);

  /// Opens the file. Returns "" on success, else the reason naming the file.
  std::string open();

  /// Continues after byte `offset`, where line `line_number` ended. Returns ""
  /// on success; fails when the file is shorter than `offset`.
  std::string seek(uint64_t offset, uint64_t line_number);

  /// Reads the next line; false at the end of the file. A last line without a
  /// newline is still a line.
  bool next(line& out, int64_t now_ms);

  const std::string& path() const { return path_; }
  uint64_t size() const { return size_; }      // bytes when opened
  uint64_t offset() const { return offset_; }  // bytes consumed so far

private:
  std::string path_;
  std::ifstream in_;
  std::string buf_;
  uint64_t size_ = 0;
  uint64_t offset_ = 0;
  uint64_t line_ = 0;
};

/// A whole sample file, read at once.
struct sample_file {
  std::vector<twins::sample> samples;
  std::vector<uint64_t> lines;     // line number of each sample
  std::vector<std::string> errors; // "PATH:LINE: reason" per bad line, or "cannot read PATH: ..."
};

/// Reads every line of `path`; lines without "ts" get `now_ms`.
sample_file read_sample_file(const std::string& path, int64_t now_ms);

} // namespace twinrt::adapters
