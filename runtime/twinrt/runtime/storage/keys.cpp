#include "twinrt/runtime/storage/keys.hpp"

#include "twinrt/runtime/sharding.hpp"
#include "twinrt/runtime/storage.hpp"
#include "twinrt/twins/names.hpp"

namespace twinrt::runtime::keys {

void append_be32(std::string& s, uint32_t v) {
  for (int i = 3; i >= 0; --i)
    s.push_back(static_cast<char>((v >> (i * 8)) & 0xff));
}

void append_be64(std::string& s, uint64_t v) {
  for (int i = 7; i >= 0; --i)
    s.push_back(static_cast<char>((v >> (i * 8)) & 0xff));
}

uint32_t read_be32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i)
    v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

uint64_t read_be64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i)
    v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

namespace {

std::string with_id(char prefix, uint64_t id) {
  std::string k(1, prefix);
  append_be64(k, id);
  return k;
}

} // namespace

std::string shard_begin(uint32_t shard) {
  std::string k(1, shard_tag);
  append_be32(k, shard);
  return k;
}

std::string shard_end(uint32_t shard) {
  // 'V' + (shard + 1): past max_virtual_shards - 1 this is still 5 bytes.
  std::string k(1, shard_tag);
  append_be32(k, shard + 1);
  return k;
}

std::string log_prefix(uint32_t shard) {
  return shard_begin(shard) + 'L';
}

std::string log_record(uint32_t shard, uint64_t seq) {
  auto k = log_prefix(shard);
  append_be64(k, seq);
  return k;
}

bool log_seq_of(std::string_view key, uint32_t shard, uint64_t& seq) {
  if (key.size() != 1 + 4 + 1 + 8 || key[0] != shard_tag || read_be32(key.data() + 1) != shard
      || key[5] != 'L')
    return false;
  seq = read_be64(key.data() + 6);
  return true;
}

std::string meta(uint32_t shard, std::string_view id) {
  auto k = meta_prefix(shard);
  k += id;
  return k;
}

std::string meta_prefix(uint32_t shard) {
  return shard_begin(shard) + 'M';
}

std::string state(uint32_t shard, uint32_t number) {
  auto k = state_prefix(shard);
  append_be32(k, number);
  return k;
}

std::string state_prefix(uint32_t shard) {
  return shard_begin(shard) + 'S';
}

bool number_of_state(std::string_view key, std::string_view prefix, uint32_t& number) {
  if (key.size() != prefix.size() + 4 || key.substr(0, prefix.size()) != prefix)
    return false;
  number = read_be32(key.data() + prefix.size());
  return true;
}

std::string history_prefix(uint32_t shard, uint32_t number, std::string_view channel) {
  auto k = twin_history_begin(shard, number);
  k += channel;
  k.push_back('\0');
  return k;
}

std::string history(uint32_t shard, uint32_t number, std::string_view channel, int64_t ts_ms,
                    std::string_view source, uint64_t seq) {
  // One allocation: a key per sample is the hottest path of ingest.
  std::string k;
  k.reserve(1 + 4 + 1 + 4 + channel.size() + 1 + 8 + 4);
  k.push_back(shard_tag);
  append_be32(k, shard);
  k.push_back('H');
  append_be32(k, number);
  k += channel;
  k.push_back('\0');
  append_be64(k, ts_key(ts_ms));
  // Two sources may report the same channel in the same millisecond: a
  // suffix from (source, seq) keeps both, while a redelivery of the same
  // sample lands on the same key.
  uint32_t suffix = 0;
  if (!source.empty() || seq != 0) {
    auto h = stable_hash(source) ^ (seq * 0x9e3779b97f4a7c15ull);
    suffix = static_cast<uint32_t>(h ^ (h >> 32));
  }
  append_be32(k, suffix);
  return k;
}

std::string twin_history_begin(uint32_t shard, uint32_t number) {
  auto k = shard_begin(shard) + 'H';
  append_be32(k, number);
  return k;
}

std::string twin_history_end(uint32_t shard, uint32_t number) {
  // number + 1 wraps for the largest number: end the range at the next tag.
  if (number == ~uint32_t{0})
    return shard_begin(shard) + static_cast<char>('H' + 1);
  return twin_history_begin(shard, number + 1);
}

std::string chunk_prefix(uint32_t shard, uint32_t number, std::string_view channel) {
  auto k = twin_chunks_begin(shard, number);
  k += channel;
  k.push_back('\0');
  return k;
}

uint64_t chunk_window(int64_t ts_ms) {
  auto k = ts_key(ts_ms);
  return k - k % static_cast<uint64_t>(history_chunk_window_ms);
}

std::string chunk(uint32_t shard, uint32_t number, std::string_view channel, int64_t first_ts_ms,
                  uint32_t crc) {
  auto k = chunk_prefix(shard, number, channel);
  append_be64(k, chunk_window(first_ts_ms));
  append_be64(k, ts_key(first_ts_ms));
  append_be32(k, crc);
  return k;
}

std::string twin_chunks_begin(uint32_t shard, uint32_t number) {
  auto k = shard_begin(shard) + 'K';
  append_be32(k, number);
  return k;
}

std::string twin_chunks_end(uint32_t shard, uint32_t number) {
  if (number == ~uint32_t{0})
    return shard_begin(shard) + static_cast<char>('K' + 1);
  return twin_chunks_begin(shard, number + 1);
}

std::string alert(uint32_t shard, uint64_t id) {
  auto k = alert_prefix(shard);
  append_be64(k, id);
  return k;
}

std::string alert_prefix(uint32_t shard) {
  return shard_begin(shard) + 'A';
}

std::string model(std::string_view kind, uint32_t version) {
  std::string k("D");
  k += kind;
  k.push_back('\0');
  append_be32(k, version);
  return k;
}

std::string model_prefix() {
  return "D";
}

std::string event(uint64_t id) {
  return with_id('E', id);
}

bool event_id(std::string_view key, uint64_t& id) {
  if (key.size() != 9 || key[0] != 'E')
    return false;
  id = read_be64(key.data() + 1);
  return true;
}

std::string cursor(std::string_view sink) {
  std::string k("C");
  k += sink;
  return k;
}

std::string virtual_shards() {
  return "Pvirtual_shards";
}

std::string layout_version() {
  return "Playout_version";
}

std::string describe(std::string_view k) {
  if (k.empty())
    return "an empty key";
  if (k[0] == shard_tag && k.size() > 5 && k[5] == 'L') {
    // The shard log: the shard is its name.
    auto shard = " of virtual shard " + std::to_string(read_be32(k.data() + 1));
    if (k.size() == 6)
      return "trim point of the log" + shard;
    if (k.size() == 14)
      return "log record " + std::to_string(read_be64(k.data() + 6)) + shard;
  }
  if (k[0] == shard_tag && k.size() > 5)
    k = k.substr(5); // a twin's record: its shard adds nothing to the name

  auto rest = k.substr(1);
  switch (k[0]) {
    case 'S':
      if (rest.size() == 4)
        return "state of twin #" + std::to_string(read_be32(rest.data()));
      break;
    case 'M':
      return "meta of twin " + twins::printable(rest);
    case 'H':
      if (rest.size() > 4 + 1 + 12) {
        auto channel = rest.substr(4, rest.size() - 4 - 1 - 12);
        auto ts = ts_of(read_be64(rest.data() + rest.size() - 12));
        return "history of twin #" + std::to_string(read_be32(rest.data())) + " channel "
               + twins::printable(channel) + " at " + std::to_string(ts) + " ms";
      }
      break;
    case 'K':
      if (rest.size() > 4 + 1 + 20) {
        auto channel = rest.substr(4, rest.size() - 4 - 1 - 20);
        auto ts = ts_of(read_be64(rest.data() + rest.size() - 12));
        return "history chunk of twin #" + std::to_string(read_be32(rest.data())) + " channel "
               + twins::printable(channel) + " from " + std::to_string(ts) + " ms";
      }
      break;
    case 'D':
      if (auto nul = rest.find('\0'); nul != std::string_view::npos && rest.size() == nul + 5)
        return "model " + twins::printable(rest.substr(0, nul)) + " v"
               + std::to_string(read_be32(rest.data() + nul + 1));
      break;
    case 'A':
    case 'E':
      if (rest.size() == 8)
        return std::string(k[0] == 'A' ? "alert " : "event ")
               + std::to_string(read_be64(rest.data()));
      break;
    case 'C':
      return "cursor of sink " + twins::printable(rest);
  }
  return "key " + twins::printable(k);
}

} // namespace twinrt::runtime::keys
