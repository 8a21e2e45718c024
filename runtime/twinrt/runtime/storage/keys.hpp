#pragma once

// Every key storage writes, and nothing else: the one place that knows the
// layout (README.md, "Storage layout").

#include <cstdint>
#include <string>
#include <string_view>

namespace twinrt::runtime::keys {

void append_be32(std::string& s, uint32_t v);
void append_be64(std::string& s, uint64_t v);
uint32_t read_be32(const char* p);
uint64_t read_be64(const char* p);

/// Signed timestamps sort correctly as unsigned once the sign bit is flipped.
inline uint64_t ts_key(int64_t ts) {
  return static_cast<uint64_t>(ts) ^ (uint64_t{1} << 63);
}
inline int64_t ts_of(uint64_t k) {
  return static_cast<int64_t>(k ^ (uint64_t{1} << 63));
}

/// The layout these keys make (README.md, "Storage layout"); stored under
/// layout_version(). Layout 1 had no version key and no shard prefix: a
/// per-twin key was what follows the shard prefix now (storage/migrate.cpp).
inline constexpr uint32_t current_layout = 2;

// -- one virtual shard's range --------------------------------------------------------
/// Every key of a virtual shard's records starts with shard_tag and the
/// shard (4 bytes, big-endian), then a tag of what it holds: 'L' shard log,
/// 'M' meta, 'S' state, 'H' history, 'K' history chunk, 'A' alert. [shard_begin, shard_end) is
/// the shard's whole data.
inline constexpr char shard_tag = 'V';
std::string shard_begin(uint32_t shard);
std::string shard_end(uint32_t shard);

// -- the shard log (in its virtual shard's range) -----------------------------------
/// Where the shard's log keys start. The key itself holds the sequence the
/// log is trimmed through (8 bytes, big-endian); absent: never trimmed.
std::string log_prefix(uint32_t shard);
/// A log record's key: log_prefix then its sequence (8 bytes, big-endian).
std::string log_record(uint32_t shard, uint64_t seq);
/// True when `key` is a log record key of `shard`; sets its sequence.
bool log_seq_of(std::string_view key, uint32_t shard, uint64_t& seq);

// -- per twin (in its virtual shard's range) ---------------------------------------
std::string meta(uint32_t shard, std::string_view id);
/// Where the metas of `shard` start; every meta key of it starts so.
std::string meta_prefix(uint32_t shard);
std::string state(uint32_t shard, uint32_t number);
std::string state_prefix(uint32_t shard);
/// The number of a key under state_prefix; false when it is no state key.
bool number_of_state(std::string_view key, std::string_view prefix, uint32_t& number);
/// The points of one channel of one twin start with this.
std::string history_prefix(uint32_t shard, uint32_t number, std::string_view channel);
/// A point's key: history_prefix, ts_key(ts) (8 bytes), then 4 bytes from
/// (source, seq) that tell two sources in one millisecond apart.
std::string history(uint32_t shard, uint32_t number, std::string_view channel, int64_t ts_ms,
                    std::string_view source, uint64_t seq);
/// [from, to): every history key of one twin.
std::string twin_history_begin(uint32_t shard, uint32_t number);
std::string twin_history_end(uint32_t shard, uint32_t number);
/// Sealed history chunks of one channel of one twin start with this: 'K',
/// the number (4 bytes), the channel, '\0'.
std::string chunk_prefix(uint32_t shard, uint32_t number, std::string_view channel);
/// The window a chunk's points lie in, as 8 key bytes: ts_key(ts) rounded
/// down to a multiple of history_chunk_window_ms (storage.hpp). Windows in
/// key space: no arithmetic overflows at the ends of int64.
uint64_t chunk_window(int64_t ts_ms);
/// A chunk's key: chunk_prefix, its window (8 bytes), ts_key(its first
/// point's time) (8 bytes), its CRC-32 (4 bytes): a range read starts at the
/// window of `from` and stops at the first window past `to`; two chunks
/// share a key only when they are the same bytes.
std::string chunk(uint32_t shard, uint32_t number, std::string_view channel, int64_t first_ts_ms,
                  uint32_t crc);
/// [from, to): every chunk key of one twin.
std::string twin_chunks_begin(uint32_t shard, uint32_t number);
std::string twin_chunks_end(uint32_t shard, uint32_t number);
std::string alert(uint32_t shard, uint64_t id);
std::string alert_prefix(uint32_t shard);

// -- node-wide ------------------------------------------------------------------------
std::string model(std::string_view kind, uint32_t version);
std::string model_prefix();
std::string event(uint64_t id);
/// True when `key` is an event key; sets its id.
bool event_id(std::string_view key, uint64_t& id);
std::string cursor(std::string_view sink);
std::string virtual_shards();
std::string layout_version();

/// What a key holds, for a log line: "state of twin #7".
std::string describe(std::string_view key);

} // namespace twinrt::runtime::keys
