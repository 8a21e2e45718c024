// Fuzz target for the node's config file (runtime::parse_config).
// Input: the text of a config file. Beyond not crashing: a refusal starts
// with the file's name and has a reason; an accepted config keeps the bounds
// the node relies on (at least one thread, shard, batch in flight).

#include <cstdint>
#include <string>
#include <string_view>

#include "twinrt/runtime/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  twinrt::runtime::node_config cfg;
  auto refusal = twinrt::runtime::parse_config(text, "fuzz.toml", cfg);
  if (refusal) {
    if (refusal->rfind("fuzz.toml:", 0) != 0 || refusal->size() <= 10)
      __builtin_trap();
    return 0;
  }
  if (cfg.threads == 0 || cfg.shards == 0 || cfg.max_inflight_batches == 0
      || cfg.max_batch_samples == 0)
    __builtin_trap();
  for (auto& t : cfg.rpc_tokens)
    if (t.name.empty() || t.secret.empty()
        || (t.role != "read" && t.role != "write" && t.role != "admin"))
      __builtin_trap();
  return 0;
}
