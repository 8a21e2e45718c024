#pragma once

// A compressed chunk of one channel's history: the samples of one twin
// channel over a stretch of time, sealed into a self-checking byte string.
//
// Encoding (format version 1), after the ideas of Facebook's Gorilla paper
// (Pelkonen et al., VLDB 2015):
//  - timestamps: delta-of-delta, in a prefix code that spends 1 bit on a
//    regular interval and 9 bits on a jitter of up to 64 ms;
//  - values: Gorilla XOR of each value with the one before it, or, when every
//    value of the chunk is a decimal number with at most 9 digits after the
//    point (a sensor's resolution: 4.37, 45.1, 12), the integer mantissas
//    (value x 10^scale) as deltas or delta-of-deltas in a Rice code; the
//    encoder keeps whichever of the three is smallest. Values come back
//    exact to the bit either way (NaN payloads, infinities and -0.0 always
//    take the XOR code);
//  - source and model version: runs (length, source, version), the sources
//    named once per chunk;
//  - seq (when any sample has one): per source, the difference to that
//    source's previous seq minus one, so a sender counting up costs 1 bit;
//  - a header (format version, flags, count, first and last timestamp) and
//    a CRC-32 over the whole chunk, so a corrupt chunk is refused with a
//    reason.
//
// Plain data: no I/O, no threads. An encoder or a reader belongs to one
// thread at a time.

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace twinrt::twins {

namespace internal {

// Bit streams, most significant bit first.
struct bit_writer {
  std::string bytes;
  uint64_t acc = 0;
  unsigned n = 0; // bits held in acc, fewer than 8
  void put(uint64_t v, unsigned count); // the low `count` (<= 64) bits of v
  size_t bit_size() const { return bytes.size() * 8 + n; }
  std::string finished() const; // padded with zero bits to a byte
};

struct bit_reader {
  const uint8_t* data = nullptr;
  size_t size_bits = 0;
  size_t pos = 0;
  bool overrun = false; // a read past the end happened (it returned 0)
  uint64_t get(unsigned count); // count <= 64
  uint64_t peek64() const;      // zero bits past the end
  void skip(unsigned count) { pos += count; } // count <= left()
  size_t left() const { return size_bits - pos; }
};

} // namespace internal

/// One point of a chunk. `source` and `seq` are optional (empty / 0), as in
/// twins::sample; `model_version` is the model in force when it was recorded.
struct chunk_point {
  int64_t ts_ms = 0;
  double value = 0;
  uint32_t model_version = 0;
  std::string source;
  uint64_t seq = 0;

  bool operator==(const chunk_point& o) const; // values compared bit by bit
};

/// What a chunk says about itself, readable without decoding its points.
struct chunk_header {
  uint8_t format = 0;
  uint32_t count = 0;      // points, at least 1
  int64_t first_ts_ms = 0; // the earliest timestamp
  int64_t last_ts_ms = 0;  // the latest timestamp
  bool has_source = false; // some point has a source
  bool has_seq = false;    // some point has a seq
};

/// The format version this build writes; it reads only this one.
inline constexpr uint8_t chunk_format = 1;

/// Collects the points of one open chunk in compressed form (timestamps and
/// values are encoded as they arrive, so an open chunk costs about what its
/// sealed form does) and seals them into bytes.
///
/// Timestamps may arrive in any order: a sealed chunk holds its points sorted
/// by time, points with the same timestamp in the order they were appended.
/// Any int64 timestamp and any double (NaN, infinities, -0.0 included) is
/// kept exactly; refusing NaN is the ingest gate's business, not the codec's.
class chunk_encoder {
public:
  /// Points one chunk holds at most.
  static constexpr uint32_t max_points = 1u << 20;
  /// Distinct sources one chunk names at most.
  static constexpr uint32_t max_sources = 4096;

  /// Appends one point. Refuses it (the encoder unchanged) with a reason
  /// when the chunk is full (max_points) or would name more than
  /// max_sources sources: seal the chunk and append to a new one.
  std::optional<std::string> append(int64_t ts_ms, double value, uint32_t model_version = 0,
                                    std::string_view source = {}, uint64_t seq = 0);
  std::optional<std::string> append(const chunk_point& p) {
    return append(p.ts_ms, p.value, p.model_version, p.source, p.seq);
  }

  uint32_t size() const { return count_; }
  bool empty() const { return count_ == 0; }
  /// Bytes the open chunk holds in its compressed streams.
  size_t open_bytes() const;

  /// The sealed form of the points appended so far; the encoder keeps them.
  /// An empty encoder gives an empty string (not a chunk).
  std::string snapshot() const;
  /// The sealed form; the encoder is empty afterwards.
  std::string seal();

private:
  using bits = internal::bit_writer;
  struct run {
    uint32_t length = 0;
    uint32_t source = 0; // index into sources_; 0 is "no source"
    uint32_t model_version = 0;
  };

  std::string encode(bool sorted_already) const;

  uint32_t count_ = 0;
  // timestamps
  int64_t first_ts_ = 0, prev_ts_ = 0, min_ts_ = 0, max_ts_ = 0;
  uint64_t prev_delta_ = 0;
  bool in_order_ = true;
  bits ts_;
  // values, Gorilla XOR
  uint64_t prev_bits_ = 0;
  unsigned lead_ = 0, trail_ = 0;
  bool window_ = false;
  bits xor_;
  // values as decimals: the scale every value so far fits, or -1 when one
  // does not
  int scale_ = 0;
  // source and model version runs; seq per source
  std::vector<std::string> sources_{std::string()};
  std::map<std::string, uint32_t, std::less<>> source_index_;
  std::vector<run> runs_;
  std::vector<uint64_t> last_seq_{0};
  bool any_seq_ = false;
  bits seq_;
};

/// Reads a sealed chunk. `open` checks the CRC and the header; `next` then
/// yields the points in time order. The reader keeps a view of the bytes:
/// they must outlive it.
class chunk_reader {
public:
  /// A refusal names what is wrong: "history chunk: CRC-32 mismatch ...".
  static std::variant<chunk_reader, std::string> open(std::string_view bytes) {
    return open(bytes, false);
  }

  const chunk_header& header() const { return header_; }

  /// The next point, or nullopt after the last one or when the body turns
  /// out to be inconsistent (then error() says why). `source` of the point
  /// returned is valid until the next call.
  const chunk_point* next();
  /// Empty unless decoding failed.
  const std::string& error() const { return error_; }

private:
  friend class chunk_encoder;
  friend std::variant<std::vector<chunk_point>, std::string> decode_chunk(std::string_view);
  using bit_reader = internal::bit_reader;

  // With `unsorted`, also the points of a chunk that is not in time order
  // (the encoder's own intermediate form before it sorts), in stored order.
  static std::variant<chunk_reader, std::string> open(std::string_view bytes, bool unsorted);
  static std::variant<std::vector<chunk_point>, std::string> read_all(std::string_view bytes,
                                                                      bool unsorted);
  bool fail(std::string why);
  bool next_value(double& v);
  bool finish();

  chunk_header header_;
  bool in_order_ = true;
  bool decimal_ = false, decimal_dod_ = false;
  uint8_t scale_ = 0, rice_k_ = 0;
  std::vector<std::string> sources_;
  std::vector<uint64_t> last_seq_;
  std::vector<uint32_t> run_lengths_, run_sources_, run_versions_;
  size_t run_ = 0;
  uint32_t run_left_ = 0;
  bit_reader ts_, values_, seq_;
  uint32_t read_ = 0;
  uint64_t prev_delta_ = 0;
  uint64_t prev_bits_ = 0;
  unsigned lead_ = 0, len_ = 0;
  int64_t prev_m_ = 0, prev_dm_ = 0;
  chunk_point point_;
  std::string error_;
};

/// Every point of a chunk, or the reason it is refused.
std::variant<std::vector<chunk_point>, std::string> decode_chunk(std::string_view bytes);

} // namespace twinrt::twins
