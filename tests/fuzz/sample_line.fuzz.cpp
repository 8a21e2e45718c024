// Fuzz target for sample files (JSON lines and CSV: adapters::parse_sample_line,
// used by `twinctl ingest` and `twinrt replay`). Input: any bytes, cut into
// lines at '\n' as the file readers do. Beyond not crashing: a bad line has a
// reason; a sample has a twin and a channel; a line without a timestamp gets
// the reader's clock; skipped lines carry nothing.

#include <cstdint>
#include <string_view>

#include "twinrt/adapters/sample_file.hpp"

using twinrt::adapters::parse_sample_line;
using twinrt::adapters::sample_line;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr int64_t now = 1'764'000'000'000;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  for (;;) {
    auto nl = in.find('\n');
    auto line = in.substr(0, nl);
    auto r = parse_sample_line(line, now);
    switch (r.what) {
      case sample_line::kind::bad:
        if (r.error.empty())
          __builtin_trap();
        break;
      case sample_line::kind::sample:
        if (r.sample.twin.empty() || r.sample.channel.empty() || !r.error.empty()
            || (!r.has_ts && r.sample.ts_ms != now) || (!r.has_seq && r.sample.seq != 0))
          __builtin_trap();
        break;
      case sample_line::kind::skipped:
        if (!r.error.empty() || !r.sample.twin.empty())
          __builtin_trap();
        break;
    }
    if (nl == std::string_view::npos)
      break;
    in.remove_prefix(nl + 1);
  }
  return 0;
}
