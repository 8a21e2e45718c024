#pragma once

// LEB128 varints and the zigzag map, as the history chunk (chunk.hpp) and
// the shard log's records (runtime storage) write them.

#include <cstddef>
#include <cstdint>
#include <string>

namespace twinrt::twins {

/// Appends `v` as an LEB128 varint: 7 bits a byte, low bits first, the high
/// bit set on every byte but the last; 1 to 10 bytes.
inline void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

/// A varint read by read_varint: its value and how many bytes it took;
/// `bytes` is 0 when there was none.
struct varint_read {
  uint64_t value = 0;
  size_t bytes = 0;
};

/// Reads the varint at `p`, reading no more than `left` bytes. None
/// (bytes 0) when the bytes end before it does, or when it holds more than
/// 64 bits (a tenth byte above 1, or an eleventh byte).
inline varint_read read_varint(const void* p, size_t left) {
  auto* b = static_cast<const uint8_t*>(p);
  uint64_t v = 0;
  for (size_t i = 0; i < left && i < 10; ++i) {
    if (i == 9 && b[i] > 1)
      return {};
    v |= uint64_t{b[i] & 0x7fu} << (7 * i);
    if ((b[i] & 0x80) == 0)
      return {v, i + 1};
  }
  return {};
}

/// Maps a signed difference (two's complement in `d`) to an unsigned one
/// that is small when the difference is near 0: 0, -1, 1, -2, ... become
/// 0, 1, 2, 3, ...
inline uint64_t zigzag(uint64_t d) {
  return (d << 1) ^ (0 - (d >> 63));
}

/// The inverse of zigzag: the difference, two's complement.
inline uint64_t unzigzag(uint64_t z) {
  return (z >> 1) ^ (0 - (z & 1));
}

} // namespace twinrt::twins
