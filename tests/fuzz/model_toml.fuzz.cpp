// Fuzz target for model files (twins::parse_model, load_model_texts).
// Input: the text of one model file. Beyond not crashing: a refusal names the
// file and has a reason; a model that parses has a kind and a version, parses
// again from its own text to the same kind and version, and a model_set takes
// it once (the same version and text again is a no-op).

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "twinrt/twins/model.hpp"

using namespace twinrt::twins;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto r = parse_model(text, "fuzz.toml");
  if (auto* e = std::get_if<model_error>(&r)) {
    if (e->file != "fuzz.toml" || e->reason.empty() || e->line < 0)
      __builtin_trap();
    (void)e->to_string();
  } else {
    auto& m = std::get<model>(r);
    if (m.kind.empty() || m.version == 0 || m.text != text)
      __builtin_trap();
    auto again = parse_model(m.text, "again.toml");
    auto* m2 = std::get_if<model>(&again);
    if (!m2 || m2->kind != m.kind || m2->version != m.version
        || m2->channels.size() != m.channels.size())
      __builtin_trap();
    model_set set;
    if (set.put(m) || set.put(m) || !set.find(m.kind))
      __builtin_trap();
    std::string_view item;
    for (auto& [name, spec] : m.channels) {
      if (m.find_channel(name, &item) == nullptr && spec.type != channel_type::movement)
        __builtin_trap();
      (void)m.find_channel(name + "/SKU-1", &item);
    }
  }
  // Two files of the same text: all or nothing, never a crash.
  auto files = load_model_texts({{"a.toml", std::string(text)}, {"b.toml", std::string(text)}});
  if (files.models.empty() && files.errors.empty())
    __builtin_trap();
  return 0;
}
