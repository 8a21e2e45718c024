// Fuzz target for the history chunk decoder (twins::chunk_reader): a corrupt
// chunk must be refused with a reason, never crash, overflow or hang.
// Input: one byte, then the chunk. When the byte is odd, the chunk's CRC-32 is
// set to match its body first, so mutations reach the header and the streams
// instead of stopping at the checksum.
// Beyond not crashing: a refusal starts with "history chunk: "; a chunk that
// decodes has the header's count of points, each within the header's time
// range, and the points encoded again decode to the same points in time order.
//
// The seeds in corpus/history_chunk/ are chunks sealed by chunk_encoder (one
// byte 0 in front): 1 Hz noise (XOR code), decimals (Rice code), a counter
// (delta-of-delta decimals), sources with seqs and model versions, special
// values (NaN, infinities, -0.0), extreme timestamps, out-of-order points, one
// point; and the same with byte 1, some of them with a byte changed.

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <boost/crc.hpp>

#include "twinrt/twins/chunk.hpp"

using namespace twinrt::twins;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0)
    return 0;
  std::string bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  if ((data[0] & 1) != 0 && bytes.size() >= 4) {
    boost::crc_32_type crc;
    crc.process_bytes(bytes.data(), bytes.size() - 4);
    uint32_t c = crc.checksum();
    for (int i = 0; i < 4; ++i)
      bytes[bytes.size() - 4 + i] = static_cast<char>((c >> (8 * i)) & 0xff);
  }
  auto r = decode_chunk(bytes);
  if (auto* why = std::get_if<std::string>(&r)) {
    if (why->rfind("history chunk: ", 0) != 0)
      __builtin_trap();
    return 0;
  }
  auto& points = std::get<std::vector<chunk_point>>(r);
  auto opened = chunk_reader::open(bytes);
  if (!std::holds_alternative<chunk_reader>(opened))
    __builtin_trap();
  auto h = std::get<chunk_reader>(opened).header();
  if (points.size() != h.count)
    __builtin_trap();
  for (auto& p : points)
    if (p.ts_ms < h.first_ts_ms || p.ts_ms > h.last_ts_ms)
      __builtin_trap();
  chunk_encoder enc;
  for (auto& p : points)
    if (enc.append(p))
      __builtin_trap();
  auto again = decode_chunk(enc.seal());
  std::stable_sort(points.begin(), points.end(),
                   [](const chunk_point& a, const chunk_point& b) { return a.ts_ms < b.ts_ms; });
  if (!std::holds_alternative<std::vector<chunk_point>>(again)
      || std::get<std::vector<chunk_point>>(again) != points)
    __builtin_trap();
  return 0;
}
