#pragma once

// The shard log's records (storage.hpp, "the shard log"): the builder a
// batch fills, what a batch hands the committer, and the record's checks.
// Only storage's own files include this.
//
// A record (format 1), the value under keys::log_record(shard, seq):
//
//   format          1 byte (1)
//   shard           4 bytes, big-endian
//   seq             8 bytes, big-endian
//   twins           varint n, then n times: varint length + id, varint model version
//   channels        varint n, then n times: varint length + name
//   sources         varint n, then n times: varint length + name
//   samples         varint n, then n times:
//                     varint twin (index), varint channel (index),
//                     varint source (0: none, i: the i-th source), varint seq,
//                     varint zigzag(ts - the previous sample's ts; the first: ts),
//                     value: 8 bytes, the double's bits, little-endian
//   CRC-32          4 bytes, big-endian, over everything before it
//
// Varints are LEB128. The record names its shard and sequence and its twins
// by id, so it means the same on any node (a replica's).

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <caf/error.hpp>

namespace twinrt::runtime::shard_log {

inline constexpr uint8_t format = 1;
/// Bytes before the body (format, shard, seq) and after it (CRC-32).
inline constexpr size_t header_size = 1 + 4 + 8;
inline constexpr size_t trailer_size = 4;

/// The samples one batch logs for one virtual shard, encoded as they come
/// (on the caller's thread). Samples of one twin in a row cost no look-up of
/// the twin.
class builder {
public:
  void add(std::string_view twin, uint32_t model_version, const std::string& channel,
           int64_t ts_ms, double value, const std::string& source, uint64_t seq);
  bool empty() const { return count_ == 0; }
  /// The record's body: its tables, then its samples.
  std::string body() const;

private:
  struct twin_entry {
    std::string id;
    uint32_t model_version = 0;
  };
  struct table {
    std::unordered_map<std::string, uint32_t> index;
    std::vector<std::string> names;
    uint32_t last = ~uint32_t{0}; // the index found last: samples repeat it
    uint32_t of(const std::string& name);
  };

  std::vector<twin_entry> twins_;
  uint32_t last_twin_ = ~uint32_t{0};
  table channels_, sources_;
  std::string samples_;
  uint64_t count_ = 0;
  int64_t prev_ts_ = 0;
};

/// What a committed batch asks of the shard log, in this order: logs of
/// `restarted` shards start again at 1 (batch::delete_shard); each body
/// becomes the next record of its shard; then the trims.
struct pending {
  std::vector<uint32_t> restarted;
  std::vector<std::pair<uint32_t, std::string>> bodies; // by shard, ascending
  std::vector<std::pair<uint32_t, uint64_t>> trims;     // shard, through
  bool empty() const { return restarted.empty() && bodies.empty() && trims.empty(); }
};

/// The format, shard and seq that go before a body.
std::string header(uint32_t shard, uint64_t seq);
/// The CRC-32 of header and body, as stored after them.
std::string trailer(std::string_view header, std::string_view body);

/// Checks a stored record's CRC-32, format, shard and sequence without
/// decoding its samples; errc::corrupt_record with the reason when wrong.
caf::error check(std::string_view bytes, uint32_t shard, uint64_t seq);

} // namespace twinrt::runtime::shard_log
