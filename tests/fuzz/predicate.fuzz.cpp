// Fuzz target for query predicates (`--where`, Query.where: twins::predicate).
// Input: the predicate text. Beyond not crashing: a refusal names the text
// ("bad predicate '...': ..."); an accepted predicate has names and finite
// numbers, gives the same answer twice for a twin state, and without a clause
// matches every twin.

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <variant>

#include "twinrt/twins/predicate.hpp"

using namespace twinrt::twins;

namespace {

twin_state sample_state(double v) {
  twin_state st;
  st.channels["vibration_mm_s"] = {v, 1};
  st.channels["temperature_c"] = {-v, 2};
  st.channels[""] = {v, 3};
  st.own.sums["power_kw"] = v * 2;
  st.own.sums["stock/SKU-1"] = 7;
  st.score = 55;
  st.analytics.derived["rul_hours"] = v;
  return st;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto r = predicate::parse(text);
  if (auto* why = std::get_if<std::string>(&r)) {
    if (why->rfind("bad predicate", 0) != 0)
      __builtin_trap();
    return 0;
  }
  auto& p = std::get<predicate>(r);
  for (auto& c : p.clauses())
    if (c.name.empty() || !std::isfinite(c.value))
      __builtin_trap();
  static const twin_state states[] = {
    twin_state{}, sample_state(0), sample_state(4.5), sample_state(-1e308),
    sample_state(std::numeric_limits<double>::quiet_NaN()),
    sample_state(std::numeric_limits<double>::infinity())};
  for (auto& st : states) {
    bool a = p.matches(st);
    if (a != p.matches(st) || (p.clauses().empty() && !a))
      __builtin_trap();
  }
  return 0;
}
