// Fuzz target for what the edge reads back from its RocksDB buffer
// (adapters::edge::decode_buffered; README "Edge mode"): a corrupt record must
// be refused, not crash the edge. Input: a stored buffer record. Beyond not
// crashing: a refusal is errc::corrupt_record; a record that decodes encodes
// to the same bytes. The decoded sample then goes through the deadband filter
// (as after a restart: its last forwarded value and time come from the first
// 16 input bytes, as the edge's stored filter marks hold them), which must
// cope with any value and time.

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "twinrt/adapters/edge.hpp"
#include "twinrt/runtime/errc.hpp"

using namespace twinrt::adapters::edge;
using twinrt::runtime::errc;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto s = decode_buffered(in);
  if (!s) {
    if (twinrt::runtime::code_of(s.error()) != errc::corrupt_record)
      __builtin_trap();
    return 0;
  }
  if (encode_buffered(*s) != in)
    __builtin_trap();
  double value = 0;
  int64_t ts = 0;
  if (size >= 16) {
    std::memcpy(&value, data, 8);
    std::memcpy(&ts, data + 8, 8);
  }
  sample_filter f({{"*", "*", 0.5, 10, 1000}});
  f.restore(s->twin, s->channel, value, ts);
  (void)f.pass(*s);
  (void)f.pass(*s);
  return 0;
}
