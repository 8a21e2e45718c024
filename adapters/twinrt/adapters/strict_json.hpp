#pragma once

#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace twinrt::adapters {

/// A parsed document, or why there is none.
template <class Json>
struct strict_json {
  Json doc;
  std::string refusal; // empty when `doc` was parsed
};

/// Parses `text` as one JSON document the way a sender means it: where
/// nlohmann::json silently keeps the last of a key given twice in one object,
/// this refuses the document. The refusal names the input: "invalid JSON:
/// ..." (the library's own words: the byte and what it expected) or "key
/// \"value\" appears twice in one object".
template <class Json = nlohmann::json>
strict_json<Json> parse_strict_json(std::string_view text) {
  using json = Json;
  std::vector<std::set<std::string>> keys; // one set per open object
  std::string twice;
  auto watch = [&](int, typename json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
        keys.emplace_back();
        break;
      case json::parse_event_t::object_end:
        if (!keys.empty())
          keys.pop_back();
        break;
      case json::parse_event_t::key:
        if (!keys.empty() && !keys.back().insert(parsed.template get<std::string>()).second
            && twice.empty())
          twice = parsed.template get<std::string>();
        break;
      default:
        break;
    }
    return true;
  };
  strict_json<Json> out;
  try {
    out.doc = json::parse(text.begin(), text.end(), watch);
  } catch (const typename json::exception& e) {
    // A syntax error (parse_error) or a number beyond a double (out_of_range, "1e999").
    out.refusal = std::string("invalid JSON: ") + e.what();
    return out;
  }
  if (!twice.empty())
    out.refusal = "key \"" + twice + "\" appears twice in one object";
  return out;
}

} // namespace twinrt::adapters
